#include "net/loki_pusher.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <functional>

namespace hopgate::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// One POST with an overall deadline: resolve, connect, write, read the response (body capped).
// `done(status, error)`: status 0 with a reason when no response came.
struct PostOp : std::enable_shared_from_this<PostOp> {
    PostOp(asio::io_context& io, std::function<void(int, const std::string&)> cb)
        : resolver(io), stream(io), deadline(io), done(std::move(cb)) {}

    void run(const core::LokiEndpoint& ep, std::chrono::milliseconds timeout) {
        deadline.expires_after(timeout);
        deadline.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) {
                self->timed_out = true;
                self->resolver.cancel();
                self->stream.socket().close();
            }
        });
        resolver.async_resolve(
            ep.host, std::to_string(ep.port),
            [self = shared_from_this()](const boost::system::error_code& ec,
                                        const tcp::resolver::results_type& r) {
                if (ec) {
                    return self->finish(0, "resolve: " + self->reason(ec));
                }
                self->stream.async_connect(
                    r, [self](const boost::system::error_code& ec2, const tcp::endpoint&) {
                        if (ec2) {
                            return self->finish(0, "connect: " + self->reason(ec2));
                        }
                        http::async_write(self->stream, self->req,
                                          [self](const boost::system::error_code& ec3,
                                                 std::size_t) {
                                              if (ec3) {
                                                  return self->finish(
                                                      0, "write: " + self->reason(ec3));
                                              }
                                              self->read();
                                          });
                    });
            });
    }

    void read() {
        parser.body_limit(64 * 1024);
        http::async_read(stream, buf, parser,
                         [self = shared_from_this()](const boost::system::error_code& ec,
                                                     std::size_t) {
                             if (ec) {
                                 return self->finish(0, "read: " + self->reason(ec));
                             }
                             const auto& res = self->parser.get();
                             std::string body = res.body().substr(0, 200);
                             self->finish(static_cast<int>(res.result_int()), body);
                         });
    }

    std::string reason(const boost::system::error_code& ec) const {
        return timed_out ? std::string("timed out") : ec.message();
    }

    void finish(int status, const std::string& why) {
        if (!done) {
            return;
        }
        deadline.cancel();
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.socket().close(ignored);
        auto cb = std::move(done);
        done = nullptr;
        cb(status, why);
    }

    tcp::resolver resolver;
    beast::tcp_stream stream;
    asio::steady_timer deadline;
    http::request<http::string_body> req;
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    std::function<void(int, const std::string&)> done;
    bool timed_out = false;
};

void fill_request(http::request<http::string_body>& req, const core::LokiSettings& s,
                  const std::string& authorization, const std::vector<core::LokiEntry>& batch) {
    req.method(http::verb::post);
    req.target(s.endpoint.target);
    req.version(11);
    req.set(http::field::host, s.endpoint.host + ":" + std::to_string(s.endpoint.port));
    req.set(http::field::content_type, "application/json");
    req.set(http::field::user_agent, "hopgate");
    if (!s.tenant_id.empty()) {
        req.set("X-Scope-OrgID", s.tenant_id);
    }
    if (!authorization.empty()) {
        req.set(http::field::authorization, authorization);
    }
    req.body() = core::build_loki_push_body(s.labels, batch);
    req.prepare_payload();
}

bool retryable(int status) { return status == 0 || status == 408 || status == 429 || status >= 500; }

}  // namespace

LokiPusher::LokiPusher(asio::io_context& io, core::LokiSettings settings,
                       std::shared_ptr<core::LokiQueue> queue, core::Logger log, Options opt)
    : io_(io),
      settings_(std::move(settings)),
      queue_(std::move(queue)),
      log_(std::move(log)),
      opt_(opt),
      timer_(io) {
    if (!settings_.username.empty()) {
        const std::string plain = settings_.username + ":" + settings_.password;
        std::string enc(beast::detail::base64::encoded_size(plain.size()), '\0');
        enc.resize(beast::detail::base64::encode(enc.data(), plain.data(), plain.size()));
        authorization_ = "Basic " + enc;
    }
}

void LokiPusher::bind_metrics(core::MetricsRegistry& reg) {
    m_pushed_ = &reg.counter("hopgate_loki_pushed_lines_total",
                             "Log lines Loki accepted.", {})
                     .get();
    m_dropped_ = &reg.counter("hopgate_loki_dropped_lines_total",
                              "Log lines never pushed to Loki: the queue was full (oldest "
                              "dropped) or Loki refused the batch with a 4xx.",
                              {})
                      .get();
    m_failures_ = &reg.counter("hopgate_loki_push_failures_total",
                               "Loki pushes that failed (connection error, timeout, 5xx, 408, "
                               "429) and were retried.",
                               {})
                       .get();
    m_queue_ = &reg.gauge("hopgate_loki_queue_lines", "Log lines waiting to be pushed to Loki.",
                          {})
                    .get();
}

void LokiPusher::start() {
    log_.info("pushing logs to Loki",
              {{"endpoint", "http://" + settings_.endpoint.host + ":" +
                                std::to_string(settings_.endpoint.port) +
                                settings_.endpoint.target},
               {"tenant", settings_.tenant_id}});
    // A full batch goes out at once rather than at the next tick (unless backing off).
    queue_->set_on_full_batch(opt_.batch_lines, [self = weak_from_this(), &io = io_] {
        asio::post(io, [self] {
            if (auto p = self.lock(); p && p->failures_ == 0) {
                p->tick();
            }
        });
    });
    arm(opt_.interval);
}

void LokiPusher::stop() {
    stopped_ = true;
    queue_->set_on_full_batch(0, {});
    timer_.cancel();
}

LokiPusher::~LokiPusher() { queue_->set_on_full_batch(0, {}); }

void LokiPusher::arm(std::chrono::milliseconds after) {
    if (stopped_) {
        return;
    }
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) {
            self->tick();
        }
    });
}

void LokiPusher::sync_metrics() {
    const std::uint64_t dropped = queue_->dropped() + rejected_;
    if (m_dropped_ != nullptr && dropped > dropped_seen_) {
        m_dropped_->inc(dropped - dropped_seen_);
    }
    dropped_seen_ = dropped;
    if (m_queue_ != nullptr) {
        m_queue_->set(static_cast<std::int64_t>(queue_->size() + batch_.size()));
    }
}

void LokiPusher::tick() {
    sync_metrics();
    if (stopped_ || in_flight_) {
        return;
    }
    if (batch_.empty()) {
        batch_ = queue_->take(opt_.batch_lines, opt_.batch_bytes);
    }
    if (batch_.empty()) {
        arm(opt_.interval);
        return;
    }
    send();
}

void LokiPusher::send() {
    in_flight_ = true;
    auto op = std::make_shared<PostOp>(
        io_, [self = shared_from_this()](int status, const std::string& why) {
            self->on_sent(status, why);
        });
    fill_request(op->req, settings_, authorization_, batch_);
    op->run(settings_.endpoint, opt_.request_timeout);
}

void LokiPusher::on_sent(int status, const std::string& why) {
    in_flight_ = false;
    if (status >= 200 && status < 300) {
        pushed_ += batch_.size();
        if (m_pushed_ != nullptr) {
            m_pushed_->inc(batch_.size());
        }
        batch_.clear();
        if (failures_ != 0) {
            log_.info("Loki push recovered", {{"failed_attempts", failures_}});
        }
        failures_ = 0;
        sync_metrics();
        if (stopped_) {
            return;
        }
        // A full batch is waiting: push it now rather than a second later.
        if (queue_->size() >= opt_.batch_lines) {
            asio::post(io_, [self = shared_from_this()] { self->tick(); });
        } else {
            arm(opt_.interval);
        }
        return;
    }
    if (!retryable(status)) {
        // Only the first line of a refusal is logged; the lines it held are lost.
        log_.warn("Loki refused a push: batch dropped",
                  {{"status", status}, {"lines", batch_.size()}, {"reason", why}});
        rejected_ += batch_.size();
        batch_.clear();
        failures_ = 0;
        sync_metrics();
        arm(opt_.interval);
        return;
    }
    ++failures_;
    ++failures_total_;
    if (m_failures_ != nullptr) {
        m_failures_->inc();
    }
    const auto delay = core::loki_backoff(failures_, opt_.backoff_base, opt_.backoff_cap);
    // Logged on the first failure and then at every 10th: a Loki outage must not flood the log
    // (each of these lines is queued for Loki as well).
    if (failures_ == 1 || failures_ % 10 == 0) {
        log_.warn("Loki push failed: will retry",
                  {{"status", status},
                   {"reason", why},
                   {"attempt", failures_},
                   {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
    }
    sync_metrics();
    arm(delay);
}

bool LokiPusher::finish(std::chrono::milliseconds budget) {
    stop();
    const auto end = std::chrono::steady_clock::now() + budget;
    asio::io_context io;
    bool ok = true;
    while (true) {
        if (batch_.empty()) {
            batch_ = queue_->take(opt_.batch_lines, opt_.batch_bytes);
        }
        if (batch_.empty()) {
            break;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left <= std::chrono::milliseconds(10)) {
            ok = false;
            break;
        }
        int got = -1;
        auto op = std::make_shared<PostOp>(io, [&got](int status, const std::string&) {
            got = status;
        });
        fill_request(op->req, settings_, authorization_, batch_);
        op->run(settings_.endpoint, std::min(left, opt_.request_timeout));
        op.reset();
        io.restart();
        io.run_for(left + std::chrono::milliseconds(100));
        if (got >= 200 && got < 300) {
            pushed_ += batch_.size();
            batch_.clear();
        } else if (got > 0 && !retryable(got)) {
            rejected_ += batch_.size();
            batch_.clear();
        } else {
            ok = false;  // no retry at shutdown: the budget is for one attempt per batch
            break;
        }
    }
    return ok;
}

}  // namespace hopgate::net
