#include "server/front_door.hpp"

#include <openssl/rand.h>

#include <array>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/asio/post.hpp>
#include <map>
#include <unordered_map>

#include "server/metrics.hpp"
#include "server/request_head.hpp"
#include "server/tunnel_pool.hpp"

namespace hopgate::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string new_request_id() {
    std::array<unsigned char, 8> b{};
    RAND_bytes(b.data(), static_cast<int>(b.size()));
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (auto c : b) {
        s.push_back(hex[c >> 4]);
        s.push_back(hex[c & 15]);
    }
    return s;
}

namespace {

constexpr std::size_t kChunk = 64 * 1024;

class Session;

}  // namespace

struct FrontDoor::Impl : std::enable_shared_from_this<FrontDoor::Impl> {
    asio::io_context& io;
    TunnelPool& pool;
    FrontDoorOptions opts;
    ControlHandler control;
    ErrorPageRenderer pages;
    Metrics* metrics;
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
    std::shared_ptr<asio::ssl::context> ssl;
    tls::ContextPtr tls_ctx;  // owns the callbacks' state (ALPN list, certificate store)
    // (tunnel, stream) -> the session proxying that exchange.
    // Open exchanges hold their session alive while it waits for the tunnel.
    std::map<std::pair<const net::Tunnel*, proto::StreamId>, std::shared_ptr<Session>> exchanges;
    std::size_t live = 0;
    bool stopped = false;

    Impl(asio::io_context& io_, TunnelPool& p, FrontDoorOptions o, ControlHandler c,
         ErrorPageRenderer r, Metrics* m)
        : io(io_), pool(p), opts(std::move(o)), control(std::move(c)), pages(std::move(r)),
          metrics(m) {}

    void accept_https(tcp::acceptor& a);
    void accept_http(tcp::acceptor& a, std::uint16_t https_port);
};

namespace {

std::string remote_ip_of(const tcp::socket& s) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string();
}

// One visitor connection over TLS. Requests on it are handled one after another (keep-alive);
// pipelined requests wait in the read buffer until the current response is complete.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket sock, asio::ssl::context& ctx, std::shared_ptr<FrontDoor::Impl> door)
        : remote_ip_(remote_ip_of(sock)), stream_(std::move(sock), ctx), door_(door),
          head_timer_(door->io) {
        ++door->live;
    }
    ~Session() {
        if (auto d = door_.lock()) {
            --d->live;
            unregister();
        }
    }

    void start() {
        auto d = door_.lock();
        beast::get_lowest_layer(stream_).expires_after(d->opts.header_timeout);
        stream_.async_handshake(asio::ssl::stream_base::server,
                                [self = shared_from_this()](beast::error_code ec) {
                                    if (!ec) {
                                        self->read_header();
                                    }
                                });
    }

    // ---- tunnel side (called by FrontDoor::on_stream_event)
    void on_stream_event(net::Tunnel& t, proto::Event& ev) {
        switch (ev.type) {
            case proto::EventType::kStreamHead:
                if (ev.meta) {
                    on_response_head(*ev.meta);
                }
                break;
            case proto::EventType::kStreamReadable: pump_response(); break;
            case proto::EventType::kStreamWritable: pump_request(); break;
            case proto::EventType::kStreamReset:
            case proto::EventType::kStreamStopSending: on_stream_reset(ev.code); break;
            case proto::EventType::kStreamClosed: stream_open_ = false; unregister(); break;
            default: break;
        }
        (void)t;
    }

    void on_tunnel_gone() { on_stream_reset(0); }

private:
    // ------------------------------------------------------------------ request
    void read_header() {
        auto d = door_.lock();
        if (!d || d->stopped) {
            return;
        }
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(d->opts.max_header_bytes));
        parser_->body_limit(boost::none);
        beast::get_lowest_layer(stream_).expires_after(
            request_count_ == 0 ? d->opts.header_timeout : d->opts.idle_timeout);
        http::async_read_header(stream_, buf_, *parser_,
                                [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                    self->on_header(ec);
                                });
    }

    void on_header(beast::error_code ec) {
        auto d = door_.lock();
        if (!d) {
            return;
        }
        if (ec) {
            if (ec == http::error::header_limit || ec == http::error::bad_target ||
                ec == http::error::bad_method || ec == http::error::bad_version ||
                ec == http::error::bad_field || ec == http::error::bad_value ||
                ec == http::error::bad_line_ending || ec == http::error::bad_chunk) {
                send_page(400, "", false);
            }
            return;  // EOF, timeout (slowloris) or reset: the connection ends
        }
        ++request_count_;
        started_ = std::chrono::steady_clock::now();
        auto& req = parser_->get();
        rid_ = new_request_id();
        method_ = std::string(req.method_string());
        keep_alive_ = req.keep_alive();
        auto host = route_host(req);
        if (!host) {
            send_page(400, "", false);
            return;
        }
        host_ = *host;
        if (host_ == d->opts.control_domain) {
            read_control_body();
            return;
        }
        start_proxy();
    }

    void read_control_body() {
        auto d = door_.lock();
        control_req_.emplace(std::move(*parser_));
        control_req_->body_limit(d->opts.max_control_body);
        http::async_read(stream_, buf_, *control_req_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             self->on_control_body(ec);
                         });
    }

    void on_control_body(beast::error_code ec) {
        auto d = door_.lock();
        if (!d) {
            return;
        }
        if (ec == http::error::body_limit) {
            ControlResponse res{http::status::payload_too_large, 11};
            res.set(http::field::content_type, "application/json");
            res.body() = R"({"success":false,"error":"request body over 64 KiB"})";
            keep_alive_ = false;
            write_control(std::move(res));
            return;
        }
        if (ec) {
            return;
        }
        ControlRequest req = control_req_->release();
        control_req_.reset();
        // The reply holds the session: nothing else does while the registry works.
        d->control(std::move(req), remote_ip_,
                   [self = shared_from_this()](ControlResponse res) {
                       self->write_control(std::move(res));
                   });
    }

    void write_control(ControlResponse res) {
        res.keep_alive(keep_alive_);
        res.prepare_payload();
        status_ = res.result_int();
        auto sp = std::make_shared<ControlResponse>(std::move(res));
        http::async_write(stream_, *sp, [self = shared_from_this(), sp](beast::error_code ec,
                                                                        std::size_t) {
            self->finish_exchange(ec);
        });
    }

    void send_page(int status, const std::string& host, bool keep) {
        auto d = door_.lock();
        if (!d) {
            return;
        }
        ControlResponse res = d->pages(status, host, rid_);
        keep_alive_ = keep && keep_alive_;
        if (d->metrics) {
            d->metrics->proxy_error(status);
        }
        write_control(std::move(res));
    }

    // ------------------------------------------------------------------ proxy
    void start_proxy() {
        auto d = door_.lock();
        tunnel_ = d->pool.pick(host_);
        if (!tunnel_) {
            // Unknown host or no client connected for it.
            // Keep the connection only if no request body is left unread.
            send_page(d->pool.known(host_) ? 502 : 404, host_, parser_->is_done());
            return;
        }
        auto& req = parser_->get();
        proto::StreamMeta meta = request_head(req, remote_ip_, host_, rid_);
        auto id = tunnel_->conn().open_stream(meta);
        if (!id) {
            tunnel_.reset();
            send_page(502, host_, false);
            return;
        }
        stream_id_ = *id;
        stream_open_ = true;
        d->exchanges[{tunnel_.get(), stream_id_}] = shared_from_this();
        // The response head must come within the proxy timeout.
        head_timer_.expires_after(d->opts.proxy_timeout);
        head_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& e) {
            if (auto self = weak.lock(); self && !e) {
                self->on_head_timeout();
            }
        });
        upload_done_ = parser_->is_done();
        if (upload_done_) {
            finish_upload();
        } else {
            read_body();
        }
        tunnel_->flush();
    }

    // Upload: visitor body -> tunnel stream, chunk by chunk.
    void read_body() {
        if (upload_done_ || reading_body_ || pending_up_ > 0 || !stream_open_) {
            return;
        }
        auto d = door_.lock();
        reading_body_ = true;
        parser_->get().body().data = up_.data();
        parser_->get().body().size = up_.size();
        beast::get_lowest_layer(stream_).expires_after(d->opts.idle_timeout);
        http::async_read(stream_, buf_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             self->on_body(ec);
                         });
    }

    void on_body(beast::error_code ec) {
        reading_body_ = false;
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (ec) {
            abort_exchange();
            return;
        }
        pending_up_ = up_.size() - parser_->get().body().size;
        pending_off_ = 0;
        upload_done_ = parser_->is_done();
        pump_request();
    }

    void pump_request() {
        if (!tunnel_ || !stream_open_) {
            return;
        }
        while (pending_up_ > 0) {
            auto r = tunnel_->conn().stream_write(
                stream_id_, std::span<const std::uint8_t>(up_.data() + pending_off_, pending_up_),
                false);
            if (!r) {
                if (r.error() == proto::Errc::kWouldBlock) {
                    tunnel_->flush();
                    return;  // resume on kStreamWritable
                }
                abort_exchange();
                return;
            }
            pending_off_ += *r;
            pending_up_ -= *r;
            if (*r == 0) {
                break;
            }
        }
        if (pending_up_ == 0) {
            if (upload_done_) {
                finish_upload();
            } else {
                read_body();
            }
        }
        tunnel_->flush();
    }

    void finish_upload() {
        if (upload_finished_ || !tunnel_) {
            return;
        }
        upload_finished_ = true;
        (void)tunnel_->conn().stream_finish(stream_id_);
        tunnel_->flush();
    }

    // Response: tunnel stream -> visitor.
    void on_response_head(const proto::StreamMeta& m) {
        head_timer_.cancel();
        if (head_sent_) {
            return;
        }
        head_sent_ = true;
        auto d = door_.lock();
        res_.emplace();
        res_->result(m.status);
        res_->version(11);
        fill_response_headers(*res_, m, d->opts.hsts);
        status_ = m.status;
        if (method_ == "HEAD" || m.status == 204 || m.status == 304) {
            no_body_ = true;
        }
        if (!res_->has_content_length() && !no_body_) {
            res_->chunked(true);
        }
        res_->keep_alive(keep_alive_);
        res_->body().data = nullptr;
        res_->body().more = true;
        sr_.emplace(*res_);
        writing_ = true;
        http::async_write_header(stream_, *sr_,
                                 [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                     self->writing_ = false;
                                     if (ec) {
                                         self->abort_exchange();
                                         return;
                                     }
                                     self->pump_response();
                                 });
    }

    void pump_response() {
        if (!head_sent_ || writing_ || body_done_ || !tunnel_) {
            return;
        }
        bool fin = false;
        std::size_t n = 0;
        if (stream_open_) {
            auto r = tunnel_->conn().stream_read(stream_id_, down_);
            if (!r) {
                fin = true;  // the stream is gone: end what we have
            } else {
                n = r->bytes;
                fin = r->fin;
            }
        }
        if (n == 0 && !fin) {
            tunnel_->flush();  // credit returned by the read
            return;
        }
        auto d = door_.lock();
        res_->body().data = n > 0 ? down_.data() : nullptr;
        res_->body().size = n;
        res_->body().more = !fin;
        body_done_ = fin;
        writing_ = true;
        beast::get_lowest_layer(stream_).expires_after(d->opts.idle_timeout);
        http::async_write(stream_, *sr_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->writing_ = false;
                              if (ec == http::error::need_buffer) {
                                  ec = {};
                              }
                              if (ec) {
                                  self->abort_exchange();
                                  return;
                              }
                              if (self->body_done_) {
                                  self->finish_exchange({});
                              } else {
                                  self->pump_response();
                              }
                          });
        tunnel_->flush();
    }

    void on_head_timeout() {
        if (head_sent_) {
            return;
        }
        reset_stream(0x104);
        send_page(504, host_, false);
    }

    void on_stream_reset(std::uint64_t code) {
        head_timer_.cancel();
        stream_open_ = false;
        if (!head_sent_ && !page_sent_) {
            page_sent_ = true;
            head_sent_ = true;
            // 0x102: the local service did not answer in time; everything else is a bad gateway.
            send_page(code == 0x102 ? 504 : 502, host_, false);
            return;
        }
        if (head_sent_ && !body_done_) {
            abort_connection();
        }
    }

    void reset_stream(std::uint64_t code) {
        if (tunnel_ && stream_open_) {
            (void)tunnel_->conn().stream_reset(stream_id_, code);
            (void)tunnel_->conn().stream_stop_sending(stream_id_, code);
            tunnel_->flush();
        }
        stream_open_ = false;
        unregister();
    }

    void abort_exchange() {
        reset_stream(0x105);
        abort_connection();
    }

    void abort_connection() {
        beast::error_code ec;
        beast::get_lowest_layer(stream_).socket().close(ec);
    }

    void finish_exchange(beast::error_code ec) {
        auto d = door_.lock();
        if (d && d->metrics && status_ != 0) {
            d->metrics->request(method_, status_,
                                std::chrono::steady_clock::now() - started_);
        }
        head_timer_.cancel();
        if (ec || !keep_alive_ || !d) {
            if (tunnel_ && stream_open_ && !body_done_) {
                reset_stream(0x105);
            }
            beast::error_code ignore;
            beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send,
                                                               ignore);
            return;
        }
        // If the visitor did not send the whole body (we answered early), the connection cannot
        // be reused safely.
        if (parser_ && !parser_->is_done() && !control_req_) {
            abort_connection();
            return;
        }
        unregister();
        tunnel_.reset();
        res_.reset();
        sr_.reset();
        head_sent_ = writing_ = body_done_ = no_body_ = page_sent_ = false;
        upload_done_ = upload_finished_ = reading_body_ = false;
        pending_up_ = pending_off_ = 0;
        status_ = 0;
        read_header();
    }

    void unregister() {
        if (!tunnel_) {
            return;
        }
        if (auto d = door_.lock()) {
            auto it = d->exchanges.find({tunnel_.get(), stream_id_});
            if (it != d->exchanges.end() && it->second.get() == this) {
                auto keep = std::move(it->second);  // do not die inside our own member function
                d->exchanges.erase(it);
                asio::post(d->io, [keep = std::move(keep)] {});
            }
        }
    }

    std::string remote_ip_;
    beast::ssl_stream<beast::tcp_stream> stream_;
    std::weak_ptr<FrontDoor::Impl> door_;
    asio::steady_timer head_timer_;
    beast::flat_buffer buf_;
    std::optional<http::request_parser<http::buffer_body>> parser_;
    std::optional<http::request_parser<http::string_body>> control_req_;
    std::optional<http::response<http::buffer_body>> res_;
    std::optional<http::response_serializer<http::buffer_body>> sr_;
    std::shared_ptr<net::Tunnel> tunnel_;
    proto::StreamId stream_id_ = 0;
    bool stream_open_ = false;
    std::array<std::uint8_t, kChunk> up_{};
    std::array<std::uint8_t, kChunk> down_{};
    std::size_t pending_up_ = 0;
    std::size_t pending_off_ = 0;
    bool reading_body_ = false;
    bool upload_done_ = false;
    bool upload_finished_ = false;
    bool head_sent_ = false;
    bool page_sent_ = false;
    bool writing_ = false;
    bool body_done_ = false;
    bool no_body_ = false;
    bool keep_alive_ = true;
    std::string host_;
    std::string rid_;
    std::string method_;
    unsigned status_ = 0;
    std::uint64_t request_count_ = 0;
    std::chrono::steady_clock::time_point started_{};
};

// Plain HTTP: redirect everything to HTTPS (ACME HTTP-01 answers join here with the ACME issue).
class RedirectSession : public std::enable_shared_from_this<RedirectSession> {
public:
    RedirectSession(tcp::socket s, std::uint16_t https_port, std::chrono::seconds timeout)
        : stream_(std::move(s)), https_port_(https_port), timeout_(timeout) {}
    void start() {
        stream_.expires_after(timeout_);
        parser_.header_limit(16 * 1024);
        http::async_read_header(stream_, buf_, parser_,
                                [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                    if (!ec) {
                                        self->respond();
                                    }
                                });
    }

private:
    void respond() {
        auto& req = parser_.get();
        auto host = route_host(req);
        res_.result(host ? http::status::permanent_redirect : http::status::bad_request);
        res_.version(11);
        if (host) {
            std::string loc = "https://" + *host;
            if (https_port_ != 443) {
                loc += ":" + std::to_string(https_port_);
            }
            loc += std::string(req.target());
            res_.set(http::field::location, loc);
        }
        res_.keep_alive(false);
        res_.prepare_payload();
        http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code,
                                                                     std::size_t) {
            beast::error_code ec;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        });
    }

    beast::tcp_stream stream_;
    std::uint16_t https_port_;
    std::chrono::seconds timeout_;
    beast::flat_buffer buf_;
    http::request_parser<http::empty_body> parser_;
    http::response<http::empty_body> res_;
};

}  // namespace

void FrontDoor::Impl::accept_https(tcp::acceptor& a) {
    std::weak_ptr<Impl> weak = shared_from_this();
    a.async_accept([weak, &a](beast::error_code ec, tcp::socket s) {
        auto self = weak.lock();
        if (!self || self->stopped) {
            return;
        }
        if (!ec && self->live < self->opts.max_connections) {
            s.set_option(tcp::no_delay(true), ec);
            std::make_shared<Session>(std::move(s), *self->ssl, self)->start();
        }
        self->accept_https(a);
    });
}

void FrontDoor::Impl::accept_http(tcp::acceptor& a, std::uint16_t https_port) {
    std::weak_ptr<Impl> weak = shared_from_this();
    a.async_accept([weak, &a, https_port](beast::error_code ec, tcp::socket s) {
        auto self = weak.lock();
        if (!self || self->stopped) {
            return;
        }
        if (!ec) {
            std::make_shared<RedirectSession>(std::move(s), https_port,
                                              self->opts.header_timeout)
                ->start();
        }
        self->accept_http(a, https_port);
    });
}

FrontDoor::FrontDoor(asio::io_context& io, TunnelPool& pool, FrontDoorOptions opts,
                     ControlHandler control, ErrorPageRenderer pages, Metrics* metrics)
    : impl_(std::make_shared<Impl>(io, pool, std::move(opts), std::move(control),
                                   std::move(pages), metrics)) {}

FrontDoor::~FrontDoor() { stop(); }

static std::unique_ptr<tcp::acceptor> make_acceptor(asio::io_context& io,
                                                    const tcp::endpoint& ep) {
    auto a = std::make_unique<tcp::acceptor>(io);
    a->open(ep.protocol());
    a->set_option(asio::socket_base::reuse_address(true));
    a->bind(ep);
    a->listen();
    return a;
}

tcp::endpoint FrontDoor::listen_https(const tcp::endpoint& ep, tls::ContextPtr ctx) {
    // Beast's TLS stream takes an asio::ssl::context: give it its own reference to our SSL_CTX.
    SSL_CTX_up_ref(ctx->native());
    impl_->ssl = std::make_shared<asio::ssl::context>(ctx->native());
    impl_->tls_ctx = std::move(ctx);
    auto a = make_acceptor(impl_->io, ep);
    auto local = a->local_endpoint();
    impl_->acceptors.push_back(std::move(a));
    impl_->accept_https(*impl_->acceptors.back());
    return local;
}

tcp::endpoint FrontDoor::listen_http(const tcp::endpoint& ep, std::uint16_t https_port) {
    auto a = make_acceptor(impl_->io, ep);
    auto local = a->local_endpoint();
    impl_->acceptors.push_back(std::move(a));
    impl_->accept_http(*impl_->acceptors.back(), https_port);
    return local;
}

bool FrontDoor::on_stream_event(net::Tunnel& tunnel, proto::Event& ev) {
    auto it = impl_->exchanges.find({&tunnel, ev.stream});
    if (it == impl_->exchanges.end()) {
        return false;
    }
    auto s = it->second;  // the handler may unregister the exchange
    s->on_stream_event(tunnel, ev);
    return true;
}

void FrontDoor::on_tunnel_closed(net::Tunnel& tunnel) {
    std::vector<std::shared_ptr<Session>> hit;
    for (auto it = impl_->exchanges.begin(); it != impl_->exchanges.end();) {
        if (it->first.first == &tunnel) {
            hit.push_back(it->second);
            it = impl_->exchanges.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& s : hit) {
        s->on_tunnel_gone();
    }
}

void FrontDoor::stop() {
    impl_->stopped = true;
    for (auto& a : impl_->acceptors) {
        beast::error_code ec;
        a->close(ec);
    }
}

std::size_t FrontDoor::connections() const { return impl_->live; }

}  // namespace hopgate::server
