#include "tls/tls_stream_engine.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>

#include "tls/error.hpp"
#include "tls/ssl_util.hpp"

namespace hopgate::tls {
namespace {
int clamp_int(std::size_t n) { return static_cast<int>(std::min<std::size_t>(n, INT_MAX)); }
}  // namespace

std::unique_ptr<TlsStreamEngine> TlsStreamEngine::client(ContextPtr ctx,
                                                         std::string_view server_name,
                                                         TlsStreamOptions opts) {
    auto e = std::make_unique<TlsStreamEngine>(PrivateTag{}, std::move(ctx), false, opts);
    e->setup(server_name);
    return e;
}

std::unique_ptr<TlsStreamEngine> TlsStreamEngine::server(ContextPtr ctx, TlsStreamOptions opts) {
    auto e = std::make_unique<TlsStreamEngine>(PrivateTag{}, std::move(ctx), true, opts);
    e->setup({});
    return e;
}

std::unique_ptr<TlsStreamEngine> TlsStreamEngine::adopt_server(ContextPtr ctx, SslPtr ssl,
                                                               TlsStreamOptions opts) {
    auto e = std::make_unique<TlsStreamEngine>(PrivateTag{}, std::move(ctx), true, opts);
    if (!ssl || SSL_is_init_finished(ssl.get()) != 1 || SSL_is_server(ssl.get()) != 1) {
        e->fail(Errc::kInvalidArgument, "no completed server handshake to adopt");
        return e;
    }
    e->ssl_ = std::move(ssl);
    e->rbio_ = BIO_new(BIO_s_mem());
    e->wbio_ = BIO_new(BIO_s_mem());
    if (e->rbio_ == nullptr || e->wbio_ == nullptr) {
        BIO_free(e->rbio_);
        BIO_free(e->wbio_);
        e->rbio_ = e->wbio_ = nullptr;
        e->fail(Errc::kInternal, "BIO_new: " + drain_openssl_errors());
        return e;
    }
    BIO_set_mem_eof_return(e->rbio_, -1);
    SSL_set_bio(e->ssl_.get(), e->rbio_, e->wbio_);  // frees the previous owner's BIO
    SSL_clear_mode(e->ssl_.get(), SSL_MODE_RELEASE_BUFFERS);
    e->done_ = true;
    return e;
}

TlsStreamEngine::TlsStreamEngine(PrivateTag, ContextPtr ctx, bool server, TlsStreamOptions opts)
    : ctx_(std::move(ctx)), server_(server), opts_(opts) {}

void TlsStreamEngine::setup(std::string_view server_name) {
    if (!ctx_ || ctx_->protocol() != Protocol::kTls || ctx_->is_server() != server_) {
        fail(Errc::kInvalidArgument,
             "context is not a TLS " + std::string(server_ ? "server" : "client") + " context");
        return;
    }
    ssl_.reset(SSL_new(ctx_->native()));
    rbio_ = ssl_ ? BIO_new(BIO_s_mem()) : nullptr;
    wbio_ = ssl_ ? BIO_new(BIO_s_mem()) : nullptr;
    if (rbio_ == nullptr || wbio_ == nullptr) {
        BIO_free(rbio_);
        BIO_free(wbio_);
        rbio_ = wbio_ = nullptr;
        fail(Errc::kInternal, "SSL_new: " + drain_openssl_errors());
        return;
    }
    // An empty memory BIO reports "retry", not EOF.
    BIO_set_mem_eof_return(rbio_, -1);
    SSL_set_bio(ssl_.get(), rbio_, wbio_);
    if (server_) {
        SSL_set_accept_state(ssl_.get());
    } else {
        if (auto st = prepare_client_ssl(ssl_.get(), *ctx_, server_name); !st) {
            fail(Errc::kInvalidArgument, "invalid server name '" + std::string(server_name) + "'");
            return;
        }
        SSL_set_connect_state(ssl_.get());
        drive_handshake();
    }
}

void TlsStreamEngine::drive_handshake() {
    if (failed_ || done_ || !ssl_) {
        return;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_.get());
    if (r == 1) {
        std::string why;
        if (auto st = check_alpn(ssl_.get(), *ctx_, &why); !st) {
            fail(Errc::kHandshake, why);
            return;
        }
        done_ = true;
        return;
    }
    int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return;
    }
    fail(Errc::kHandshake, describe_failure("handshake"));
}

std::string TlsStreamEngine::describe_failure(const char* what) const {
    return detail::describe_ssl_failure(ssl_.get(), !server_, what);
}

void TlsStreamEngine::fail(Errc code, std::string why) {
    if (failed_) {
        return;
    }
    failed_ = true;
    fail_code_ = code;
    error_ = std::move(why);
    ERR_clear_error();
}

std::size_t TlsStreamEngine::on_bytes(std::span<const std::uint8_t> data) {
    if (failed_ || !ssl_ || data.empty()) {
        return 0;
    }
    std::size_t pending = BIO_ctrl_pending(rbio_);
    std::size_t room = pending >= opts_.max_inbound_buffer ? 0 : opts_.max_inbound_buffer - pending;
    std::size_t n = std::min(room, data.size());
    if (n == 0) {
        return 0;
    }
    int w = BIO_write(rbio_, data.data(), clamp_int(n));
    if (w <= 0) {
        fail(Errc::kInternal, "BIO_write: " + drain_openssl_errors());
        return 0;
    }
    if (!done_) {
        drive_handshake();
    }
    return static_cast<std::size_t>(w);
}

std::size_t TlsStreamEngine::pop_bytes(std::span<std::uint8_t> out) {
    if (!wbio_ || out.empty()) {
        return 0;
    }
    int n = BIO_read(wbio_, out.data(), clamp_int(out.size()));
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

std::size_t TlsStreamEngine::pending_bytes() const {
    return wbio_ != nullptr ? BIO_ctrl_pending(wbio_) : 0;
}

core::Result<std::size_t> TlsStreamEngine::read(std::span<std::uint8_t> out) {
    if (failed_) {
        return fail_code_;
    }
    if (peer_closed_) {
        return Errc::kClosed;
    }
    if (!done_) {
        drive_handshake();
        if (failed_) {
            return fail_code_;
        }
        if (!done_) {
            return std::size_t{0};
        }
    }
    if (out.empty()) {
        return Errc::kInvalidArgument;
    }
    clear_openssl_errors();
    int n = SSL_read(ssl_.get(), out.data(), clamp_int(out.size()));
    if (n > 0) {
        return static_cast<std::size_t>(n);
    }
    switch (SSL_get_error(ssl_.get(), n)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return std::size_t{0};
        case SSL_ERROR_ZERO_RETURN:
            peer_closed_ = true;
            return Errc::kClosed;
        default:
            fail(Errc::kProtocol, describe_failure("read"));
            return fail_code_;
    }
}

core::Result<std::size_t> TlsStreamEngine::write(std::span<const std::uint8_t> plaintext) {
    if (failed_) {
        return fail_code_;
    }
    if (closed_) {
        return Errc::kClosed;
    }
    if (!done_) {
        return Errc::kNotReady;
    }
    if (plaintext.empty()) {
        return std::size_t{0};
    }
    std::size_t pending = BIO_ctrl_pending(wbio_);
    if (pending >= opts_.max_outbound_buffer) {
        return std::size_t{0};
    }
    // Take no more than the room left (plus one record's worth of slack from encryption).
    std::size_t n = std::min(plaintext.size(), opts_.max_outbound_buffer - pending);
    clear_openssl_errors();
    int w = SSL_write(ssl_.get(), plaintext.data(), clamp_int(n));
    if (w > 0) {
        return static_cast<std::size_t>(w);
    }
    switch (SSL_get_error(ssl_.get(), w)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return std::size_t{0};
        default:
            fail(Errc::kProtocol, describe_failure("write"));
            return fail_code_;
    }
}

void TlsStreamEngine::close_notify() {
    if (closed_ || !ssl_) {
        return;
    }
    closed_ = true;
    if (done_ && !failed_) {
        detail::ssl_close_notify(ssl_.get());
    }
}

std::string_view TlsStreamEngine::alpn() const { return detail::ssl_alpn(ssl_.get()); }

std::string_view TlsStreamEngine::cipher() const { return detail::ssl_cipher(ssl_.get()); }

std::string_view TlsStreamEngine::version() const {
    return ssl_ ? SSL_get_version(ssl_.get()) : "";
}

}  // namespace hopgate::tls
