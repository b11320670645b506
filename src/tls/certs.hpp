// Certificates and keys: self-signed generation and PEM loading.
//
// `CertifiedKey` is immutable once built and shared (shared_ptr<const>) between contexts and
// threads; OpenSSL reference counts make handing its pointers to SSL objects safe.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "tls/ossl.hpp"

namespace hopgate::tls {

struct PemPair {
    std::string cert_pem;
    std::string key_pem;  // PKCS#8, unencrypted
};

// A self-signed P-256 ECDSA certificate valid from now for `validity`, with a subjectAltName
// per entry of `names`: IP literals (v4 or v6) become iPAddress entries, anything else a
// dNSName (a leading "*." is allowed). The first name is also the subject CN.
// Throws tls::Error when `names` is empty, a name holds characters outside [A-Za-z0-9.*:-], or
// OpenSSL fails. Blocking work (key generation): call it off the network threads.
PemPair generate_self_signed(std::vector<std::string> names,
                             std::chrono::seconds validity = std::chrono::hours(24 * 365));

// Parses every certificate in a PEM blob, in order. Errc::kBadPem when none parses.
core::Result<std::vector<X509Ptr>> load_certificates_pem(std::string_view pem);
// Parses the first private key in a PEM blob (PKCS#8, SEC1 or PKCS#1). Errc::kBadPem.
core::Result<EvpPkeyPtr> load_private_key_pem(std::string_view pem);
// Reads a whole file (bounded to 1 MiB). Errc::kIo, Errc::kTooLarge.
core::Result<std::string> read_pem_file(const std::string& path);

// A leaf certificate, its chain (intermediates, may be empty) and the matching private key.
class CertifiedKey {
  public:
    // Leaf first, then intermediates, in `cert_chain_pem`. Errors: kBadPem, kKeyMismatch.
    // When `why` is given it receives a one-line explanation on failure.
    static core::Result<std::shared_ptr<const CertifiedKey>> from_pem(
        std::string_view cert_chain_pem, std::string_view key_pem, std::string* why = nullptr);
    // Same, reading two PEM files. Adds kIo.
    static core::Result<std::shared_ptr<const CertifiedKey>> from_files(
        const std::string& cert_path, const std::string& key_path, std::string* why = nullptr);

    X509* leaf() const { return leaf_.get(); }
    EVP_PKEY* key() const { return key_.get(); }
    // Intermediates only (not the leaf); never null.
    STACK_OF(X509) * chain() const { return chain_.get(); }
    // The leaf's dNSName subjectAltNames, lower-cased.
    std::vector<std::string> dns_names() const;

    CertifiedKey(X509Ptr leaf, X509StackPtr chain, EvpPkeyPtr key)
        : leaf_(std::move(leaf)), chain_(std::move(chain)), key_(std::move(key)) {}

  private:
    X509Ptr leaf_;
    X509StackPtr chain_;
    EvpPkeyPtr key_;
};

// Why `ck` cannot serve `names` until `margin` from now: "" when it can, else one line naming the
// first problem (not yet valid, expired or expiring within the margin, a name it does not cover).
// Names are matched like a client would: dNSName with wildcards, IP literals against iPAddress.
std::string unfit_for(const CertifiedKey& ck, const std::vector<std::string>& names,
                      std::chrono::seconds margin);

// True when `name` is an IPv4 or IPv6 literal (as accepted by OpenSSL's a2i_IPADDRESS).
bool is_ip_literal(std::string_view name);

}  // namespace hopgate::tls
