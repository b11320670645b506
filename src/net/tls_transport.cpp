// TLS/TCP transport: the same tunnel protocol in stream mode over TLS 1.2/1.3 on TCP.
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <memory>
#include <span>
#include <unordered_set>

#include "net/accept_backoff.hpp"
#include "net/clock.hpp"
#include "net/transport.hpp"
#include "tls/tls_stream_engine.hpp"

namespace hopgate::net {
namespace {

using core::Instant;
using tcp = asio::ip::tcp;

constexpr std::size_t kReadSize = 64 * 1024;
constexpr std::size_t kRecordBuf = 64 * 1024;

proto::ConnectionConfig stream_config(const TransportOptions& o, proto::Role role) {
    proto::ConnectionConfig c = o.conn;
    c.role = role;
    c.mode = proto::Mode::kStream;
    c.handshake_timeout = o.handshake_timeout;
    return c;
}

void tune_tcp(tcp::socket& s) {
    boost::system::error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    // Prefer BBR where the kernel offers it; silently keep the default otherwise.
    const char bbr[] = "bbr";
    (void)setsockopt(s.native_handle(), IPPROTO_TCP, TCP_CONGESTION, bbr, sizeof bbr - 1);
}

// A byte buffer that grows without zero-filling (vector::resize would memset every byte of
// ciphertext before overwriting it) and keeps its capacity.
class ByteBuf {
public:
    std::uint8_t* data() { return p_.get(); }
    std::size_t size() const { return len_; }
    bool empty() const { return len_ == 0; }
    void clear() { len_ = 0; }
    // Room for `n` more bytes at data() + size(); commit() what was written.
    std::span<std::uint8_t> prepare(std::size_t n) {
        if (cap_ - len_ < n) {
            const std::size_t cap = std::max(cap_ * 2, len_ + n);
            auto p = std::make_unique_for_overwrite<std::uint8_t[]>(cap);
            if (len_ > 0) {
                std::memcpy(p.get(), p_.get(), len_);
            }
            p_ = std::move(p);
            cap_ = cap;
        }
        return {p_.get() + len_, n};
    }
    void commit(std::size_t n) { len_ += n; }
    void swap(ByteBuf& o) noexcept {
        std::swap(p_, o.p_);
        std::swap(cap_, o.cap_);
        std::swap(len_, o.len_);
    }

private:
    std::unique_ptr<std::uint8_t[]> p_;
    std::size_t cap_ = 0;
    std::size_t len_ = 0;
};

// One TLS/TCP tunnel, either role. Owns the socket, the TLS engine and the connection.
class TlsTunnel final : public Tunnel {
public:
    using Closed = std::function<void(TlsTunnel*)>;

    TlsTunnel(tcp::socket sock, std::unique_ptr<tls::TlsStreamEngine> engine, proto::Role role,
              TransportOptions opts, DialDone done, Closed on_closed)
        : Tunnel(TransportKind::kTls, endpoint_string(sock)), sock_(std::move(sock)),
          engine_(std::move(engine)), role_(role), opts_(std::move(opts)),
          done_(std::move(done)), on_closed_(std::move(on_closed)), timer_(sock_.get_executor()),
          linger_timer_(sock_.get_executor()), started_(core::steady_now()), rbuf_(kReadSize),
          plain_(kReadSize), rec_(kRecordBuf) {
        tune_tcp(sock_);
    }

    // Server: called once the TLS handshake is done so the application can attach events.
    std::function<void(const std::shared_ptr<Tunnel>&)> on_ready;

    void start() {
        do_read();
        flush();
        // An adopted connection's SSL may already hold records read ahead with the handshake.
        read_plaintext();
        flush();
    }

    void flush() override {
        if (closed_) {
            return;
        }
        dispatch_events();
        if (!conn_ && engine_->handshake_done()) {
            conn_ = std::make_unique<proto::Connection>(stream_config(opts_, role_),
                                                        core::steady_now());
            if (role_ == proto::Role::kServer && on_ready) {
                on_ready(shared_from_this());
            }
            if (done_) {
                auto cb = std::move(done_);
                done_ = nullptr;
                cb(shared_from_this(), "");
            }
        }
        if (conn_) {
            const Instant now = core::steady_now();
            // Records go from the connection into rec_, straight into the TLS engine (which
            // may take part of them), and the ciphertext into the write buffer: no other copies.
            while (queued() < opts_.tcp_write_high_water) {
                if (rec_off_ == rec_len_) {
                    rec_off_ = 0;
                    rec_len_ = conn_->write_stream_bytes(rec_, now);
                    if (rec_len_ == 0) {
                        break;
                    }
                }
                auto w = engine_->write(
                    std::span<const std::uint8_t>(rec_).subspan(rec_off_, rec_len_ - rec_off_));
                if (!w || *w == 0) {
                    break;
                }
                rec_off_ += *w;
                pump_engine();
            }
            dispatch_events();
        }
        pump_engine();
        do_write();
        if (engine_->failed()) {
            fail("TLS handshake failed: " + engine_->error());
            return;
        }
        if (conn_ && conn_->is_closed() && queued() == 0) {
            finish();
            return;
        }
        if (!conn_ && core::steady_now() > started_ + opts_.handshake_timeout) {
            fail("TLS handshake timed out");
            return;
        }
        arm_timer();
    }

    void abort() override {
        if (conn_ && !conn_->is_closing()) {
            conn_->close(proto::WireError::kNoError, "closing tunnel");
            flush();
        }
        finish();
    }

private:
    static std::string endpoint_string(const tcp::socket& s) {
        boost::system::error_code ec;
        auto ep = s.remote_endpoint(ec);
        if (ec) {
            return "?";
        }
        return ep.address().to_string() + ":" + std::to_string(ep.port());
    }

    std::size_t queued() const { return fill_.size() + (inflight_.size() - inflight_off_); }

    // Ciphertext is appended to fill_ while inflight_ is being written; they swap when a write
    // completes, so both keep their capacity and steady streaming allocates nothing.
    void pump_engine() {
        for (;;) {
            const std::size_t pending = engine_->pending_bytes();
            if (pending == 0) {
                break;
            }
            const std::size_t n = engine_->pop_bytes(fill_.prepare(pending));
            fill_.commit(n);
            if (n == 0) {
                break;
            }
        }
    }

    void do_write() {
        if (writing_ || sock_closed_) {
            return;
        }
        if (inflight_off_ == inflight_.size()) {
            inflight_.clear();
            inflight_off_ = 0;
            inflight_.swap(fill_);
        }
        if (inflight_.empty()) {
            if (linger_ && !shut_) {
                // Everything is out: send FIN, then wait (bounded) for the peer's EOF.
                shut_ = true;
                boost::system::error_code ec;
                sock_.shutdown(tcp::socket::shutdown_send, ec);
                linger_timer_.expires_after(std::chrono::seconds(2));
                linger_timer_.async_wait(
                    [self = shared_from_this()](const boost::system::error_code& e) {
                        if (!e) {
                            static_cast<TlsTunnel*>(self.get())->close_socket();
                        }
                    });
            }
            return;
        }
        writing_ = true;
        sock_.async_write_some(
            asio::buffer(inflight_.data() + inflight_off_, inflight_.size() - inflight_off_),
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                auto* t = static_cast<TlsTunnel*>(self.get());
                t->writing_ = false;
                if (ec) {
                    t->fail("write: " + ec.message());
                    t->close_socket();
                    return;
                }
                t->inflight_off_ += n;
                if (t->linger_) {
                    t->do_write();
                } else {
                    t->flush();
                }
            });
    }

    // The pending read holds the tunnel alive while its socket is open (and is destroyed with
    // the io_context, so nothing leaks); closing the socket ends it.
    void do_read() {
        sock_.async_read_some(asio::buffer(rbuf_), [self = shared_from_this()](
                                                       const boost::system::error_code& ec,
                                                       std::size_t n) {
            auto* t = static_cast<TlsTunnel*>(self.get());
            if (t->sock_closed_) {
                return;
            }
            if (t->linger_) {
                // Closing: discard input until the peer's EOF (or the linger timer).
                if (ec) {
                    t->close_socket();
                } else {
                    t->do_read();
                }
                return;
            }
            if (ec) {
                t->fail(ec == asio::error::eof ? "peer closed the connection" : ec.message());
                return;
            }
            t->on_bytes(std::span<const std::uint8_t>(t->rbuf_).first(n));
            if (!t->closed_) {
                t->do_read();
            }
        });
    }

    void on_bytes(std::span<const std::uint8_t> b) {
        // The engine's inbound buffer is bounded: feed, drain, repeat.
        while (!b.empty() && !closed_) {
            const std::size_t used = engine_->on_bytes(b);
            b = b.subspan(used);
            flush();  // creates the connection once the handshake is done
            const bool progress = read_plaintext() || used > 0;
            if (!progress) {
                fail("TLS input could not be processed");
                return;
            }
        }
        flush();
    }

    // Decrypted bytes into the connection; true if there were any.
    bool read_plaintext() {
        bool any = false;
        while (conn_ && !closed_) {
            auto r = engine_->read(plain_);
            if (!r || *r == 0) {
                break;
            }
            any = true;
            conn_->on_stream_bytes(std::span<const std::uint8_t>(plain_).first(*r),
                                   core::steady_now());
        }
        return any;
    }

    void arm_timer() {
        Instant t = conn_ ? conn_->next_timeout().value_or(core::kInstantMax)
                          : started_ + opts_.handshake_timeout;
        timer_.arm(t, shared_from_this(), [](Tunnel& self) {
            auto& tun = static_cast<TlsTunnel&>(self);
            if (tun.closed_) {
                return;
            }
            if (tun.conn_) {
                tun.conn_->on_timeout(core::steady_now());
            }
            tun.flush();
        });
    }

    void fail(const std::string& why) {
        if (done_) {
            auto cb = std::move(done_);
            done_ = nullptr;
            finish();
            cb(nullptr, why);
            return;
        }
        if (conn_ && !conn_->is_closed()) {
            // The byte stream is gone: the connection cannot say goodbye.
            conn_->on_transport_closed(why);
        }
        finish();
    }

    // The tunnel is finished for the application; the socket closes gracefully: TLS
    // close_notify, our FIN after everything queued, then the peer's input is drained until its
    // EOF (at most 2 s), so unread input cannot turn the close into a RST that destroys data
    // still in flight to the peer (such as a CONNECTION_CLOSE with its reason).
    void finish() {
        if (closed_) {
            return;
        }
        closed_ = true;
        timer_.cancel();
        dispatch_events();
        if (on_closed_) {
            on_closed_(this);
        }
        engine_->close_notify();
        pump_engine();
        linger_ = true;
        do_write();
    }

    void close_socket() {
        if (sock_closed_) {
            return;
        }
        sock_closed_ = true;
        linger_ = false;
        linger_timer_.cancel();
        boost::system::error_code ec;
        sock_.close(ec);
    }

    tcp::socket sock_;
    std::unique_ptr<tls::TlsStreamEngine> engine_;
    proto::Role role_;
    TransportOptions opts_;
    DialDone done_;
    Closed on_closed_;
    LazyTimer timer_;
    asio::steady_timer linger_timer_;
    Instant started_;
    std::vector<std::uint8_t> rbuf_;
    std::vector<std::uint8_t> plain_;
    std::vector<std::uint8_t> rec_;      // one batch of records from the connection
    std::size_t rec_off_ = 0;            // how much of it the TLS engine has taken
    std::size_t rec_len_ = 0;
    ByteBuf fill_;      // ciphertext waiting for the socket
    ByteBuf inflight_;  // ciphertext being written
    std::size_t inflight_off_ = 0;
    bool writing_ = false;
    bool linger_ = false;
    bool shut_ = false;
    bool sock_closed_ = false;
};

}  // namespace

struct TlsServer::Impl : std::enable_shared_from_this<TlsServer::Impl> {
    asio::io_context& io;
    tcp::acceptor acceptor;
    tls::ContextPtr ctx;
    TransportOptions opts;
    NewTunnel on_tunnel;
    std::unordered_map<TlsTunnel*, std::shared_ptr<TlsTunnel>> live;
    AcceptBackoff backoff;
    bool stopped = false;

    Impl(asio::io_context& io_, const tcp::endpoint* listen, tls::ContextPtr c,
         TransportOptions o, NewTunnel cb)
        : io(io_), acceptor(io_), ctx(std::move(c)), opts(std::move(o)), on_tunnel(std::move(cb)),
          backoff(io_.get_executor(), "tunnel_tls", opts.log) {
        if (listen != nullptr) {
            acceptor.open(listen->protocol());
            acceptor.set_option(asio::socket_base::reuse_address(true));
            acceptor.bind(*listen);
            acceptor.listen();
        }
    }

    void do_accept() {
        std::weak_ptr<Impl> weak = shared_from_this();
        acceptor.async_accept([weak](const boost::system::error_code& ec, tcp::socket s) {
            auto self = weak.lock();
            if (!self || self->stopped) {
                return;
            }
            if (!ec) {
                self->accepted(std::move(s));
            }
            self->backoff.next(ec, [weak] {
                if (auto me = weak.lock(); me && !me->stopped) {
                    me->do_accept();
                }
            });
        });
    }

    void accepted(tcp::socket s, tls::SslPtr established = nullptr) {
        if (live.size() >= opts.max_sessions) {
            return;  // socket closes as it goes out of scope
        }
        auto engine = established ? tls::TlsStreamEngine::adopt_server(ctx, std::move(established))
                                  : tls::TlsStreamEngine::server(ctx);
        if (!engine || engine->failed()) {
            return;
        }
        std::weak_ptr<Impl> weak = shared_from_this();
        auto t = std::make_shared<TlsTunnel>(
            std::move(s), std::move(engine), proto::Role::kServer, opts, nullptr,
            [weak](TlsTunnel* dead) {
                if (auto self = weak.lock()) {
                    // Defer: the tunnel is still on the stack.
                    asio::post(self->io, [self, dead] { self->live.erase(dead); });
                }
            });
        t->on_ready = on_tunnel;
        live[t.get()] = t;
        t->start();
    }
};

TlsServer::TlsServer(asio::io_context& io, const tcp::endpoint& listen, tls::ContextPtr ctx,
                     TransportOptions opts, NewTunnel on_tunnel)
    : impl_(std::make_shared<Impl>(io, &listen, std::move(ctx), std::move(opts),
                                   std::move(on_tunnel))) {}

TlsServer::TlsServer(asio::io_context& io, tls::ContextPtr ctx, TransportOptions opts,
                     NewTunnel on_tunnel)
    : impl_(std::make_shared<Impl>(io, nullptr, std::move(ctx), std::move(opts),
                                   std::move(on_tunnel))) {}

void TlsServer::adopt(tcp::socket sock, tls::SslPtr ssl) {
    if (impl_->stopped) {
        return;  // the socket closes; the SSL is freed
    }
    impl_->accepted(std::move(sock), std::move(ssl));
}

TlsServer::~TlsServer() { stop(); }

tcp::endpoint TlsServer::local_endpoint() const {
    if (!impl_->acceptor.is_open()) {
        return {};
    }
    return impl_->acceptor.local_endpoint();
}

void TlsServer::start() {
    if (impl_->acceptor.is_open()) {
        impl_->do_accept();
    }
}

void TlsServer::stop() {
    if (impl_->stopped) {
        return;
    }
    impl_->stopped = true;
    impl_->backoff.cancel();
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    auto live = impl_->live;
    for (auto& [p, t] : live) {
        t->abort();
    }
    impl_->live.clear();
}

std::size_t TlsServer::tunnels() const { return impl_->live.size(); }

void dial_tls(asio::io_context& io, const tcp::endpoint& server, tls::ContextPtr ctx,
              const std::string& server_name, TransportOptions opts, TunnelEvents* events,
              DialDone done) {
    auto engine = tls::TlsStreamEngine::client(ctx, server_name);
    if (!engine) {
        asio::post(io, [done] { done(nullptr, "cannot create a TLS client engine"); });
        return;
    }
    auto sock = std::make_shared<tcp::socket>(io);
    auto eng = std::make_shared<std::unique_ptr<tls::TlsStreamEngine>>(std::move(engine));
    auto timer = std::make_shared<asio::steady_timer>(io);
    timer->expires_after(opts.handshake_timeout);
    timer->async_wait([sock](const boost::system::error_code& ec) {
        if (!ec) {
            boost::system::error_code ignore;
            sock->close(ignore);  // connect attempt took too long
        }
    });
    sock->async_connect(server, [sock, eng, timer, opts, events, done](
                                    const boost::system::error_code& ec) mutable {
        timer->cancel();
        if (ec) {
            done(nullptr, "connect: " + ec.message());
            return;
        }
        auto t = std::make_shared<TlsTunnel>(std::move(*sock), std::move(*eng),
                                             proto::Role::kClient, opts, done, nullptr);
        t->set_events(events);
        t->start();
    });
}

}  // namespace hopgate::net
