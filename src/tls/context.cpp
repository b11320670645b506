#include "tls/context.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <exception>

#include "tls/detail.hpp"
#include "tls/error.hpp"

namespace hopgate::tls {
namespace {

// ECDHE + AEAD only for (D)TLS 1.2: fixed per-record overhead, no CBC padding oracles.
constexpr const char* kCipherList =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

[[noreturn]] void fail(const std::string& what) {
    throw Error("TLS context: " + what + ": " + drain_openssl_errors());
}

SslCtxPtr new_ctx(Protocol p) {
    SslCtxPtr ctx(SSL_CTX_new(p == Protocol::kDtls ? DTLS_method() : TLS_method()));
    if (!ctx) {
        fail("SSL_CTX_new");
    }
    SSL_CTX* c = ctx.get();
    bool ok = true;
    if (p == Protocol::kDtls) {
        ok = SSL_CTX_set_min_proto_version(c, DTLS1_2_VERSION) == 1 &&
             SSL_CTX_set_max_proto_version(c, DTLS1_2_VERSION) == 1;
        // The engine sets the MTU explicitly; the memory BIO has nothing to query.
        SSL_CTX_set_options(c, SSL_OP_NO_QUERY_MTU);
    } else {
        ok = SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) == 1;
        SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (!ok || SSL_CTX_set_cipher_list(c, kCipherList) != 1) {
        fail("protocol/cipher configuration");
    }
    return ctx;
}

std::string alpn_wire(const std::vector<std::string>& alpn) {
    std::string wire;
    for (const auto& a : alpn) {
        if (a.empty() || a.size() > 255) {
            throw Error("TLS context: invalid ALPN protocol '" + a + "'");
        }
        wire += static_cast<char>(a.size());
        wire += a;
    }
    return wire;
}

// Per-connection flag: the ClientHello offered acme-tls/1 (set by client_hello_cb).
int acme_tls_index() {
    static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return idx;
}

bool offered_acme_tls(SSL* ssl) { return SSL_get_ex_data(ssl, acme_tls_index()) != nullptr; }

// SSL_CTX_set_client_hello_cb: runs before SNI, ALPN and certificate selection in every TLS
// version, so it is where a TLS-ALPN-01 validation is recognised.
int client_hello_cb(SSL* ssl, int*, void*) noexcept {
    const unsigned char* p = nullptr;
    std::size_t len = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
                                  &len) != 1 ||
        len < 2) {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    const std::string_view want(kAlpnAcmeTls);
    std::size_t i = 2;
    const std::size_t end = std::min<std::size_t>(len, 2 + ((std::size_t{p[0]} << 8) | p[1]));
    while (i < end) {
        const std::size_t n = p[i];
        if (i + 1 + n > end) {
            break;
        }
        if (std::string_view(reinterpret_cast<const char*>(p + i + 1), n) == want) {
            SSL_set_ex_data(ssl, acme_tls_index(), reinterpret_cast<void*>(1));
            break;
        }
        i += 1 + n;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

// SSL_CTX_set_cert_cb: installs the certificate chosen for this connection's SNI.
int cert_cb(SSL* ssl, void* arg) noexcept {
    try {
        const auto* store = static_cast<const CertStore*>(arg);
        const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        const std::string_view name = sni != nullptr ? std::string_view(sni) : std::string_view();
        auto ck = offered_acme_tls(ssl) ? store->select_challenge(name) : store->select(name);
        if (!ck) {
            return 0;
        }
        return SSL_use_cert_and_key(ssl, ck->leaf(), ck->key(), ck->chain(), 1) == 1 ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

int alpn_select_cb(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                   const unsigned char* in, unsigned int inlen, void* arg) noexcept {
    const auto* wire = static_cast<const std::string*>(arg);
    const std::string_view acme(kAlpnAcmeTls);
    const bool acme_only = offered_acme_tls(ssl);
    // Server preference: walk our list, look for each in the client's.
    std::size_t i = 0;
    while (i < wire->size()) {
        auto len = static_cast<unsigned char>((*wire)[i]);
        const auto* ours = reinterpret_cast<const unsigned char*>(wire->data() + i + 1);
        // A TLS-ALPN-01 validation negotiates acme-tls/1 and nothing else; nobody else does.
        if ((std::string_view(reinterpret_cast<const char*>(ours), len) == acme) != acme_only) {
            i += 1u + len;
            continue;
        }
        unsigned int j = 0;
        while (j < inlen) {
            unsigned char clen = in[j];
            if (j + 1u + clen > inlen) {
                break;
            }
            if (clen == len && std::equal(ours, ours + len, in + j + 1)) {
                *out = in + j + 1;
                *outlen = clen;
                if (std::string_view(reinterpret_cast<const char*>(ours), len) == kAlpnHopgate) {
                    // A tunnel on a shared port (HTTPS): no session ticket, as on the
                    // tunnel listener; nothing follows the handshake before tunnel data.
                    SSL_set_num_tickets(ssl, 0);
                }
                return SSL_TLSEXT_ERR_OK;
            }
            j += 1u + clen;
        }
        i += 1u + len;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int cookie_generate_cb(SSL* ssl, unsigned char* cookie, unsigned int* len) noexcept {
    auto* hooks = static_cast<detail::SslHooks*>(SSL_get_app_data(ssl));
    return hooks != nullptr ? hooks->generate_cookie(cookie, len) : 0;
}

int cookie_verify_cb(SSL* ssl, const unsigned char* cookie, unsigned int len) noexcept {
    auto* hooks = static_cast<detail::SslHooks*>(SSL_get_app_data(ssl));
    return hooks != nullptr ? hooks->verify_cookie(cookie, len) : 0;
}

}  // namespace

// ---- CertStore ----

void CertStore::set_default(std::shared_ptr<const CertifiedKey> ck) {
    std::lock_guard lock(mu_);
    default_ = std::move(ck);
}

void CertStore::set(std::string_view name, std::shared_ptr<const CertifiedKey> ck) {
    std::string key = lower(name);
    std::lock_guard lock(mu_);
    by_name_[std::move(key)] = std::move(ck);
}

bool CertStore::remove(std::string_view name) {
    std::string key = lower(name);
    std::lock_guard lock(mu_);
    return by_name_.erase(key) > 0;
}

std::shared_ptr<const CertifiedKey> CertStore::select(std::string_view server_name) const {
    std::string name = lower(server_name);
    std::lock_guard lock(mu_);
    if (!name.empty()) {
        if (auto it = by_name_.find(name); it != by_name_.end()) {
            return it->second;
        }
        if (auto dot = name.find('.'); dot != std::string::npos && dot > 0) {
            std::string wild = "*" + name.substr(dot);
            if (auto it = by_name_.find(wild); it != by_name_.end()) {
                return it->second;
            }
        }
    }
    return default_;
}

void CertStore::set_challenge(std::string_view name, std::shared_ptr<const CertifiedKey> ck) {
    std::string key = lower(name);
    std::lock_guard lock(mu_);
    challenges_[std::move(key)] = std::move(ck);
}

bool CertStore::remove_challenge(std::string_view name) {
    std::string key = lower(name);
    std::lock_guard lock(mu_);
    return challenges_.erase(key) > 0;
}

std::shared_ptr<const CertifiedKey> CertStore::select_challenge(
    std::string_view server_name) const {
    std::string name = lower(server_name);
    std::lock_guard lock(mu_);
    auto it = challenges_.find(name);
    return it != challenges_.end() ? it->second : nullptr;
}

std::size_t CertStore::size() const {
    std::lock_guard lock(mu_);
    return by_name_.size() + (default_ ? 1 : 0);
}

// ---- Context ----

Context::Context(SslCtxPtr ctx, Protocol p, std::shared_ptr<CertStore> store, bool verify,
                 std::vector<std::string> alpn)
    : ctx_(std::move(ctx)),
      protocol_(p),
      store_(std::move(store)),
      verify_(verify),
      alpn_(std::move(alpn)),
      alpn_wire_(alpn_wire(alpn_)) {
    SSL_CTX* c = ctx_.get();
    if (store_) {
        SSL_CTX_set_cert_cb(c, cert_cb, store_.get());
        if (!alpn_.empty()) {
            SSL_CTX_set_alpn_select_cb(c, alpn_select_cb, &alpn_wire_);
        }
        if (std::find(alpn_.begin(), alpn_.end(), kAlpnAcmeTls) != alpn_.end()) {
            SSL_CTX_set_client_hello_cb(c, client_hello_cb, nullptr);
        }
        if (protocol_ == Protocol::kDtls) {
            SSL_CTX_set_cookie_generate_cb(c, cookie_generate_cb);
            SSL_CTX_set_cookie_verify_cb(c, cookie_verify_cb);
        }
        // Tunnel clients do not resume sessions: a ticket would only add a ~200-byte message
        // to the last flight. Other protocols (the HTTPS front door, which may offer hopgate/1
        // after http/1.1) keep tickets; alpn_select_cb drops them for a hopgate/1 handshake.
        if (!alpn_.empty() && alpn_.front() == kAlpnHopgate) {
            SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(c, 0);
        }
    } else if (!alpn_.empty()) {
        // Note: returns 0 on success.
        if (SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(alpn_wire_.data()),
                                    static_cast<unsigned int>(alpn_wire_.size())) != 0) {
            fail("ALPN");
        }
    }
}

ContextPtr make_server_context(std::string_view cert_pem, std::string_view key_pem, Protocol p,
                               std::vector<std::string> alpn) {
    std::string why;
    auto ck = CertifiedKey::from_pem(cert_pem, key_pem, &why);
    if (!ck) {
        throw Error("TLS server certificate: " + why);
    }
    auto store = std::make_shared<CertStore>();
    store->set_default(std::move(*ck));
    return make_server_context(std::move(store), p, std::move(alpn));
}

ContextPtr make_server_context(std::shared_ptr<CertStore> store, Protocol p,
                               std::vector<std::string> alpn) {
    if (!store) {
        throw Error("TLS context: null certificate store");
    }
    SslCtxPtr ctx = new_ctx(p);
    return std::make_shared<const Context>(std::move(ctx), p, std::move(store), true,
                                           std::move(alpn));
}

ContextPtr make_client_context(const ClientTrust& trust, Protocol p,
                               std::vector<std::string> alpn) {
    SslCtxPtr ctx = new_ctx(p);
    SSL_CTX* c = ctx.get();
    if (!trust.insecure_skip_verify) {
        if (!trust.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(c, trust.ca_file.c_str(), nullptr) != 1) {
                fail("cannot load CA file " + trust.ca_file);
            }
        } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
            fail("cannot load system trust roots");
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    }
    return std::make_shared<const Context>(std::move(ctx), p, nullptr, !trust.insecure_skip_verify,
                                           std::move(alpn));
}

core::Status prepare_client_ssl(SSL* ssl, const Context& ctx, std::string_view server_name) {
    if (server_name.empty() || server_name.size() > 253 ||
        server_name.find('\0') != std::string_view::npos) {
        return Errc::kInvalidArgument;
    }
    std::string name(server_name);
    bool ip = is_ip_literal(name);
    // RFC 6066: SNI carries DNS names only.
    if (!ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
        ERR_clear_error();
        return Errc::kInvalidArgument;
    }
    if (ctx.verifies_peer()) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
        if (ok != 1) {
            ERR_clear_error();
            return Errc::kInvalidArgument;
        }
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    return {};
}

core::Status check_alpn(SSL* ssl, const Context& ctx, std::string* why) {
    if (ctx.alpn().empty()) {
        return {};
    }
    const unsigned char* sel = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl, &sel, &len);
    std::string_view got(reinterpret_cast<const char*>(sel), sel != nullptr ? len : 0);
    for (const auto& a : ctx.alpn()) {
        if (a == got) {
            return {};
        }
    }
    if (why != nullptr) {
        *why = got.empty() ? "peer negotiated no ALPN protocol (want " + ctx.alpn().front() + ")"
                           : "peer negotiated unexpected ALPN '" + std::string(got) + "'";
    }
    return Errc::kHandshake;
}

}  // namespace hopgate::tls
