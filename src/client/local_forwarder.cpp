#include "client/local_forwarder.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/optional.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <vector>

#include "core/byte_block.hpp"

namespace hopgate::client {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// RFC 9110 §7.6.1 connection-specific fields, plus the legacy Proxy-Connection.
bool is_hop_by_hop(std::string_view name) {
    static constexpr std::string_view kNames[] = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"};
    return std::any_of(std::begin(kNames), std::end(kNames),
                       [&](std::string_view n) { return iequals(n, name); });
}

// Tokens of the Connection header(s): more fields that are hop-by-hop for this message.
template <class Range, class NameOf, class ValueOf>
std::vector<std::string> connection_tokens(const Range& fields, NameOf name_of, ValueOf value_of) {
    std::vector<std::string> out;
    for (const auto& f : fields) {
        if (!iequals(name_of(f), "connection")) {
            continue;
        }
        std::string_view v = value_of(f);
        while (!v.empty()) {
            const auto comma = v.find(',');
            std::string_view tok = v.substr(0, comma);
            while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) {
                tok.remove_prefix(1);
            }
            while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) {
                tok.remove_suffix(1);
            }
            if (!tok.empty()) {
                out.emplace_back(tok);
            }
            if (comma == std::string_view::npos) {
                break;
            }
            v.remove_prefix(comma + 1);
        }
    }
    return out;
}

bool listed(const std::vector<std::string>& tokens, std::string_view name) {
    return std::any_of(tokens.begin(), tokens.end(),
                       [&](const std::string& t) { return iequals(t, name); });
}

bool has_ctl(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

bool is_http_error(const error_code& ec) {
    return ec.category() == make_error_code(http::error::need_more).category();
}

bool stale_connection_error(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
           ec == http::error::end_of_stream;
}

}  // namespace

std::string parse_local_target(std::string_view text, std::string& host, std::uint16_t& port) {
    std::string_view s = text;
    if (s.substr(0, 7) == "http://") {
        s.remove_prefix(7);
    } else if (s.find("://") != std::string_view::npos) {
        return "local target must be plain http (host:port or http://host:port)";
    }
    while (!s.empty() && s.back() == '/') {
        s.remove_suffix(1);
    }
    std::string_view h;
    std::string_view p;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
            return "local target: expected [ipv6]:port";
        }
        h = s.substr(1, close - 1);
        p = s.substr(close + 2);
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string_view::npos) {
            return "local target: missing :port";
        }
        h = s.substr(0, colon);
        p = s.substr(colon + 1);
        if (h.find(':') != std::string_view::npos) {
            return "local target: IPv6 literals need brackets ([::1]:8080)";
        }
    }
    unsigned v = 0;
    const auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (h.empty() || p.empty() || ec != std::errc() || ptr != p.data() + p.size() || v == 0 ||
        v > 65535) {
        return "local target: bad host or port in '" + std::string(text) + "'";
    }
    host = std::string(h);
    port = static_cast<std::uint16_t>(v);
    return {};
}

// Two io_buffer_size blocks per exchange would otherwise be malloc'ed and freed per request.
// Bounded: at most kMax blocks (4 MiB with the default 32 KiB buffers) are kept.
struct LocalForwarder::SpareBlocks {
    static constexpr std::size_t kMax = 128;
    std::size_t size = 0;
    std::vector<core::ByteBlock> blocks;

    core::ByteBlock take() {
        if (blocks.empty()) {
            return core::ByteBlock(size);
        }
        core::ByteBlock b = std::move(blocks.back());
        blocks.pop_back();
        return b;
    }
    void give(core::ByteBlock b) {
        if (b.size() == size && blocks.size() < kMax) {
            blocks.push_back(std::move(b));
        }
    }
};

// ------------------------------------------------------------------------------------------
// Exchange: one tunnel stream <-> one HTTP exchange on one local connection.
//
// Request direction: stream_read() into req_buf_ only when the socket took the previous piece.
// Response direction: the socket is read into resp_buf_ only when the stream accepted all of
// the previous piece (pend_len_ == 0). `gen_` invalidates completions of a superseded socket
// (a stale pooled connection retried on a fresh one).
class LocalForwarder::Exchange : public std::enable_shared_from_this<Exchange> {
public:
    Exchange(LocalForwarder& fwd, const std::shared_ptr<net::Tunnel>& t, proto::StreamId id,
             proto::StreamMeta head)
        : fwd_(&fwd),
          opts_holder_(fwd.opts_),
          opts_(*opts_holder_),
          pool_(fwd.pool_),
          tunnel_(t),
          key_(t.get(), id),
          id_(id),
          head_(std::move(head)),
          spare_(fwd.spare_),
          rbuf_(opts_.max_response_header_bytes + opts_.io_buffer_size + 4096),
          req_buf_(spare_->take()),
          resp_buf_(spare_->take()) {}

    // No operation can still use the buffers: each one holds the exchange alive.
    ~Exchange() {
        spare_->give(std::move(req_buf_));
        spare_->give(std::move(resp_buf_));
    }
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    void start() {
        started_ = Clock::now();
        ++fwd_->st_.requests_total;
        build_request();
        touch();
        acquire();
    }

    void on_readable() {
        if (done_) {
            return;
        }
        if (upgraded_) {
            pipe_pump_tunnel();
        } else {
            pump_request();
        }
    }

    void on_writable() {
        if (done_ || !head_sent_) {
            return;
        }
        if (upgraded_) {
            pipe_deliver();
        } else {
            deliver();
        }
    }

    bool blocked() const { return !done_ && blocked_; }

    // The server reset the stream or sent STOP_SENDING: the visitor is gone.
    void on_peer_abort() {
        if (!done_) {
            ++fwd_->st_.cancelled_total;
            fail(kCancelled);
        }
    }

    // The stream was freed by proto (or the tunnel closed): no more stream calls.
    void on_stream_gone() {
        if (!done_) {
            ++fwd_->st_.cancelled_total;
            stream_gone_ = true;
            fail(kCancelled);
        }
    }

    std::shared_ptr<net::Tunnel> tunnel_ptr() const { return tunnel_.lock(); }

    Clock::time_point deadline() const { return deadline_; }

    // The forwarder's deadline timer found this exchange's deadline passed.
    void on_deadline(Clock::time_point now) {
        if (done_ || now < deadline_) {
            return;
        }
        ++fwd_->st_.timeouts_total;
        fail(kLocalTimeout);
    }

    void cancel() {
        if (!done_) {
            ++fwd_->st_.cancelled_total;
            fail(kCancelled);
        }
    }

private:
    enum class BodyMode {
        kNone,     // no request body: header only (a stray body from the stream is discarded)
        kLength,   // Content-Length from the head
        kChunked,  // length unknown: chunked to the service
        kDecide,   // no framing in the head and a method that may carry a body: the first
                   // stream read decides (FIN alone -> Content-Length: 0, data -> chunked)
    };

    std::shared_ptr<net::Tunnel> tunnel() const {
        if (stream_gone_) {
            return nullptr;
        }
        auto t = tunnel_.lock();
        if (!t || t->closed() || !t->has_conn()) {
            return nullptr;
        }
        return t;
    }

    void flush() {
        if (auto t = tunnel_.lock(); t && !done_) {
            fwd_->schedule_flush(t);
        }
    }

    void build_request() {
        req_.version(11);
        req_.method_string(head_.method);
        req_.target(head_.target);
        const auto tokens = connection_tokens(
            head_.headers, [](const proto::Header& h) -> std::string_view { return h.name; },
            [](const proto::Header& h) -> std::string_view { return h.value; });
        const bool upgrade = head_.kind == proto::StreamKind::kUpgrade;
        std::optional<std::uint64_t> length;
        bool chunked = false;
        for (const auto& h : head_.headers) {
            if (has_ctl(h.name) || has_ctl(h.value) || h.name.empty()) {
                continue;
            }
            if (iequals(h.name, "transfer-encoding")) {
                chunked = true;
                continue;
            }
            if (upgrade && iequals(h.name, "upgrade")) {
                req_.insert(h.name, h.value);
                continue;
            }
            if (is_hop_by_hop(h.name) || listed(tokens, h.name)) {
                continue;
            }
            if (iequals(h.name, "content-length")) {
                std::uint64_t v = 0;
                const auto [p, ec] =
                    std::from_chars(h.value.data(), h.value.data() + h.value.size(), v);
                if (ec == std::errc() && p == h.value.data() + h.value.size()) {
                    length = v;
                }
                continue;  // set below, once
            }
            req_.insert(h.name, h.value);
        }
        const std::string_view m = head_.method;
        if (upgrade) {
            mode_ = BodyMode::kNone;
            req_.set(http::field::connection, "Upgrade");
        } else if (length) {
            req_.content_length(*length);
            mode_ = *length == 0 ? BodyMode::kNone : BodyMode::kLength;
        } else if (chunked) {
            mode_ = BodyMode::kChunked;
            req_.chunked(true);
        } else if (m == "GET" || m == "HEAD" || m == "DELETE" || m == "OPTIONS" || m == "TRACE") {
            mode_ = BodyMode::kNone;
        } else {
            mode_ = BodyMode::kDecide;
        }
    }

    void acquire() {
        pool_->acquire([self = shared_from_this()](error_code ec, LocalPool::Socket sock,
                                                   bool reused) {
            self->on_connected(ec, std::move(sock), reused);
        });
    }

    void on_connected(error_code ec, LocalPool::Socket sock, bool reused) {
        if (done_) {
            if (!ec) {
                pool_->release(std::move(sock), true);  // unused: still a good connection
            }
            return;
        }
        if (ec) {
            if (ec == asio::error::operation_aborted) {
                ++fwd_->st_.cancelled_total;
                fail(kCancelled);
            } else {
                ++fwd_->st_.unreachable_total;
                fail(kLocalUnreachable);
            }
            return;
        }
        sock_.emplace(std::move(sock));
        reused_ = reused;
        pump_request();
        flush();
    }

    // ---- request direction (HTTP)

    void pump_request() {
        if (done_ || !sock_ || writing_local_ || upgraded_ || req_abandoned_) {
            return;
        }
        auto t = tunnel();
        if (!t) {
            return;
        }
        auto& conn = t->conn();
        if (!header_written_) {
            if (mode_ == BodyMode::kDecide) {
                if (conn.stream_readable(id_) > 0) {
                    mode_ = BodyMode::kChunked;
                    req_.chunked(true);
                } else {
                    auto r = conn.stream_read(id_, {});
                    if (!r || !r->fin) {
                        return;  // wait for data or FIN
                    }
                    tunnel_fin_ = true;
                    mode_ = BodyMode::kNone;
                    req_.content_length(0);
                }
            }
            write_request_header();
            return;
        }
        if (tunnel_fin_) {
            return;
        }
        if (mode_ == BodyMode::kNone) {
            if (head_.kind == proto::StreamKind::kUpgrade) {
                return;  // bytes wait for the 101 (then the pipe reads them)
            }
            // Discard a stray body (none is announced) until FIN.
            for (;;) {
                auto r = conn.stream_read(id_, req_buf_);
                if (!r) {
                    return;
                }
                if (r->fin) {
                    tunnel_fin_ = true;
                    return;
                }
                if (r->bytes == 0) {
                    return;
                }
            }
        }
        auto r = conn.stream_read(id_, req_buf_);
        if (!r || (r->bytes == 0 && !r->fin)) {
            return;
        }
        req_body_consumed_ += r->bytes;
        bytes_in_ += r->bytes;
        tunnel_fin_ = r->fin;
        auto& body = req_.body();
        body.data = r->bytes > 0 ? req_buf_.data() : nullptr;
        body.size = r->bytes;
        body.more = !r->fin;
        writing_local_ = true;
        touch();
        http::async_write(*sock_, *sr_,
                          [self = shared_from_this(), g = gen_](error_code ec, std::size_t) {
                              self->on_request_written(g, ec);
                          });
    }

    void write_request_header() {
        sr_.emplace(req_);
        auto& body = req_.body();
        body.data = nullptr;
        body.size = 0;
        body.more = mode_ == BodyMode::kLength || mode_ == BodyMode::kChunked;
        writing_local_ = true;
        http::async_write(*sock_, *sr_,
                          [self = shared_from_this(), g = gen_](error_code ec, std::size_t) {
                              self->on_header_written(g, ec);
                          });
    }

    void on_header_written(std::uint64_t g, error_code ec) {
        if (done_ || g != gen_) {
            return;
        }
        writing_local_ = false;
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (ec) {
            local_error(ec);
            return;
        }
        header_written_ = true;
        if (!req_.body().more) {
            req_done_ = true;
        }
        touch();
        read_head();
        pump_request();
        flush();
    }

    void on_request_written(std::uint64_t g, error_code ec) {
        if (done_ || g != gen_) {
            return;
        }
        writing_local_ = false;
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (ec) {
            if (resp_done_) {
                maybe_complete();  // the service answered early and closed: fine
                return;
            }
            if (head_sent_ || (reading_local_ && req_body_consumed_ > 0)) {
                // The service stopped reading the body (it answered early, e.g. 413, and
                // closed): its answer is being read; the rest of the body is not needed.
                req_abandoned_ = true;
                req_done_ = true;
                if (auto t = tunnel()) {
                    (void)t->conn().stream_stop_sending(id_, 0);
                }
                maybe_complete();
                flush();
                return;
            }
            local_error(ec);
            return;
        }
        if (!req_.body().more) {
            req_done_ = true;
        }
        touch();
        pump_request();
        maybe_complete();
        flush();
    }

    // A socket error before the response head: a stale pooled connection is retried once on a
    // fresh one if nothing of the body was consumed yet (so the request can be replayed).
    void local_error(error_code ec) {
        if (reused_ && !retried_ && !head_sent_ && req_body_consumed_ == 0 &&
            stale_connection_error(ec)) {
            retried_ = true;
            ++fwd_->st_.retries_total;
            ++gen_;
            pool_->release(std::move(*sock_), false);
            sock_.reset();
            sr_.reset();
            parser_.reset();
            rbuf_.consume(rbuf_.size());
            header_written_ = false;
            writing_local_ = false;
            reading_local_ = false;
            req_done_ = false;
            acquire();
            return;
        }
        if (!head_sent_ && (stale_connection_error(ec) || is_http_error(ec))) {
            ++fwd_->st_.bad_responses_total;
            fail(kLocalBadResponse);
        } else {
            ++fwd_->st_.io_errors_total;
            fail(kLocalIoError);
        }
    }

    // ---- response direction

    void read_head() {
        parser_.emplace();
        parser_->header_limit(opts_.max_response_header_bytes);
        parser_->body_limit(boost::none);
        if (head_.method == "HEAD") {
            parser_->skip(true);
        }
        reading_local_ = true;
        http::async_read_header(*sock_, rbuf_, *parser_,
                                [self = shared_from_this(), g = gen_](error_code ec, std::size_t) {
                                    self->on_head(g, ec);
                                });
    }

    void on_head(std::uint64_t g, error_code ec) {
        if (done_ || g != gen_) {
            return;
        }
        reading_local_ = false;
        if (ec) {
            if (is_http_error(ec) && !stale_connection_error(ec)) {
                ++fwd_->st_.bad_responses_total;
                fail(kLocalBadResponse);
                return;
            }
            local_error(ec);
            return;
        }
        auto& res = parser_->get();
        const unsigned status = res.result_int();
        if (status >= 100 && status < 200 && status != 101) {
            read_head();  // 100 Continue, 103 Early Hints: interim, not forwarded
            return;
        }
        const bool upgrade = head_.kind == proto::StreamKind::kUpgrade;
        if (status < 100 || status > 999 || (status == 101 && !upgrade)) {
            ++fwd_->st_.bad_responses_total;
            fail(kLocalBadResponse);
            return;
        }
        auto t = tunnel();
        if (!t) {
            on_stream_gone();
            return;
        }
        proto::StreamMeta meta;
        meta.kind = head_.kind;
        meta.request_id = head_.request_id;
        meta.head = proto::HeadType::kResponse;
        meta.status = static_cast<std::uint16_t>(status);
        const auto tokens = connection_tokens(
            res, [](const auto& f) -> std::string_view { return f.name_string(); },
            [](const auto& f) -> std::string_view { return f.value(); });
        for (const auto& f : res) {
            const std::string_view name = f.name_string();
            if (status == 101 && iequals(name, "upgrade")) {
                meta.headers.push_back({std::string(name), std::string(std::string_view(f.value()))});
                continue;
            }
            if (is_hop_by_hop(name) || listed(tokens, name)) {
                continue;
            }
            meta.headers.push_back({std::string(name), std::string(std::string_view(f.value()))});
        }
        if (status == 101) {
            meta.headers.push_back({"Connection", "Upgrade"});
        }
        if (auto st = t->conn().send_meta(id_, meta); !st) {
            ++fwd_->st_.bad_responses_total;
            fail(kLocalBadResponse);  // e.g. a head over the metadata size limit
            return;
        }
        head_sent_ = true;
        status_ = status;
        ++fwd_->st_.responses_total;
        touch();
        if (status == 101) {
            start_pipe();
        } else if (parser_->is_done()) {
            pend_len_ = 0;
            pend_fin_ = true;
            deliver();
        } else if (rbuf_.size() > 0) {
            // Body bytes that came with the head are parsed now, so a small response enters the
            // stream in the same flush as its head instead of one loop turn later.
            if (!parse_buffered_body()) {
                ++fwd_->st_.bad_responses_total;
                fail(kLocalBadResponse);
                return;
            }
            deliver();
        } else {
            read_body();
        }
        flush();
    }

    // Parses the body bytes already in rbuf_ into resp_buf_ (no I/O), as on_body() would after
    // a read. False on a malformed body.
    bool parse_buffered_body() {
        auto& body = parser_->get().body();
        body.data = resp_buf_.data();
        body.size = resp_buf_.size();
        error_code ec;
        while (rbuf_.size() > 0 && body.size > 0 && !parser_->is_done()) {
            const std::size_t n = parser_->put(rbuf_.data(), ec);
            rbuf_.consume(n);
            if (ec == http::error::need_more || ec == http::error::need_buffer) {
                ec = {};
                break;
            }
            if (ec) {
                return false;
            }
            if (n == 0) {
                break;
            }
        }
        pend_off_ = 0;
        pend_len_ = resp_buf_.size() - body.size;
        pend_fin_ = parser_->is_done();
        touch();
        return true;
    }

    void read_body() {
        if (done_ || reading_local_ || pend_len_ > 0 || pend_fin_) {
            return;
        }
        auto& body = parser_->get().body();
        body.data = resp_buf_.data();
        body.size = resp_buf_.size();
        reading_local_ = true;
        // Beast sizes each socket read by the buffer's free capacity (at least 512 bytes): a
        // buffer sized for the head would read a large body 512 bytes per system call.
        if (rbuf_.capacity() < resp_buf_.size()) {
            rbuf_.reserve(resp_buf_.size());
        }
        http::async_read_some(*sock_, rbuf_, *parser_,
                              [self = shared_from_this(), g = gen_](error_code ec, std::size_t) {
                                  self->on_body(g, ec);
                              });
    }

    void on_body(std::uint64_t g, error_code ec) {
        if (done_ || g != gen_) {
            return;
        }
        reading_local_ = false;
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (ec) {
            // The head went out already: the visitor's response is cut; reset tells the server.
            ++fwd_->st_.bad_responses_total;
            fail(is_http_error(ec) || stale_connection_error(ec)
                     ? kLocalBadResponse
                     : kLocalIoError);
            return;
        }
        pend_off_ = 0;
        pend_len_ = resp_buf_.size() - parser_->get().body().size;
        pend_fin_ = parser_->is_done();
        touch();
        deliver();
        flush();
    }

    // Writes pending response bytes (and FIN) into the stream; false while it would block.
    bool push_to_tunnel() {
        auto t = tunnel();
        if (!t) {
            on_stream_gone();
            return false;
        }
        for (;;) {
            if (pend_len_ == 0 && (!pend_fin_ || fin_sent_)) {
                blocked_ = false;
                return true;
            }
            auto r = t->conn().stream_write(
                id_, std::span<const std::uint8_t>(resp_buf_.data() + pend_off_, pend_len_),
                pend_fin_);
            if (!r) {
                if (r.error() == proto::Errc::kWouldBlock) {
                    blocked_ = true;
                    return false;
                }
                on_stream_gone();  // reset or freed under us
                return false;
            }
            pend_off_ += *r;
            pend_len_ -= *r;
            bytes_out_ += *r;
            if (*r > 0) {
                touch();
            }
            if (pend_len_ == 0) {
                fin_sent_ = pend_fin_;
                blocked_ = false;
                return true;
            }
        }
    }

    void deliver() {
        if (!push_to_tunnel()) {
            return;
        }
        if (pend_fin_) {
            resp_done_ = true;
            maybe_complete();
        } else {
            read_body();
        }
        flush();
    }

    // ---- upgraded pipe

    void start_pipe() {
        upgraded_ = true;
        ++fwd_->st_.upgrades_total;
        req_done_ = false;
        tunnel_fin_ = false;
        pend_fin_ = false;
        touch();
        pipe_read_local();
        pipe_pump_tunnel();
    }

    void pipe_read_local() {
        if (done_ || reading_local_ || pend_len_ > 0 || pend_fin_) {
            return;
        }
        if (rbuf_.size() > 0) {
            // Bytes the service sent right after its 101, already read with the head.
            const std::size_t n = asio::buffer_copy(asio::buffer(resp_buf_.data(), resp_buf_.size()), rbuf_.data());
            rbuf_.consume(n);
            pend_off_ = 0;
            pend_len_ = n;
            pipe_deliver();
            return;
        }
        reading_local_ = true;
        sock_->async_read_some(asio::buffer(resp_buf_.data(), resp_buf_.size()), [self = shared_from_this(), g = gen_](
                                                            error_code ec, std::size_t n) {
            if (self->done_ || g != self->gen_) {
                return;
            }
            self->reading_local_ = false;
            if (ec == asio::error::eof) {
                self->pend_len_ = 0;
                self->pend_fin_ = true;
            } else if (ec) {
                ++self->fwd_->st_.io_errors_total;
                self->fail(kLocalIoError);
                return;
            } else {
                self->pend_off_ = 0;
                self->pend_len_ = n;
            }
            self->touch();
            self->pipe_deliver();
        });
    }

    void pipe_deliver() {
        if (!push_to_tunnel()) {
            return;
        }
        if (pend_fin_) {
            maybe_complete();
        } else {
            pipe_read_local();
        }
        flush();
    }

    void pipe_pump_tunnel() {
        if (done_ || writing_local_ || tunnel_fin_) {
            return;
        }
        auto t = tunnel();
        if (!t) {
            return;
        }
        auto r = t->conn().stream_read(id_, req_buf_);
        if (!r || (r->bytes == 0 && !r->fin)) {
            return;
        }
        bytes_in_ += r->bytes;
        tunnel_fin_ = r->fin;
        if (r->bytes == 0) {
            half_close_local();
            flush();
            return;
        }
        writing_local_ = true;
        touch();
        asio::async_write(*sock_, asio::buffer(req_buf_.data(), r->bytes),
                          [self = shared_from_this(), g = gen_](error_code ec, std::size_t) {
                              if (self->done_ || g != self->gen_) {
                                  return;
                              }
                              self->writing_local_ = false;
                              if (ec) {
                                  ++self->fwd_->st_.io_errors_total;
                                  self->fail(kLocalIoError);
                                  return;
                              }
                              self->touch();
                              if (self->tunnel_fin_) {
                                  self->half_close_local();
                              } else {
                                  self->pipe_pump_tunnel();
                              }
                              self->flush();
                          });
        flush();  // credit for what was read
    }

    void half_close_local() {
        error_code ignored;
        sock_->shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        req_done_ = true;
        maybe_complete();
    }

    // ---- end of the exchange

    void maybe_complete() {
        if (done_) {
            return;
        }
        auto self = shared_from_this();
        if (upgraded_) {
            if (fin_sent_ && req_done_) {
                finish(false);
            }
            return;
        }
        if (!resp_done_) {
            return;
        }
        bool reusable = parser_ && parser_->keep_alive() && req_done_ && !writing_local_ &&
                        head_.kind != proto::StreamKind::kUpgrade;
        if (!tunnel_fin_) {
            // The service answered before the request body ended (or the FIN is still in
            // flight): stop the rest of the body; the connection cannot carry another request.
            if (mode_ != BodyMode::kNone) {
                reusable = false;
            }
            if (auto t = tunnel()) {
                (void)t->conn().stream_stop_sending(id_, 0);
            }
        }
        finish(reusable);
    }

    void log_access(std::uint64_t code) const {
        const std::string_view path = std::string_view(head_.target).substr(
            0, std::string_view(head_.target).find('?'));
        opts_.access_log.info(
            "request",
            {{"request_id", head_.request_id},
             {"method", head_.method},
             {"path", path},
             {"status", status_},
             {"bytes_in", bytes_in_},
             {"bytes_out", bytes_out_},
             {"duration_ms",
              std::chrono::duration<double, std::milli>(Clock::now() - started_).count()},
             {"upgrade", upgraded_},
             {"result", code == 0 ? std::string_view("ok") : stream_code_name(code)}});
    }

    void finish(bool reusable) {
        auto self = shared_from_this();
        log_access(0);
        ++fwd_->st_.completed_total;
        flush();
        done_ = true;
        ++gen_;
        if (sock_) {
            pool_->release(std::move(*sock_), reusable);
            sock_.reset();
        }
        fwd_->erase(key_);
    }

    void fail(std::uint64_t code) {
        if (done_) {
            return;
        }
        auto self = shared_from_this();
        log_access(code);
        if (auto t = tunnel()) {
            (void)t->conn().stream_reset(id_, code);
            (void)t->conn().stream_stop_sending(id_, code);
            fwd_->schedule_flush(t);
        }
        done_ = true;
        ++gen_;
        if (sock_) {
            pool_->release(std::move(*sock_), false);
            sock_.reset();
        }
        fwd_->erase(key_);
    }

    // ---- timeouts: one deadline moved forward by progress, watched by the forwarder's timer

    std::chrono::milliseconds current_timeout() const {
        if (!head_sent_) {
            return opts_.response_head_timeout;
        }
        return upgraded_ ? opts_.upgrade_idle_timeout : opts_.body_idle_timeout;
    }

    void touch() {
        if (done_) {
            return;
        }
        deadline_ = Clock::now() + current_timeout();
        fwd_->arm_deadline(deadline_);
    }

    LocalForwarder* fwd_;  // valid while !done_
    std::shared_ptr<const ForwarderOptions> opts_holder_;  // shared, not copied per exchange
    const ForwarderOptions& opts_;
    std::shared_ptr<LocalPool> pool_;
    std::weak_ptr<net::Tunnel> tunnel_;
    Key key_;
    proto::StreamId id_;
    proto::StreamMeta head_;

    std::optional<LocalPool::Socket> sock_;
    bool reused_ = false;
    bool retried_ = false;
    std::uint64_t gen_ = 0;

    http::request<http::buffer_body> req_;
    std::optional<http::request_serializer<http::buffer_body>> sr_;
    BodyMode mode_ = BodyMode::kNone;
    bool header_written_ = false;
    bool writing_local_ = false;
    bool req_done_ = false;    // request (or the pipe's tunnel->local half) fully written
    bool req_abandoned_ = false;  // the service stopped reading the body; its answer still counts
    bool tunnel_fin_ = false;  // FIN read from the stream
    std::uint64_t req_body_consumed_ = 0;
    // Access log: stream bytes read (request, or visitor -> service on a pipe) and written.
    Clock::time_point started_{};
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
    unsigned status_ = 0;

    std::shared_ptr<SpareBlocks> spare_;
    beast::flat_buffer rbuf_;
    std::optional<http::response_parser<http::buffer_body>> parser_;
    core::ByteBlock req_buf_;
    core::ByteBlock resp_buf_;
    std::size_t pend_off_ = 0;  // response bytes in resp_buf_ not yet accepted by the stream
    std::size_t pend_len_ = 0;
    bool pend_fin_ = false;  // the pending piece ends the response
    bool fin_sent_ = false;
    bool head_sent_ = false;
    bool reading_local_ = false;
    bool resp_done_ = false;
    bool upgraded_ = false;
    bool blocked_ = false;
    bool stream_gone_ = false;

    Clock::time_point deadline_ = Clock::time_point::max();
    bool done_ = false;
};

// ------------------------------------------------------------------------------------------

LocalForwarder::LocalForwarder(asio::any_io_executor ex, ForwarderOptions opts)
    : ex_(std::move(ex)),
      opts_(std::make_shared<const ForwarderOptions>(std::move(opts))),
      deadline_timer_(ex_),
      alive_(std::make_shared<bool>(true)) {
    spare_ = std::make_shared<SpareBlocks>();
    spare_->size = opts_->io_buffer_size;
    PoolOptions po;
    po.host = opts_->host;
    po.port = opts_->port;
    po.max_idle = opts_->max_idle_connections;
    po.max_connections = opts_->max_connections;
    po.idle_timeout = opts_->idle_connection_timeout;
    po.connect_timeout = opts_->connect_timeout;
    pool_ = std::make_shared<LocalPool>(ex_, po);
}

LocalForwarder::~LocalForwarder() {
    *alive_ = false;
    shutdown();
}

void LocalForwarder::on_tunnel_event(net::Tunnel& tunnel, proto::Event& ev) {
    ++in_event_;
    const net::Tunnel* prev = event_tunnel_;
    event_tunnel_ = &tunnel;
    auto find = [&]() -> std::shared_ptr<Exchange> {
        auto it = exchanges_.find(Key(&tunnel, ev.stream));
        return it == exchanges_.end() ? nullptr : it->second;
    };
    switch (ev.type) {
        case proto::EventType::kStreamOpened:
            if (ev.meta && ev.meta->head == proto::HeadType::kRequest &&
                ev.meta->kind != proto::StreamKind::kRaw) {
                start_exchange(tunnel, ev);
            } else if (on_other_event) {
                on_other_event(tunnel, ev);
            } else {
                (void)tunnel.conn().stream_reset(ev.stream, kCancelled);
                (void)tunnel.conn().stream_stop_sending(ev.stream, kCancelled);
            }
            break;
        case proto::EventType::kStreamReadable:
            if (auto ex = find()) {
                ex->on_readable();
            }
            break;
        case proto::EventType::kStreamWritable: {
            if (auto ex = find()) {
                ex->on_writable();
            }
            // A connection-wide send budget wake-up may unblock other streams too.
            std::vector<std::shared_ptr<Exchange>> blocked;
            for (auto it = exchanges_.lower_bound(Key(&tunnel, 0));
                 it != exchanges_.end() && it->first.first == &tunnel; ++it) {
                if (it->second->blocked() && it->first.second != ev.stream) {
                    blocked.push_back(it->second);
                }
            }
            for (auto& ex : blocked) {
                ex->on_writable();
            }
            break;
        }
        case proto::EventType::kStreamReset:
        case proto::EventType::kStreamStopSending:
            if (auto ex = find()) {
                ex->on_peer_abort();
            }
            break;
        case proto::EventType::kStreamClosed:
            if (auto ex = find()) {
                ex->on_stream_gone();
            }
            break;
        case proto::EventType::kConnectionClosed: {
            std::vector<std::shared_ptr<Exchange>> gone;
            for (auto it = exchanges_.lower_bound(Key(&tunnel, 0));
                 it != exchanges_.end() && it->first.first == &tunnel; ++it) {
                gone.push_back(it->second);
            }
            for (auto& ex : gone) {
                ex->on_stream_gone();
            }
            flush_pending_.erase(&tunnel);
            if (on_other_event) {
                on_other_event(tunnel, ev);
            }
            break;
        }
        default:
            if (on_other_event) {
                on_other_event(tunnel, ev);
            }
            break;
    }
    event_tunnel_ = prev;
    --in_event_;
}

void LocalForwarder::start_exchange(net::Tunnel& tunnel, proto::Event& ev) {
    auto ex = std::allocate_shared<Exchange>(core::RecyclingAllocator<Exchange>(exchange_memory_),
                                             *this, tunnel.shared_from_this(), ev.stream,
                                             std::move(*ev.meta));
    exchanges_[Key(&tunnel, ev.stream)] = ex;
    ex->start();
}

void LocalForwarder::erase(const Key& key) {
    exchanges_.erase(key);
    if (exchanges_.empty() && deadline_armed_) {
        // Nothing left to watch: no pending wait keeps the io_context busy.
        deadline_armed_ = false;
        ++deadline_gen_;
        deadline_timer_.cancel();
    }
}

// One timer for every exchange: a touch only stores the exchange's deadline, and the wait is
// moved earlier only when a deadline comes before it. When it fires, expired exchanges fail and
// the timer waits for the earliest deadline left, so in steady traffic it fires about once per
// timeout period instead of being re-armed and cancelled for every request.
void LocalForwarder::arm_deadline(Clock::time_point at) {
    if (deadline_armed_ && at >= deadline_at_) {
        return;
    }
    deadline_armed_ = true;
    deadline_at_ = at;
    deadline_timer_.expires_at(at);
    deadline_timer_.async_wait(
        [this, alive = alive_, g = ++deadline_gen_](const boost::system::error_code& ec) {
            if (!*alive || g != deadline_gen_) {
                return;
            }
            deadline_armed_ = false;
            if (!ec) {
                on_deadline_timer();
            }
        });
}

void LocalForwarder::on_deadline_timer() {
    const auto now = Clock::now();
    std::vector<std::shared_ptr<Exchange>> expired;
    auto next = Clock::time_point::max();
    for (const auto& [key, ex] : exchanges_) {
        const auto at = ex->deadline();
        if (at <= now) {
            expired.push_back(ex);
        } else {
            next = std::min(next, at);
        }
    }
    for (auto& ex : expired) {
        ex->on_deadline(now);
    }
    if (next != Clock::time_point::max()) {
        arm_deadline(next);
    }
}

void LocalForwarder::schedule_flush(const std::shared_ptr<net::Tunnel>& tunnel) {
    if (in_event_ > 0 && event_tunnel_ == tunnel.get()) {
        return;  // the transport flushes after the event callback returns
    }
    if (!flush_pending_.insert(tunnel.get()).second) {
        return;
    }
    asio::post(ex_, [this, alive = alive_, weak = std::weak_ptr<net::Tunnel>(tunnel),
                     raw = tunnel.get()] {
        if (!*alive) {
            return;
        }
        flush_pending_.erase(raw);
        if (auto t = weak.lock(); t && !t->closed()) {
            t->flush();
        }
    });
}

void LocalForwarder::shutdown() {
    std::vector<std::shared_ptr<Exchange>> all;
    std::set<std::shared_ptr<net::Tunnel>> tunnels;
    for (auto& [key, ex] : exchanges_) {
        all.push_back(ex);
        if (auto t = ex->tunnel_ptr()) {
            tunnels.insert(t);
        }
    }
    for (auto& ex : all) {
        ex->cancel();
    }
    pool_->shutdown();
    if (in_event_ == 0) {
        // Posted flushes may never run (the forwarder may be going away): send the resets now.
        for (const auto& t : tunnels) {
            if (!t->closed()) {
                t->flush();
            }
        }
    }
}

ForwarderStats LocalForwarder::stats() const {
    ForwarderStats s = st_;
    s.active = exchanges_.size();
    s.pool = pool_->stats();
    return s;
}

}  // namespace hopgate::client
