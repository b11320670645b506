// ACME cryptography, sans-I/O: base64url, P-256 keys, JWK and its RFC 7638 thumbprint, JWS
// (RFC 7515 flattened JSON, ES256 with the raw r||s signature), key authorizations, CSRs and
// the RFC 8737 TLS-ALPN-01 challenge certificate.
//
// Pure functions over OpenSSL; thread-safe. Key generation is blocking work (a millisecond for
// P-256): callers on a network thread may still prefer a worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "tls/certs.hpp"
#include "tls/ossl.hpp"

namespace hopgate::acme {

// RFC 4648 §5 without padding.
std::string base64url(std::string_view bytes);
// Accepts unpadded (and padded) base64url; nullopt on any other character.
std::optional<std::string> base64url_decode(std::string_view text);

// A new P-256 key. Errc::kCrypto.
core::Result<tls::EvpPkeyPtr> generate_p256();
// PKCS#8 PEM of a private key.
std::string private_key_pem(EVP_PKEY* key);
// A P-256 key from PEM; Errc::kCrypto when it is not an EC P-256 private key.
core::Result<tls::EvpPkeyPtr> p256_from_pem(std::string_view pem);

// The public JWK of a P-256 key in RFC 7638 canonical form (members sorted, no whitespace):
// {"crv":"P-256","kty":"EC","x":"...","y":"..."}.
std::string jwk_json(EVP_PKEY* key);
// base64url(SHA-256(canonical JWK)).
std::string jwk_thumbprint(EVP_PKEY* key);
// token "." thumbprint (RFC 8555 §8.1).
std::string key_authorization(std::string_view token, EVP_PKEY* account_key);

// A flattened JWS: {"protected":b64(hdr),"payload":b64(payload),"signature":b64(r||s)}.
// The header carries alg ES256, nonce, url and either the JWK (`kid` empty: new accounts) or
// the account URL as kid. `payload` empty means POST-as-GET (an empty payload string).
core::Result<std::string> jws_sign(EVP_PKEY* key, std::string_view kid, std::string_view nonce,
                                   std::string_view url, std::string_view payload);
// Verifies a JWS made by jws_sign against `key` (tests and fuzzing). False on any malformation.
bool jws_verify(std::string_view jws, EVP_PKEY* key);

// A DER PKCS#10 request for `domains` (first is the CN; all are dNSName SANs), signed by `key`.
core::Result<std::string> make_csr(const std::vector<std::string>& domains, EVP_PKEY* key);

// The RFC 8737 challenge certificate for `domain`: self-signed, SAN dNSName = domain, and the
// critical id-pe-acmeIdentifier extension holding an OCTET STRING of SHA-256(key_authz).
core::Result<tls::PemPair> make_tls_alpn_cert(std::string_view domain, std::string_view key_authz);

// True for names we ask certificates for: LDH labels, dots, at most 253 characters, no IP.
bool valid_dns_name(std::string_view name);

}  // namespace hopgate::acme
