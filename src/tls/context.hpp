// SSL_CTX construction for the tunnel transports (and, later, the HTTPS front door), and the
// SNI-keyed certificate store a server context selects from.
//
// Contexts are built at start-up: the make_* functions throw tls::Error with one clear line.
// A Context is immutable after construction except for its CertStore, which is internally
// synchronised and may be updated from any thread while handshakes run (ACME renewals).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "tls/certs.hpp"
#include "tls/ossl.hpp"

namespace hopgate::tls {

enum class Protocol {
    kDtls,  // DTLS_method, DTLS 1.2 only
    kTls,   // TLS_method, TLS 1.2 and 1.3
};

inline constexpr const char* kAlpnHopgate = "hopgate/1";
// RFC 8737 TLS-ALPN-01. A server context whose ALPN list holds it answers a ClientHello that
// offers it with the store's challenge certificate for the SNI name (and fails the handshake
// when there is none); other clients never negotiate it.
inline constexpr const char* kAlpnAcmeTls = "acme-tls/1";

// Server certificates by SNI name. Lookup order: exact name, then "*.<parent>" (one label),
// then the default. Names are compared lower-case. Thread-safe; selection copies a shared_ptr
// under the lock, so a certificate being replaced stays alive for handshakes already using it.
class CertStore {
  public:
    void set_default(std::shared_ptr<const CertifiedKey> ck);
    // `name` is "host.example.com" or "*.example.com".
    void set(std::string_view name, std::shared_ptr<const CertifiedKey> ck);
    bool remove(std::string_view name);
    // Null when nothing matches and no default is set (the handshake then fails).
    std::shared_ptr<const CertifiedKey> select(std::string_view server_name) const;
    std::size_t size() const;

    // TLS-ALPN-01 challenge certificates, by exact name (ACME).
    void set_challenge(std::string_view name, std::shared_ptr<const CertifiedKey> ck);
    bool remove_challenge(std::string_view name);
    std::shared_ptr<const CertifiedKey> select_challenge(std::string_view server_name) const;

  private:
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::shared_ptr<const CertifiedKey>> by_name_;
    std::unordered_map<std::string, std::shared_ptr<const CertifiedKey>> challenges_;
    std::shared_ptr<const CertifiedKey> default_;
};

struct ClientTrust {
    std::string ca_file;                // PEM bundle of trust anchors; empty = system roots
    bool insecure_skip_verify = false;  // no chain or hostname check (the caller warns)
};

class Context {
  public:
    SSL_CTX* native() const { return ctx_.get(); }
    Protocol protocol() const { return protocol_; }
    bool is_server() const { return store_ != nullptr; }
    // Client: false under insecure_skip_verify.
    bool verifies_peer() const { return verify_; }
    // Server only; null for client contexts.
    const std::shared_ptr<CertStore>& cert_store() const { return store_; }
    // The ALPN protocols in preference order; the engines fail a handshake that does not
    // negotiate one of them (empty list = no ALPN required).
    const std::vector<std::string>& alpn() const { return alpn_; }

    // Use the make_* functions.
    Context(SslCtxPtr ctx, Protocol p, std::shared_ptr<CertStore> store, bool verify,
            std::vector<std::string> alpn);
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

  private:
    SslCtxPtr ctx_;
    Protocol protocol_;
    std::shared_ptr<CertStore> store_;
    bool verify_;
    std::vector<std::string> alpn_;
    std::string alpn_wire_;  // length-prefixed list for OpenSSL
};

// Engines keep the context alive (and with it the CertStore the SSL_CTX callbacks point at).
using ContextPtr = std::shared_ptr<const Context>;

// A server context whose CertStore holds `cert_pem` (leaf + chain) / `key_pem` as the default.
ContextPtr make_server_context(std::string_view cert_pem, std::string_view key_pem, Protocol p,
                               std::vector<std::string> alpn = {kAlpnHopgate});
// A server context selecting certificates from `store` per SNI at each handshake.
ContextPtr make_server_context(std::shared_ptr<CertStore> store, Protocol p,
                               std::vector<std::string> alpn = {kAlpnHopgate});
// A client context: verifies the chain against `trust` (unless insecure) and, per connection,
// the hostname given to the engine.
ContextPtr make_client_context(const ClientTrust& trust, Protocol p,
                               std::vector<std::string> alpn = {kAlpnHopgate});

// Per-connection client set-up shared by the engines: SNI (DNS names only, not IP literals)
// and hostname/IP verification unless the context is insecure. Errc::kInvalidArgument.
core::Status prepare_client_ssl(SSL* ssl, const Context& ctx, std::string_view server_name);

// After a handshake: Ok when the context requires no ALPN or one of its protocols was
// selected; otherwise Errc::kHandshake with `why` filled.
core::Status check_alpn(SSL* ssl, const Context& ctx, std::string* why);

}  // namespace hopgate::tls
