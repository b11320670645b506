#include "net/tls_socket.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <cstdint>
#include <limits>

namespace hopgate::net {

namespace {

namespace asio = boost::asio;

// A socket BIO over a non-blocking descriptor. OpenSSL's own (BIO_s_socket) writes with
// write(2), which raises SIGPIPE on a connection the peer reset; send(MSG_NOSIGNAL) does not.
int fd_of(BIO* b) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b))); }

int bio_write(BIO* b, const char* in, int len) {
    BIO_clear_retry_flags(b);
    const ssize_t n = ::send(fd_of(b), in, static_cast<std::size_t>(len), MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            BIO_set_retry_write(b);
        }
        return -1;
    }
    return static_cast<int>(n);
}

int bio_read(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    const ssize_t n = ::recv(fd_of(b), out, static_cast<std::size_t>(len), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            BIO_set_retry_read(b);
        }
        return -1;
    }
    return static_cast<int>(n);
}

long bio_ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered in the BIO
}

int bio_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

const BIO_METHOD* socket_method() {
    static BIO_METHOD* m = [] {
        BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hopgate socket");
        if (bm) {
            BIO_meth_set_write(bm, bio_write);
            BIO_meth_set_read(bm, bio_read);
            BIO_meth_set_ctrl(bm, bio_ctrl);
            BIO_meth_set_create(bm, bio_create);
        }
        return bm;
    }();
    return m;
}

[[noreturn]] void fail(const char* what) {
    ERR_clear_error();
    throw boost::system::system_error(asio::error::no_memory, what);
}

}  // namespace

TlsSocket::TlsSocket(tcp::socket sock, SSL_CTX* ctx) : sock_(std::move(sock)) {
    boost::system::error_code ec;
    sock_.non_blocking(true, ec);
    if (ec) {
        sock_.close(ec);  // never let OpenSSL block the thread: every operation fails instead
    }
    const BIO_METHOD* method = socket_method();
    ssl_ = method ? SSL_new(ctx) : nullptr;
    if (!ssl_) {
        fail("SSL_new");
    }
    BIO* bio = BIO_new(method);
    if (!bio) {
        SSL_free(ssl_);
        fail("BIO_new");
    }
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(sock_.native_handle())));
    SSL_set_bio(ssl_, bio, bio);  // one reference, owned by the SSL
    // Partial writes (Beast loops); a retried write may come from a moved buffer; read ahead: one
    // recv takes every record that fits in the read buffer (else two per record: header, body).
    // Record buffers are released while the handshake runs: a handshake that stalls holds none.
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                           SSL_MODE_RELEASE_BUFFERS);
    SSL_set_read_ahead(ssl_, 1);
}

TlsSocket::~TlsSocket() {
    SSL_free(ssl_);  // the BIO does not own the descriptor: sock_ closes it
}

SSL* TlsSocket::release(tcp::socket& out) {
    out = std::move(sock_);
    SSL* ssl = ssl_;
    ssl_ = nullptr;
    return ssl;
}

bool TlsSocket::release_buffers() {
    if (ssl_ == nullptr) {
        return false;
    }
    SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
    idle_ = true;
    return SSL_free_buffers(ssl_) == 1;
}

TlsSocket::Step TlsSocket::step(Kind kind, void* data, std::size_t size) {
    if (!sock_.is_open()) {
        return Step{true, asio::error::bad_descriptor, 0};
    }
    ERR_clear_error();
    int r = 0;
    std::size_t n = 0;
    switch (kind) {
        case Kind::kHandshake:
            r = SSL_do_handshake(ssl_);
            break;
        case Kind::kRead:
            r = SSL_read_ex(ssl_, data, size, &n);
            break;
        case Kind::kWrite:
            r = SSL_write_ex(ssl_, data, size, &n);
            break;
    }
    const int sys_errno = errno;
    if (r == 1) {
        if (kind == Kind::kHandshake) {
            // Requests run with their record buffers kept (no malloc/free per record); the
            // owner releases them between requests (release_buffers).
            SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
        } else if (idle_ && kind == Kind::kRead && n > 0) {
            SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);  // a request is coming in
            idle_ = false;
        }
        return Step{true, {}, n};
    }
    switch (SSL_get_error(ssl_, r)) {
        case SSL_ERROR_WANT_READ:
            return Step{false, {}, 0, tcp::socket::wait_read};
        case SSL_ERROR_WANT_WRITE:
            return Step{false, {}, 0, tcp::socket::wait_write};
        case SSL_ERROR_ZERO_RETURN:
            return Step{true, asio::error::eof, 0};
        case SSL_ERROR_SYSCALL: {
            ERR_clear_error();
            if (sys_errno != 0 && r < 0) {
                return Step{true,
                            boost::system::error_code(sys_errno, boost::system::system_category()),
                            0};
            }
            return Step{true, asio::ssl::error::stream_truncated, 0};
        }
        default: {
            const unsigned long e = ERR_peek_last_error();
            ERR_clear_error();
            if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                return Step{true, asio::ssl::error::stream_truncated, 0};
            }
            if (e == 0) {
                return Step{true, asio::ssl::error::unspecified_system_error, 0};
            }
            return Step{
                true,
                boost::system::error_code(static_cast<int>(e), asio::error::get_ssl_category()), 0};
        }
    }
}

}  // namespace hopgate::net
