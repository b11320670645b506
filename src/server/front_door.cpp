#include "server/front_door.hpp"

#include <openssl/rand.h>
#include <openssl/ssl.h>

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
#include <unordered_set>

#include "admin/cidr.hpp"
#include "core/buffer_budget.hpp"
#include "http/forwarding.hpp"
#include "net/accept_backoff.hpp"
#include "http/framing.hpp"
#include "net/tls_socket.hpp"
#include "server/metrics.hpp"
#include "server/request_head.hpp"
#include "server/tunnel_pool.hpp"

namespace hopgate::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string new_request_id() {
    // RAND_bytes costs a getpid() system call (OpenSSL's fork check) per call: draw the bytes
    // of 64 ids at a time. Per thread, so no lock.
    thread_local std::array<unsigned char, 8 * 64> pool{};
    thread_local std::size_t used = pool.size();
    if (used == pool.size()) {
        RAND_bytes(pool.data(), static_cast<int>(pool.size()));
        used = 0;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s(16, '0');
    for (std::size_t i = 0; i < 8; ++i) {
        const unsigned char c = pool[used + i];
        s[2 * i] = kHex[c >> 4];
        s[2 * i + 1] = kHex[c & 15];
    }
    used += 8;
    return s;
}

namespace {

constexpr std::size_t kChunk = 64 * 1024;
// on_stream_reset()'s code for "the tunnel's transport failed" (not a wire stream code).
constexpr std::uint64_t kTransportFailed = ~std::uint64_t{0};
// Read buffer an idle connection may keep (a request head fits; Beast reads 512 bytes at first).
constexpr std::size_t kIdleReadBuffer = 4 * 1024;
constexpr std::chrono::milliseconds kOpenRetry{5};
constexpr std::chrono::seconds kLingerTime{2};
constexpr std::size_t kLingerBytes = 256 * 1024;
using Clock = std::chrono::steady_clock;
constexpr Clock::time_point kNever = Clock::time_point::max();
// RESET_STREAM / STOP_SENDING code of a stream whose response the gateway refused: a head that
// breaks the HTTP head rules (docs/protocol.md §4.1) or a body that disagrees with its
// Content-Length.
constexpr std::uint64_t kBadResponseCode = 0x107;

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
    std::unordered_set<Session*> sessions;  // every open visitor connection (not owning)
    std::size_t live = 0;
    std::size_t http_live = 0;  // open plain-HTTP (redirect / ACME HTTP-01) connections
    // One per listener: pauses its accept loop on EMFILE and the like instead of spinning.
    std::unordered_map<const tcp::acceptor*, std::unique_ptr<net::AcceptBackoff>> backoffs;
    bool stopped = false;
    core::BufferBudget budget;  // proxy I/O buffers of all exchanges, shared fairly
    // Open visitor connections per source (admin::source_key); an entry exists only while
    // the source has a connection, so the map is bounded by `live`.
    std::unordered_map<std::string, std::size_t> source_connections;

    Impl(asio::io_context& io_, TunnelPool& p, FrontDoorOptions o, ControlHandler c,
         ErrorPageRenderer r, Metrics* m)
        : io(io_), pool(p), opts(std::move(o)), control(std::move(c)), pages(std::move(r)),
          metrics(m), budget(opts.buffer_budget, buffer_shares(opts)) {}

    // A percentage of the budget as bytes; 100 % means no share at all.
    static core::BufferBudget::Shares buffer_shares(const FrontDoorOptions& o) {
        auto share = [&o](unsigned percent) {
            return percent >= 100 ? core::BufferBudget::kUnlimited
                                  : o.buffer_budget * percent / 100;
        };
        return {.per_domain = share(o.buffer_share_domain_percent),
                .per_source = share(o.buffer_share_source_percent)};
    }

    void update_gauges() {
        if (metrics) {
            metrics->connections_open.set(static_cast<std::int64_t>(live));
            metrics->proxy_buffer_bytes.set(static_cast<std::int64_t>(budget.in_use()));
        }
    }
    // Runs `f` on every open session (a copy: `f` may close connections).
    template <class F>
    void each_session(F f);

    // Flushes `t` once the handlers already queued on the io_context have run: the stream
    // writes of every request handled in one turn of the loop share the tunnel's system calls
    // (one TLS record batch or GSO send) instead of one send per request.
    void schedule_flush(const std::shared_ptr<net::Tunnel>& t) {
        for (const auto& [raw, weak] : flush_queue) {
            if (raw == t.get()) {
                return;
            }
        }
        flush_queue.emplace_back(t.get(), t);
        if (!flush_posted) {
            flush_posted = true;
            asio::post(io, [weak = weak_from_this()] {
                if (auto self = weak.lock()) {
                    self->run_flushes();
                }
            });
        }
    }
    void run_flushes() {
        flush_posted = false;
        auto queue = std::move(flush_queue);
        flush_queue.clear();
        for (auto& [raw, weak] : queue) {
            if (auto t = weak.lock(); t && !t->closed()) {
                t->flush();
            }
        }
    }
    std::vector<std::pair<const net::Tunnel*, std::weak_ptr<net::Tunnel>>> flush_queue;
    bool flush_posted = false;

    void accept_https(tcp::acceptor& a);
    void accept_http(tcp::acceptor& a, std::uint16_t https_port);
    // After an accept on `a` completed with `ec`: `rearm` now, after a pause, or never.
    void next_accept(const tcp::acceptor& a, const beast::error_code& ec,
                     std::function<void()> rearm) {
        backoffs.at(&a)->next(ec, std::move(rearm));
    }
    void add_backoff(const tcp::acceptor& a, const char* listener) {
        auto b = std::make_unique<net::AcceptBackoff>(io.get_executor(), listener, opts.log);
        if (metrics) {
            b->on_pause([c = &metrics->accept_pauses.with({listener})] { c->inc(); });
        }
        backoffs[&a] = std::move(b);
    }
    void update_http_gauge() {
        if (metrics) {
            metrics->redirect_connections_open.set(static_cast<std::int64_t>(http_live));
        }
    }
};

namespace {

std::string remote_ip_of(const tcp::socket& s) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string();
}

// One visitor connection over TLS. Requests on it are handled one after another (keep-alive);
// pipelined requests wait in the read buffer until the current response is complete, so their
// responses go out in request order.
class Session : public std::enable_shared_from_this<Session> {
public:
    // `remote_ip`: the peer address as text (logs, forwarding headers); `source`: its
    // admin::source_key, for the per-source limits.
    Session(tcp::socket sock, asio::ssl::context& ctx, std::shared_ptr<FrontDoor::Impl> door,
            std::string remote_ip, std::string source)
        : remote_ip_(std::move(remote_ip)), source_(std::move(source)),
          stream_(std::move(sock), ctx), door_(door), timer_(door->io) {
        // TLS record buffers: none while the handshake runs, kept while requests run, released
        // when the connection goes idle between requests (release_idle_memory).
        ++door->live;
        ++door->source_connections[source_];
        door->sessions.insert(this);
        door->update_gauges();
    }
    ~Session() {
        log_access(false);
        bufs_.reset();
        if (auto d = door_.lock()) {
            --d->live;
            if (auto it = d->source_connections.find(source_);
                it != d->source_connections.end() && --it->second == 0) {
                d->source_connections.erase(it);
            }
            d->sessions.erase(this);
            unregister();
            d->update_gauges();
        }
    }

    void start() {
        auto d = door_.lock();
        // One deadline for the TLS handshake and the whole first request head (slowloris).
        set_io_deadline(d->opts.header_timeout);
        io_begin();
        stream_.async_handshake(asio::ssl::stream_base::server,
                                [self = shared_from_this()](beast::error_code ec) {
                                    self->io_end();
                                    if (ec) {
                                        return;
                                    }
                                    if (self->is_acme_validation()) {
                                        // RFC 8737: the CA only checks the certificate.
                                        self->abort_connection();
                                        return;
                                    }
                                    if (self->alpn_is(tls::kAlpnHopgate)) {
                                        self->hand_to_tunnel_server();
                                        return;
                                    }
                                    self->read_header();
                                });
    }

    // A TLS-ALPN-01 validation handshake (`acme-tls/1` negotiated): no HTTP follows.
    bool is_acme_validation() { return alpn_is(tls::kAlpnAcmeTls); }

    bool alpn_is(std::string_view proto) {
        const unsigned char* sel = nullptr;
        unsigned int len = 0;
        SSL_get0_alpn_selected(stream_.native_handle(), &sel, &len);
        return sel != nullptr && std::string_view(reinterpret_cast<const char*>(sel), len) == proto;
    }

    // A TLS tunnel on the HTTPS port (ALPN hopgate/1): the socket and the established SSL go to
    // the tunnel server; this session (and its visitor accounting) ends here.
    void hand_to_tunnel_server() {
        auto d = door_.lock();
        if (!d || !d->opts.tunnel_handoff) {
            abort_connection();
            return;
        }
        ++timer_gen_;  // a pending deadline is stale now
        timer_.cancel();
        tcp::socket s(d->io);
        tls::SslPtr ssl(stream_.release(s));
        d->opts.tunnel_handoff(std::move(s), std::move(ssl));
    }

    // The front door stops: an idle connection closes now, a busy one after its response.
    void drain() {
        draining_ = true;
        keep_alive_ = false;
        if (!in_request_ || lingering_) {
            abort_connection();
        }
    }

    // The drain deadline passed.
    void force_close() { abort_exchange(); }

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
            case proto::EventType::kStreamReset: on_stream_reset(ev.code); break;
            case proto::EventType::kStreamStopSending: on_stop_sending(); break;
            case proto::EventType::kStreamClosed:
                stream_open_ = false;
                unregister();
                if (piping_) {
                    pump_response();  // the stream is gone: ends the pipe
                }
                break;
            default: break;
        }
        (void)t;
    }

    void on_tunnel_gone(bool transport_failure) {
        on_stream_reset(transport_failure ? kTransportFailed : 0);
    }

private:
    std::uint8_t* up() { return bufs_->bytes().data(); }
    std::uint8_t* down() { return bufs_->bytes().data() + kChunk; }

    tcp::socket& sock() { return beast::get_lowest_layer(stream_); }

    void flush_tunnel() {
        if (tunnel_) {
            if (auto d = door_.lock()) {
                d->schedule_flush(tunnel_);
            }
        }
    }

    // ------------------------------------------------------------------ deadlines
    // One timer per connection and no timer work per operation: setting a deadline only stores
    // a time point, and the pending wait re-checks every deadline when it fires, then waits for
    // the earliest one still set. The wait is re-armed early only when a deadline moves before
    // it, so in steady keep-alive traffic the timer fires about once per timeout period.
    //
    // The socket deadline applies to visitor operations in flight (as Beast's tcp_stream
    // timeouts do): when it passes while one is pending, the socket is closed and the pending
    // operations complete with an error. A deadline that passes while nothing is pending does
    // nothing until the next operation starts.
    void set_io_deadline(std::chrono::seconds timeout) { io_deadline_ = Clock::now() + timeout; }

    void io_begin() {
        ++io_ops_;
        arm(io_deadline_);
    }
    void io_end() { --io_ops_; }

    void arm(Clock::time_point at) {
        if (at == kNever || (timer_armed_ && at >= timer_at_)) {
            return;
        }
        timer_armed_ = true;
        timer_at_ = at;
        timer_.expires_at(at);
        timer_.async_wait([weak = weak_from_this(), g = ++timer_gen_](const beast::error_code& e) {
            auto self = weak.lock();
            if (!self || g != self->timer_gen_) {
                return;
            }
            self->timer_armed_ = false;
            if (!e) {
                self->on_timer();
            }
        });
    }

    void on_timer() {
        const auto now = Clock::now();
        if (io_ops_ > 0 && now >= io_deadline_) {
            io_deadline_ = kNever;
            beast::error_code ignore;
            sock().close(ignore);  // the pending operations fail: header/keep-alive/idle timeout
        }
        if (now >= head_deadline_) {
            head_deadline_ = kNever;
            on_head_timeout();  // may set a later head deadline
        }
        if (now >= pipe_deadline_) {
            pipe_deadline_ = kNever;
            if (!closing_) {
                abort_exchange();  // idle for the whole upgrade idle timeout
            }
        }
        if (now >= close_deadline_) {
            close_deadline_ = kNever;
            abort_connection();
        }
        if (now >= stall_deadline_) {
            stall_deadline_ = kNever;
            on_stalled_reader();
        }
        if (now >= open_retry_) {
            open_retry_ = kNever;
            open_exchange();
        }
        arm(std::min({io_ops_ > 0 ? io_deadline_ : kNever, head_deadline_, pipe_deadline_,
                      close_deadline_, open_retry_, stall_deadline_}));
    }

    // ------------------------------------------------------------------ request
    void read_header() {
        auto d = door_.lock();
        if (!d || d->stopped) {
            return;
        }
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(d->opts.max_header_bytes));
        parser_->body_limit(boost::none);
        if (request_count_ > 0) {
            // Keep-alive: the next head (all of it) must come within the keep-alive timeout.
            set_io_deadline(d->opts.keepalive_timeout);
            release_idle_memory();
        }
        io_begin();
        http::async_read_header(stream_, buf_, *parser_,
                                [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                    self->io_end();
                                    self->on_header(ec);
                                });
    }

    // Between requests a kept-alive connection holds only what waiting needs (docs/ARCHITECTURE.md
    // §4): OpenSSL's record buffers go back (unless they hold bytes of a pipelined request), a
    // read buffer that a request body grew to kChunk shrinks to its unread bytes, and the last
    // request's path (logged already) is dropped.
    void release_idle_memory() {
        stream_.release_buffers();
        if (buf_.capacity() > kIdleReadBuffer) {
            buf_.shrink_to_fit();
        }
        std::string().swap(path_);
    }

    void begin_request() {
        ++request_count_;
        in_request_ = true;
        logged_ = false;
        started_ = std::chrono::steady_clock::now();
        bytes_in_ = bytes_out_ = 0;
        status_ = 0;
        transport_.clear();
        tunnel_peer_.clear();
        domain_known_ = false;
    }

    void on_header(beast::error_code ec) {
        auto d = door_.lock();
        if (!d) {
            return;
        }
        if (ec) {
            // A malformed head (400) or one over the size limit (431) gets its page, then the
            // connection closes: what follows cannot be framed.
            if (const auto v = ::hopgate::http::verdict_for_parse_error(ec)) {
                begin_request();
                rid_ = new_request_id();
                method_.clear();
                host_.clear();
                path_.clear();
                send_page(v.status, "", false);
            }
            return;  // EOF, timeout (slowloris) or reset: the connection ends
        }
        begin_request();
        auto& req = parser_->get();
        const auto incoming = req["X-Request-Id"];
        rid_ = choose_request_id(std::string_view(incoming.data(), incoming.size()),
                                 new_request_id());
        method_ = std::string(req.method_string());
        const auto target = req.target();
        path_ = std::string(std::string_view(target.data(), target.size()).substr(
            0, std::string_view(target.data(), target.size()).find('?')));
        keep_alive_ = req.keep_alive() && !draining_;
        // Framing and size checks before anything goes into the tunnel (http/framing.hpp):
        // request smuggling shapes and heads the tunnel cannot carry get 400/431/501 and a close.
        if (const auto v = ::hopgate::http::check_request_head(req.base())) {
            host_.clear();
            send_page(v.status, "", false);
            return;
        }
        // RFC 9112 §3.2: one Host, present on HTTP/1.1, agreeing with an absolute-form target.
        auto route = route_request(req);
        if (!route) {
            host_.clear();
            send_page(400, "", false);
            return;
        }
        host_ = ::hopgate::http::route_key(route->authority);
        route_ = std::move(*route);
        if (host_ == d->opts.control_domain) {
            if (!route_.origin_target.empty()) {
                req.target(route_.origin_target);  // the control handlers match origin-form
            }
            read_control_body();
            return;
        }
        start_proxy();
    }

    void read_control_body() {
        auto d = door_.lock();
        control_req_.emplace(std::move(*parser_));
        control_req_->body_limit(d->opts.max_control_body);
        io_begin();
        http::async_read(stream_, buf_, *control_req_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             self->io_end();
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
        bytes_in_ += req.body().size();
        // The reply holds the session: nothing else does while the registry works.
        d->control(std::move(req), remote_ip_,
                   [self = shared_from_this()](ControlResponse res) {
                       self->write_control(std::move(res));
                   });
    }

    void write_control(ControlResponse res) {
        // A fresh deadline: the head's deadline may have passed while the answer was prepared.
        if (auto d = door_.lock()) {
            set_io_deadline(d->opts.idle_timeout);
        }
        res.keep_alive(keep_alive_);
        if (!rid_.empty()) {
            res.set("X-Request-Id", rid_);
        }
        res.prepare_payload();
        status_ = res.result_int();
        bytes_out_ += res.body().size();
        auto sp = std::make_shared<ControlResponse>(std::move(res));
        io_begin();
        http::async_write(stream_, *sp, [self = shared_from_this(), sp](beast::error_code ec,
                                                                        std::size_t) {
            self->io_end();
            self->finish_exchange(ec);
        });
    }

    void send_page(int status, const std::string& host, bool keep) {
        auto d = door_.lock();
        if (!d) {
            return;
        }
        ControlResponse res = d->pages(status, host, rid_);
        if (status == 503) {
            res.set(http::field::retry_after, "1");
        }
        keep_alive_ = keep && keep_alive_;
        linger_ = !keep_alive_;
        if (d->metrics) {
            d->metrics->proxy_error(status);
        }
        write_control(std::move(res));
    }

    // Lingering close after an error page that ends the connection (a refused head, bad
    // framing): the rest of what the visitor sent is read and dropped for up to kLingerTime or
    // kLingerBytes, so the close does not turn into a TCP reset that can destroy the page in
    // the visitor's receive buffer before it was read. Our side has already sent its FIN.
    void linger() {
        lingering_ = true;
        if (close_deadline_ == kNever) {
            close_deadline_ = Clock::now() + kLingerTime;
            arm(close_deadline_);
        }
        if (lingered_ >= kLingerBytes) {
            abort_connection();
            return;
        }
        static std::array<char, 4096> discard;  // contents never read: shared by every session
        sock().async_read_some(asio::buffer(discard),
                               [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                   if (ec) {
                                       self->close_deadline_ = kNever;
                                       self->abort_connection();
                                       return;
                                   }
                                   self->lingered_ += n;
                                   self->linger();
                               });
    }

    // ------------------------------------------------------------------ proxy
    void start_proxy() {
        auto d = door_.lock();
        tunnel_ = d->pool.pick(host_);
        domain_known_ = tunnel_ != nullptr || d->pool.known(host_);
        if (!tunnel_) {
            // Unknown host or no client connected for it.
            // Keep the connection only if no request body is left unread.
            send_page(d->pool.known(host_) ? 502 : 404, host_, parser_->is_done());
            return;
        }
        // The exchange's two I/O buffers come from the server-wide budget, within the shares of
        // its domain and of its visitor's source, or it is refused.
        bufs_ = d->budget.try_acquire(2 * kChunk, {.domain = host_, .source = source_});
        d->update_gauges();
        if (!bufs_) {
            if (d->metrics) {
                d->metrics->buffer_refused(d->budget.last_refusal());
            }
            tunnel_.reset();
            send_page(503, host_, false);
            return;
        }
        transport_ = net::transport_name(tunnel_->kind());
        tunnel_peer_ = tunnel_->peer();
        auto& req = parser_->get();
        if (peer_ip_.empty()) {
            // Once per connection: the peer as forwarded (IPv4-mapped unmapped), and its trust.
            const auto peer = admin::parse_ip(remote_ip_);
            peer_ip_ = peer ? admin::to_string(*peer) : remote_ip_;
            trusted_peer_ = peer && d->opts.trusted_proxies.contains(*peer);
        }
        proto::StreamMeta meta = request_head(req, route_, {peer_ip_, trusted_peer_}, rid_);
        upgrade_req_ = meta.kind == proto::StreamKind::kUpgrade;
        if (upgrade_req_ && !parser_->is_done()) {
            // An upgrade request with a body (rare, e.g. h2c over POST) is proxied as a plain
            // request: its body keeps its framing and the answer cannot be a pipe.
            upgrade_req_ = false;
            meta.kind = proto::StreamKind::kHttp;
            std::erase_if(meta.headers, [](const proto::Header& h) {
                return ::hopgate::http::iequals(h.name, "upgrade") ||
                       ::hopgate::http::iequals(h.name, "connection");
            });
        }
        open_meta_ = std::move(meta);
        open_give_up_ = Clock::now() + d->opts.proxy_timeout;
        open_exchange();
    }

    // Opens the exchange's stream. When the tunnel's send buffer is full (uploads of other
    // exchanges not yet acknowledged), the open is retried every kOpenRetry until the proxy
    // timeout (then 503), instead of failing the request; the session holds itself meanwhile.
    void open_exchange() {
        auto hold = std::move(open_hold_);
        auto d = door_.lock();
        if (!d || !sock().is_open()) {
            return;  // the connection was closed while waiting
        }
        if (tunnel_->closed() || !tunnel_->has_conn()) {
            tunnel_.reset();
            send_page(502, host_, false);
            return;
        }
        auto id = tunnel_->conn().open_stream(*open_meta_);
        if (!id) {
            if (id.error() == proto::Errc::kWouldBlock && Clock::now() < open_give_up_) {
                open_hold_ = shared_from_this();
                open_retry_ = Clock::now() + kOpenRetry;
                arm(open_retry_);
                flush_tunnel();
                return;
            }
            // kTooLarge: the visitor's head does not fit in the tunnel's head record (a large
            // header limit): the visitor's fault, not the tenant's.
            const int status = id.error() == proto::Errc::kWouldBlock ? 503
                               : id.error() == proto::Errc::kTooLarge ? 431
                                                                       : 502;
            tunnel_.reset();
            send_page(status, host_, false);
            return;
        }
        open_meta_.reset();
        stream_id_ = *id;
        stream_open_ = true;
        d->exchanges[{tunnel_.get(), stream_id_}] = shared_from_this();
        // The response head must come within the proxy timeout.
        head_deadline_ = Clock::now() + d->opts.proxy_timeout;
        arm(head_deadline_);
        upload_done_ = parser_->is_done();
        if (upload_done_) {
            if (!upgrade_req_) {
                finish_upload();  // an upgrade keeps this direction open for the pipe
            }
        } else {
            read_body();
        }
        flush_tunnel();
    }

    // Upload: visitor body -> tunnel stream, chunk by chunk.
    void read_body() {
        if (upload_done_ || upload_finished_ || reading_body_ || pending_up_ > 0 ||
            !stream_open_) {
            return;
        }
        auto d = door_.lock();
        reading_body_ = true;
        parser_->get().body().data = up();
        parser_->get().body().size = kChunk;
        if (buf_.capacity() < kChunk) {
            buf_.reserve(kChunk);  // Beast reads by free capacity: 512 bytes per read otherwise
        }
        set_io_deadline(d->opts.idle_timeout);
        io_begin();
        http::async_read(stream_, buf_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             self->io_end();
                             self->on_body(ec);
                         });
    }

    void on_body(beast::error_code ec) {
        reading_body_ = false;
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (ec) {
            // Bad chunk framing: the local service gets a reset instead of the rest of the body,
            // the visitor a 400 page (if no response started yet), then the connection closes.
            if (const auto v = ::hopgate::http::verdict_for_parse_error(ec);
                v && !head_sent_ && !page_sent_) {
                reset_stream(0x105);
                head_sent_ = page_sent_ = true;
                send_page(v.status, host_, false);
                return;
            }
            abort_exchange();
            return;
        }
        pending_up_ = kChunk - parser_->get().body().size;
        pending_off_ = 0;
        bytes_in_ += pending_up_;
        upload_done_ = parser_->is_done();
        pump_request();
    }

    void pump_request() {
        if (!tunnel_ || !stream_open_ || !bufs_) {
            return;
        }
        if (upload_finished_) {
            pending_up_ = 0;  // the client stopped reading this direction: drop the rest
            return;
        }
        while (pending_up_ > 0) {
            auto r = tunnel_->conn().stream_write(
                stream_id_, std::span<const std::uint8_t>(up() + pending_off_, pending_up_),
                false);
            if (!r) {
                if (r.error() == proto::Errc::kWouldBlock) {
                    flush_tunnel();
                    return;  // resume on kStreamWritable
                }
                abort_exchange();
                return;
            }
            pending_off_ += *r;
            pending_up_ -= *r;
            up_progress_ = std::chrono::steady_clock::now();
            if (*r == 0) {
                break;
            }
        }
        if (pending_up_ == 0) {
            if (piping_) {
                pipe_read_visitor();
            } else if (upload_done_) {
                finish_upload();
            } else {
                read_body();
            }
        }
        flush_tunnel();
    }

    void finish_upload() {
        if (upload_finished_ || !tunnel_) {
            return;
        }
        upload_finished_ = true;
        (void)tunnel_->conn().stream_finish(stream_id_);
        flush_tunnel();
    }

    // Response: tunnel stream -> visitor.
    void on_response_head(proto::StreamMeta& m) {
        head_deadline_ = kNever;
        if (head_sent_) {
            return;
        }
        head_sent_ = true;
        auto d = door_.lock();
        if (!d) {
            abort_exchange();
            return;
        }
        // The client is not trusted with what reaches the visitor: a head that breaks the HTTP
        // rules (CR/LF or NUL in a value, a name that is not a token, a status outside 200..599)
        // is refused with a 502 page and a reset of the stream.
        ::hopgate::http::ResponseHeadInfo info;
        const auto bad = ::hopgate::http::check_response_head(m, upgrade_req_, info);
        if (bad != ::hopgate::http::ResponseHeadError::kOk) {
            if (d->metrics) {
                d->metrics->bad_response(::hopgate::http::response_head_error_name(bad));
            }
            reset_stream(kBadResponseCode);
            page_sent_ = true;
            send_page(502, host_, false);
            return;
        }
        res_.emplace();
        res_->result(m.status);
        res_->version(11);
        fill_response_headers(*res_, std::move(m.headers), m.status == 101, d->opts.hsts, rid_);
        status_ = m.status;
        if (upgrade_req_ && m.status == 101) {
            start_pipe();
            return;
        }
        // The service declined the upgrade: an ordinary response to a body-less request. The
        // upload is finished only once the response is set up below: finishing flushes the
        // tunnel, which can deliver this stream's body re-entrantly into pump_response().
        const bool declined_upgrade = upgrade_req_;
        upgrade_req_ = false;
        if (method_ == "HEAD" || m.status == 204 || m.status == 304) {
            no_body_ = true;
        }
        if (!res_->has_content_length() && !no_body_) {
            res_->chunked(true);
        }
        body_left_.reset();
        if (!no_body_ && m.status != 101) {
            body_left_ = info.content_length;
        }
        res_->keep_alive(keep_alive_);
        res_->body().data = nullptr;
        res_->body().more = true;
        sr_.emplace(*res_);
        // The header deadline of the request may have passed while the tunnel answered.
        set_io_deadline(d->opts.idle_timeout);
        // The head goes out with the first piece of the body when that is already here (one TLS
        // record and one system call for a small response), else alone.
        pump_response();
        if (declined_upgrade) {
            finish_upload();
        }
    }

    void write_response_header() {
        writing_ = true;
        io_begin();
        http::async_write_header(stream_, *sr_,
                                 [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                     self->io_end();
                                     self->writing_ = false;
                                     if (ec) {
                                         self->abort_exchange();
                                         return;
                                     }
                                     self->pump_response();
                                 });
    }

    void pump_response() {
        if (!head_sent_ || writing_ || body_done_ || !tunnel_ || !bufs_ || (!piping_ && !sr_)) {
            return;
        }
        bool fin = false;
        std::size_t n = 0;
        if (stream_open_) {
            auto r = tunnel_->conn().stream_read(stream_id_, std::span<std::uint8_t>(down(), kChunk));
            if (!r) {
                fin = true;  // the stream is gone: end what we have
            } else {
                n = r->bytes;
                fin = r->fin;
            }
        } else {
            fin = true;
        }
        if (n == 0 && !fin) {
            if (!piping_ && !sr_->is_header_done()) {
                write_response_header();  // the body is not here yet: the head goes alone
            }
            flush_tunnel();  // credit returned by the read
            return;
        }
        if (piping_) {
            pipe_write_visitor(n, fin);
            return;
        }
        auto d = door_.lock();
        if (no_body_ && n > 0) {
            // Body bytes to HEAD, 204 or 304 would be read by the visitor as a next response.
            if (d && d->metrics) {
                d->metrics->bad_response("body_length");
            }
            reset_stream(kBadResponseCode);
            n = 0;
            fin = true;
            keep_alive_ = false;
        }
        if (body_left_) {
            // A body longer or shorter than its Content-Length would desynchronise the visitor's
            // connection (extra bytes read as a next response). Longer: the promised bytes go
            // out; shorter: what came goes out; then the connection closes either way, so the
            // visitor sees a complete response or a short one, never bytes of another.
            if (n > *body_left_ || (fin && n < *body_left_)) {
                if (d && d->metrics) {
                    d->metrics->bad_response("body_length");
                }
                reset_stream(kBadResponseCode);
                n = static_cast<std::size_t>(std::min<std::uint64_t>(n, *body_left_));
                fin = true;
                keep_alive_ = false;
            }
            *body_left_ -= n;
        }
        res_->body().data = n > 0 ? down() : nullptr;
        res_->body().size = n;
        res_->body().more = !fin;
        body_done_ = fin;
        bytes_out_ += n;
        writing_ = true;
        if (d) {
            set_io_deadline(d->opts.idle_timeout);
            stall_begin(*d);
        }
        io_begin();
        http::async_write(stream_, *sr_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->io_end();
                              self->writing_ = false;
                              self->stall_deadline_ = kNever;
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
        flush_tunnel();
    }

    // ------------------------------------------------------------------ upgraded pipe
    // After a 101 the connection carries raw bytes both ways: visitor -> stream through up(),
    // stream -> visitor through down(), each direction reading only when its buffer was taken
    // by the other side. Only the upgrade idle timeout applies (no total deadline).
    void start_pipe() {
        auto d = door_.lock();
        piping_ = true;
        if (d->metrics) {
            d->metrics->upgrades.inc();
        }
        io_deadline_ = kNever;
        pipe_touch();
        sr_.emplace(*res_);
        writing_ = true;
        io_begin();
        http::async_write_header(stream_, *sr_,
                                 [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                     self->io_end();
                                     self->writing_ = false;
                                     if (ec) {
                                         self->abort_exchange();
                                         return;
                                     }
                                     self->pipe_read_visitor();
                                     self->pump_response();  // bytes sent right after the 101
                                 });
    }

    void pipe_read_visitor() {
        if (!piping_ || upload_finished_ || closing_ || reading_body_ || pending_up_ > 0 ||
            !stream_open_ || !bufs_) {
            return;
        }
        if (buf_.size() > 0) {
            // Bytes the visitor sent right behind its request head, already read.
            const std::size_t n = asio::buffer_copy(asio::buffer(up(), kChunk), buf_.data());
            buf_.consume(n);
            pending_up_ = n;
            pending_off_ = 0;
            bytes_in_ += n;
            pump_request();
            return;
        }
        reading_body_ = true;
        io_begin();
        stream_.async_read_some(
            asio::buffer(up(), kChunk),
            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                self->io_end();
                self->reading_body_ = false;
                if (self->closing_) {
                    self->abort_connection();  // the visitor answered our close
                    return;
                }
                if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
                    self->finish_upload();  // the visitor is done sending
                    return;
                }
                if (ec) {
                    self->abort_exchange();
                    return;
                }
                self->pipe_touch();
                self->pending_up_ = n;
                self->pending_off_ = 0;
                self->bytes_in_ += n;
                self->pump_request();
            });
    }

    void pipe_write_visitor(std::size_t n, bool fin) {
        body_done_ = fin;
        if (n == 0) {
            pipe_close();
            return;
        }
        bytes_out_ += n;
        writing_ = true;
        pipe_touch();
        if (auto d = door_.lock()) {
            stall_begin(*d);
        }
        io_begin();
        asio::async_write(stream_, asio::buffer(down(), n),
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->io_end();
                              self->writing_ = false;
                              self->stall_deadline_ = kNever;
                              if (ec) {
                                  self->abort_exchange();
                                  return;
                              }
                              self->pipe_touch();
                              if (self->body_done_) {
                                  self->pipe_close();
                              } else {
                                  self->pump_response();
                              }
                          });
        flush_tunnel();
    }

    // The local service finished its direction: nothing more can reach the visitor, so end the
    // connection. TCP FIN first (TLS cannot half-close), then close once the visitor closes or
    // after a short grace period, so in-flight bytes are not lost to a reset.
    void pipe_close() {
        if (closing_) {
            return;
        }
        closing_ = true;
        finish_upload();
        log_access(true);
        beast::error_code ignore;
        sock().shutdown(tcp::socket::shutdown_send, ignore);
        if (!reading_body_) {
            abort_connection();
            return;
        }
        pipe_deadline_ = kNever;
        close_deadline_ = Clock::now() + std::chrono::seconds(2);
        arm(close_deadline_);
    }

    void pipe_touch() {
        auto d = door_.lock();
        if (!d || closing_) {
            return;
        }
        // Progress only moves the deadline; the timer re-checks it when it fires.
        pipe_deadline_ = Clock::now() + d->opts.upgrade_idle_timeout;
        arm(pipe_deadline_);
    }

    // A piece of the response (<= kChunk) goes to the visitor: it must be taken within the stall
    // timeout. Until then the rest of the response waits unread in the tunnel connection, where
    // the core keeps it from blocking other streams (docs/protocol.md §7), but it still holds
    // memory and a share of the connection's credit; so a visitor that stops reading loses the
    // exchange long before the idle timeout.
    void stall_begin(const FrontDoor::Impl& d) {
        stall_deadline_ = Clock::now() + d.opts.stall_timeout;
        arm(stall_deadline_);
    }

    // The visitor took no piece of the response within the stall timeout: reset the stream (its
    // buffered data and credit are released at once) and drop the connection with a TCP reset, so
    // neither the bytes queued in our socket nor the visitor's next request hold anything.
    void on_stalled_reader() {
        if (!writing_) {
            return;
        }
        if (auto d = door_.lock()) {
            d->opts.access_log.warn("stalled reader",
                                    {{"request_id", rid_},
                                     {"host", host_},
                                     {"remote_addr", remote_ip_},
                                     {"bytes_out", bytes_out_},
                                     {"stall_timeout_s", d->opts.stall_timeout.count()}});
        }
        beast::error_code ignore;
        sock().set_option(asio::socket_base::linger(true, 0), ignore);
        abort_exchange();
    }

    void on_head_timeout() {
        if (head_sent_) {
            return;
        }
        // The proxy timeout bounds the wait for the head after the last request byte went into
        // the tunnel: a long upload that keeps moving is not a timeout.
        if (auto d = door_.lock()) {
            const auto quiet = std::chrono::steady_clock::now() - up_progress_;
            if (quiet < d->opts.proxy_timeout) {
                head_deadline_ = Clock::now() + (d->opts.proxy_timeout - quiet);
                arm(head_deadline_);
                return;
            }
        }
        reset_stream(0x104);
        send_page(504, host_, false);
    }

    // The client no longer reads the visitor -> service direction (the service answered before
    // the request body ended, or its socket stopped taking bytes); proto resets that direction.
    // The response keeps flowing; a request body left unread makes the connection unusable
    // afterwards (finish_exchange closes it). Errors come with a reset of the response too.
    void on_stop_sending() {
        upload_finished_ = true;
        pending_up_ = 0;
    }

    void on_stream_reset(std::uint64_t code) {
        head_deadline_ = kNever;
        stream_open_ = false;
        if (!head_sent_ && !page_sent_) {
            page_sent_ = true;
            head_sent_ = true;
            // 0x102: the local service did not answer in time; the tunnel's transport failing
            // is a 525 (SPEC: handshake/transport failure); everything else a bad gateway.
            send_page(code == 0x102 ? 504 : code == kTransportFailed ? 525 : 502, host_, false);
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
            flush_tunnel();
        }
        stream_open_ = false;
        unregister();
    }

    void abort_exchange() {
        reset_stream(0x105);
        abort_connection();
    }

    void abort_connection() {
        log_access(false);
        beast::error_code ec;
        sock().close(ec);
    }

    // One access-log line (and the request metrics) per request, however it ended.
    void log_access(bool completed) {
        if (!in_request_ || logged_) {
            return;
        }
        logged_ = true;
        auto d = door_.lock();
        if (!d) {
            return;
        }
        const auto took = std::chrono::steady_clock::now() - started_;
        if (d->metrics && status_ != 0) {
            d->metrics->request(method_, status_, took);
            const bool admin = !host_.empty() && host_ == d->opts.control_domain;
            d->metrics->request_domain(admin ? Metrics::Kind::kAdmin : Metrics::Kind::kProxy,
                                       host_, domain_known_, status_, took, bytes_in_,
                                       bytes_out_);
        }
        d->opts.access_log.info(
            "request",
            {{"request_id", rid_},
             {"method", method_},
             {"host", host_},
             {"path", path_},
             {"status", status_},
             {"bytes_in", bytes_in_},
             {"bytes_out", bytes_out_},
             {"duration_ms", std::chrono::duration<double, std::milli>(took).count()},
             {"remote_addr", remote_ip_},
             {"transport", transport_},
             {"tunnel", tunnel_peer_},
             {"upgrade", piping_},
             {"completed", completed}});
    }

    void finish_exchange(beast::error_code ec) {
        log_access(!ec);
        auto d = door_.lock();
        head_deadline_ = kNever;
        if (ec || !keep_alive_ || !d) {
            if (tunnel_ && stream_open_ && !body_done_) {
                reset_stream(0x105);
            }
            beast::error_code ignore;
            sock().shutdown(tcp::socket::shutdown_send, ignore);
            if (linger_ && !ec && !reading_body_ && sock().is_open()) {
                linger();
            }
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
        body_left_.reset();
        bufs_.reset();  // an idle connection holds no proxy buffers
        d->update_gauges();
        head_sent_ = writing_ = body_done_ = no_body_ = page_sent_ = false;
        upload_done_ = upload_finished_ = reading_body_ = upgrade_req_ = false;
        pending_up_ = pending_off_ = 0;
        status_ = 0;
        in_request_ = false;
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
    std::string source_;  // admin::source_key of the visitor
    net::TlsSocket stream_;  // TLS on the visitor's socket (no per-connection BIO buffers)
    std::weak_ptr<FrontDoor::Impl> door_;
    // Deadlines (see arm()). kNever = not set.
    asio::steady_timer timer_;
    Clock::time_point timer_at_{};      // expiry of the pending wait, if timer_armed_
    bool timer_armed_ = false;
    std::uint64_t timer_gen_ = 0;       // invalidates a wait superseded by an earlier expiry
    int io_ops_ = 0;                    // visitor socket operations in flight
    Clock::time_point io_deadline_ = kNever;     // for those operations
    Clock::time_point head_deadline_ = kNever;   // response head (proxy timeout)
    Clock::time_point pipe_deadline_ = kNever;   // upgraded pipe idle
    Clock::time_point close_deadline_ = kNever;  // grace of a closing pipe or a lingering close
    Clock::time_point stall_deadline_ = kNever;  // the response piece being written (stall)
    Clock::time_point open_retry_ = kNever;      // next try to open the stream (buffer full)
    Clock::time_point open_give_up_ = kNever;
    std::optional<proto::StreamMeta> open_meta_;  // the request head until its stream is open
    std::shared_ptr<Session> open_hold_;          // keeps the session while the open waits
    beast::flat_buffer buf_;
    std::optional<http::request_parser<http::buffer_body>> parser_;
    std::optional<http::request_parser<http::string_body>> control_req_;
    std::optional<http::response<http::buffer_body>> res_;
    std::optional<http::response_serializer<http::buffer_body>> sr_;
    std::optional<std::uint64_t> body_left_;  // response body bytes its Content-Length promises
    std::shared_ptr<net::Tunnel> tunnel_;
    proto::StreamId stream_id_ = 0;
    bool stream_open_ = false;
    // up() and down(): kChunk bytes each, leased for the duration of one proxied exchange.
    std::optional<core::BufferBudget::Lease> bufs_;
    std::size_t pending_up_ = 0;
    std::size_t pending_off_ = 0;
    bool reading_body_ = false;  // a read from the visitor is in flight (body or pipe)
    bool upload_done_ = false;
    bool upload_finished_ = false;
    bool head_sent_ = false;
    bool page_sent_ = false;
    bool writing_ = false;
    bool body_done_ = false;
    bool no_body_ = false;
    bool keep_alive_ = true;
    bool draining_ = false;
    bool linger_ = false;        // an error page ends the connection: linger() after it
    std::size_t lingered_ = 0;   // bytes dropped while lingering
    bool lingering_ = false;
    bool in_request_ = false;  // a request head was read and its exchange is not over
    bool logged_ = false;
    // Upgrade.
    bool upgrade_req_ = false;
    bool piping_ = false;
    bool closing_ = false;
    std::chrono::steady_clock::time_point up_progress_{};  // last request body bytes to the tunnel
    // Access log.
    std::string host_;
    ::hopgate::http::RequestAuthority route_;  // the current request's checked authority
    std::string peer_ip_;        // remote_ip_ for the forwarding headers; set at the first proxy
    bool trusted_peer_ = false;  // the peer is in HOP_SERVER_TRUSTED_PROXIES
    std::string rid_;
    std::string method_;
    std::string path_;
    std::string transport_;
    std::string tunnel_peer_;    // the serving tunnel's client address ("" if none)
    bool domain_known_ = false;  // host_ had a tunnel since start-up (its own metrics label)
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
    unsigned status_ = 0;
    std::uint64_t request_count_ = 0;
    std::chrono::steady_clock::time_point started_{};
};

// Plain HTTP: ACME HTTP-01 answers for any Host; everything else is redirected to HTTPS.
class RedirectSession : public std::enable_shared_from_this<RedirectSession> {
public:
    // Counted in `door`'s http_live while it exists.
    RedirectSession(tcp::socket s, std::uint16_t https_port, std::chrono::seconds timeout,
                    std::function<std::optional<std::string>(std::string_view)> acme,
                    const std::shared_ptr<FrontDoor::Impl>& door)
        : stream_(std::move(s)), https_port_(https_port), timeout_(timeout),
          acme_(std::move(acme)), door_(door) {
        ++door->http_live;
        door->update_http_gauge();
    }
    ~RedirectSession() {
        if (auto d = door_.lock()) {
            --d->http_live;
            d->update_http_gauge();
        }
    }
    RedirectSession(const RedirectSession&) = delete;
    RedirectSession& operator=(const RedirectSession&) = delete;
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
        constexpr std::string_view kAcmePrefix = "/.well-known/acme-challenge/";
        if (acme_ && req.target().starts_with(kAcmePrefix)) {
            respond_acme(acme_(req.target().substr(kAcmePrefix.size())));
            return;
        }
        auto host = route_host(req);
        res_.result(host ? http::status::permanent_redirect : http::status::bad_request);
        res_.version(11);
        if (host) {
            // From the routed authority and the path and query only: an absolute-form target
            // ("http://host/x") must not be appended whole.
            const auto target = req.target();
            res_.set(http::field::location,
                     ::hopgate::http::https_redirect_location(
                         *host, https_port_, std::string_view(target.data(), target.size())));
        }
        res_.keep_alive(false);
        res_.prepare_payload();
        http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code,
                                                                     std::size_t) {
            beast::error_code ec;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        });
    }

    void respond_acme(std::optional<std::string> key_authz) {
        acme_res_.result(key_authz ? http::status::ok : http::status::not_found);
        acme_res_.version(11);
        acme_res_.set(http::field::content_type, "text/plain");
        acme_res_.body() = key_authz.value_or("");
        acme_res_.keep_alive(false);
        acme_res_.prepare_payload();
        http::async_write(stream_, acme_res_, [self = shared_from_this()](beast::error_code,
                                                                          std::size_t) {
            beast::error_code ec;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        });
    }

    beast::tcp_stream stream_;
    std::uint16_t https_port_;
    std::chrono::seconds timeout_;
    std::function<std::optional<std::string>(std::string_view)> acme_;
    std::weak_ptr<FrontDoor::Impl> door_;
    beast::flat_buffer buf_;
    http::request_parser<http::empty_body> parser_;
    http::response<http::empty_body> res_;
    http::response<http::string_body> acme_res_;
};

}  // namespace

template <class F>
void FrontDoor::Impl::each_session(F f) {
    std::vector<std::shared_ptr<Session>> all;
    for (Session* s : sessions) {
        if (auto sp = s->weak_from_this().lock()) {
            all.push_back(std::move(sp));
        }
    }
    for (auto& s : all) {
        f(*s);
    }
}

void FrontDoor::Impl::accept_https(tcp::acceptor& a) {
    std::weak_ptr<Impl> weak = shared_from_this();
    a.async_accept([weak, &a](beast::error_code ec, tcp::socket s) {
        auto self = weak.lock();
        if (!self || self->stopped) {
            return;
        }
        if (!ec && self->live >= self->opts.max_connections) {
            // Over the cap: `s` closes as it goes out of scope.
            if (self->metrics) {
                self->metrics->connections_rejected.inc();
            }
        } else if (!ec) {
            std::string remote_ip = remote_ip_of(s);  // once per connection: key and logs
            std::string source = admin::source_key(remote_ip);
            const std::size_t cap = self->opts.max_connections_per_source;
            auto it = self->source_connections.find(source);
            if (cap > 0 && it != self->source_connections.end() && it->second >= cap) {
                // One source over its own cap: closed the same way.
                if (self->metrics) {
                    self->metrics->connections_rejected_per_source.inc();
                }
            } else {
                beast::error_code ignored;  // `ec` stays the accept's result for next_accept
                s.set_option(tcp::no_delay(true), ignored);
                std::make_shared<Session>(std::move(s), *self->ssl, self, std::move(remote_ip),
                                          std::move(source))
                    ->start();
            }
        }
        self->next_accept(a, ec, [weak, &a] {
            if (auto me = weak.lock(); me && !me->stopped) {
                me->accept_https(a);
            }
        });
    });
}

void FrontDoor::Impl::accept_http(tcp::acceptor& a, std::uint16_t https_port) {
    std::weak_ptr<Impl> weak = shared_from_this();
    a.async_accept([weak, &a, https_port](beast::error_code ec, tcp::socket s) {
        auto self = weak.lock();
        if (!self || self->stopped) {
            return;
        }
        if (!ec && self->http_live >= self->opts.max_http_connections) {
            // Over the :80 cap: `s` closes as it goes out of scope.
            if (self->metrics) {
                self->metrics->redirect_connections_rejected.inc();
            }
        } else if (!ec) {
            std::make_shared<RedirectSession>(std::move(s), https_port,
                                              self->opts.header_timeout, self->opts.acme_http01,
                                              self)
                ->start();
        }
        self->next_accept(a, ec, [weak, &a, https_port] {
            if (auto me = weak.lock(); me && !me->stopped) {
                me->accept_http(a, https_port);
            }
        });
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
    impl_->add_backoff(*a, "https");
    impl_->acceptors.push_back(std::move(a));
    impl_->accept_https(*impl_->acceptors.back());
    return local;
}

tcp::endpoint FrontDoor::listen_http(const tcp::endpoint& ep, std::uint16_t https_port) {
    auto a = make_acceptor(impl_->io, ep);
    auto local = a->local_endpoint();
    impl_->add_backoff(*a, "http");
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

bool FrontDoor::is_transport_failure(std::uint64_t wire_code) {
    using W = proto::WireError;
    switch (static_cast<W>(wire_code)) {
        case W::kNoError:
        case W::kConnectionRefused:
        case W::kAuthFailed:
        case W::kVersionMismatch:
        case W::kHandshakeTimeout: return false;
        default: return true;
    }
}

void FrontDoor::on_tunnel_closed(net::Tunnel& tunnel, bool transport_failure) {
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
        s->on_tunnel_gone(transport_failure);
    }
}

void FrontDoor::stop() {
    impl_->stopped = true;
    for (auto& [a, b] : impl_->backoffs) {
        b->cancel();
    }
    for (auto& a : impl_->acceptors) {
        beast::error_code ec;
        a->close(ec);
    }
    impl_->each_session([](Session& s) { s.drain(); });
}

void FrontDoor::close_all() {
    impl_->each_session([](Session& s) { s.force_close(); });
}

std::size_t FrontDoor::connections() const { return impl_->live; }

}  // namespace hopgate::server
