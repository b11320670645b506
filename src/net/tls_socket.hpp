// A TLS stream on a TCP socket whose SSL object reads and writes the socket itself (a small
// socket BIO: recv/send with MSG_NOSIGNAL on the non-blocking descriptor), for the HTTPS front
// door's visitor connections.
//
// Why not asio::ssl::stream: it pairs every SSL with a BIO pair (two 17 KiB buffers) and two
// 17 KiB staging vectors, ~68 KiB per connection for its whole life, idle or not. Here the only
// buffers are OpenSSL's record buffers: SSL_MODE_RELEASE_BUFFERS is on until the handshake is
// done (a stalled handshake holds none), off while requests run (no malloc/free per record), and
// on again from release_buffers(), when the connection goes idle between requests, until the
// next request's first bytes arrive. An idle kept-alive visitor then costs its SSL object,
// session and socket (see docs/ARCHITECTURE.md §4).
//
// Models Asio's AsyncReadStream / AsyncWriteStream (Beast's HTTP algorithms run on it) and the
// parts of asio::ssl::stream the front door uses: async_handshake, native_handle, next_layer.
// Errors are those of asio::ssl::stream: asio::error::eof on the peer's close_notify,
// asio::ssl::error::stream_truncated on a TCP close without it, OpenSSL errors in
// asio::error::get_ssl_category(), operation_aborted when the socket is closed under a pending
// operation, bad_descriptor for an operation started on a closed socket (the SSL object never
// touches a descriptor number after close: it may belong to another connection by then).
//
// Completion handlers are never called from inside the initiating function (an operation that
// OpenSSL completes at once posts its completion). At most one read and one write (or one
// handshake) in flight; everything on the socket's executor (the gateway's io_context thread).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <memory>

namespace hopgate::net {

class TlsSocket {
  public:
    using tcp = boost::asio::ip::tcp;
    using executor_type = tcp::socket::executor_type;
    using next_layer_type = tcp::socket;
    using lowest_layer_type = tcp::socket;

    // Takes the connected socket (made non-blocking; if that fails it is closed and every
    // operation fails) and a new SSL from `ctx`. Throws boost::system::system_error
    // (no_memory) if OpenSSL cannot allocate, as asio::ssl::stream does.
    TlsSocket(tcp::socket sock, SSL_CTX* ctx);
    TlsSocket(tcp::socket sock, boost::asio::ssl::context& ctx)
        : TlsSocket(std::move(sock), ctx.native_handle()) {}
    ~TlsSocket();
    TlsSocket(const TlsSocket&) = delete;
    TlsSocket& operator=(const TlsSocket&) = delete;

    SSL* native_handle() { return ssl_; }
    tcp::socket& next_layer() { return sock_; }
    tcp::socket& lowest_layer() { return sock_; }
    executor_type get_executor() { return sock_.get_executor(); }

    // The connection goes idle: frees OpenSSL's read and write record buffers unless they hold
    // unprocessed bytes (a pipelined request already received, a record not yet sent), and
    // keeps them released (SSL_MODE_RELEASE_BUFFERS: a read that finds nothing frees its buffer
    // before it waits) until a read returns data. Returns true if they were freed now.
    bool release_buffers();

    // Hands the TCP socket and the SSL over to a new owner (the front door's ALPN hopgate/1
    // connections go to the TLS tunnel server) once the handshake is done and no operation is
    // in flight. The SSL's BIO still names the socket's descriptor: the new owner replaces it
    // before any further SSL call. Afterwards this TlsSocket is closed: every operation fails
    // with bad_descriptor.
    SSL* release(tcp::socket& out);

    // Handler: void(boost::system::error_code). A server waits until the socket is readable
    // before OpenSSL starts: the handshake state (a ~22 KiB message buffer and a write-buffering
    // BIO) then exists only once a ClientHello is coming, not for a connection that sends nothing.
    template <class Token>
    auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, Token&& token) {
        IoOp<true> op(this, Kind::kHandshake, nullptr, 0);
        if (type == boost::asio::ssl::stream_base::client) {
            SSL_set_connect_state(ssl_);
        } else {
            SSL_set_accept_state(ssl_);
            op.await_readable = true;
        }
        return boost::asio::async_compose<Token, void(boost::system::error_code)>(std::move(op),
                                                                                  token, sock_);
    }

    // Handler: void(boost::system::error_code, std::size_t). Reads into the first non-empty
    // buffer of the sequence.
    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        boost::asio::mutable_buffer b = first_buffer<boost::asio::mutable_buffer>(buffers);
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            IoOp<false>{this, Kind::kRead, b.data(), b.size()}, token, sock_);
    }

    // Handler: void(boost::system::error_code, std::size_t). Writes a prefix of the sequence
    // (Beast's algorithms loop). A sequence of small pieces (an HTTP head is a dozen) is copied
    // into one record of up to kCoalesce bytes, as beast::flat_stream does for ssl_stream: one
    // record and one send instead of one per piece.
    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        boost::asio::const_buffer b = first_buffer<boost::asio::const_buffer>(buffers);
        IoOp<false> op(this, Kind::kWrite, const_cast<void*>(b.data()), b.size());
        if (b.size() < kCoalesce) {
            const std::size_t total = boost::asio::buffer_size(buffers);
            if (total > b.size()) {
                const std::size_t n = total < kCoalesce ? total : kCoalesce;
                op.copy.reset(new unsigned char[n]);
                op.data = op.copy.get();
                op.size = boost::asio::buffer_copy(boost::asio::buffer(op.copy.get(), n), buffers);
            }
        }
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            std::move(op), token, sock_);
    }

    // Largest write assembled from several buffers: one TLS record's plaintext.
    static constexpr std::size_t kCoalesce = 16 * 1024;

  private:
    enum class Kind { kHandshake, kRead, kWrite };
    struct Step {
        bool done = true;  // false: wait for `wait`, then call again
        boost::system::error_code ec;
        std::size_t bytes = 0;
        tcp::socket::wait_type wait = tcp::socket::wait_read;
    };
    // One OpenSSL call.
    Step step(Kind kind, void* data, std::size_t size);

    template <class Buffer, class Sequence>
    static Buffer first_buffer(const Sequence& seq) {
        for (auto it = boost::asio::buffer_sequence_begin(seq);
             it != boost::asio::buffer_sequence_end(seq); ++it) {
            Buffer b(*it);
            if (b.size() > 0) {
                return b;
            }
        }
        return Buffer();
    }

    template <bool Handshake>
    struct IoOp {
        IoOp(TlsSocket* sock, Kind k, void* d, std::size_t n)
            : s(sock), kind(k), data(d), size(n) {}

        TlsSocket* s;
        Kind kind;
        void* data;
        std::size_t size;
        bool waited = false;          // a socket wait happened: completing now is not inline
        bool posted = false;          // the result is in `result`, delivered through a post
        bool await_readable = false;  // wait for the socket to be readable before the first step
        Step result{};
        std::unique_ptr<unsigned char[]> copy;  // the coalesced pieces of a write (data)

        template <class Self>
        void operator()(Self& self, boost::system::error_code ec = {}) {
            if (posted) {
                return finish(self, result);
            }
            if (ec) {
                return finish(self, Step{true, ec, 0});  // wait aborted: socket closed
            }
            if (await_readable) {
                await_readable = false;
                waited = true;
                s->sock_.async_wait(tcp::socket::wait_read, std::move(self));
                return;
            }
            Step st = (kind != Kind::kHandshake && size == 0) ? Step{} : s->step(kind, data, size);
            if (!st.done) {
                waited = true;
                s->sock_.async_wait(st.wait, std::move(self));
                return;
            }
            if (!waited) {
                posted = true;
                result = st;
                auto ex = s->sock_.get_executor();
                boost::asio::post(ex, std::move(self));
                return;
            }
            finish(self, st);
        }

        template <class Self>
        void finish(Self& self, const Step& st) {
            if constexpr (Handshake) {
                self.complete(st.ec);
            } else {
                self.complete(st.ec, st.bytes);
            }
        }
    };

    tcp::socket sock_;
    SSL* ssl_ = nullptr;
    bool idle_ = false;  // release_buffers() was called and no read returned data since
};

}  // namespace hopgate::net
