#include "net/loki_pusher.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <functional>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "tls/certs.hpp"

namespace hopgate::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// One POST with an overall deadline: resolve, connect, TLS handshake (https://), write, read the
// response (body capped). `done(status, error)`: status 0 with a reason when no response came.
// `ssl` is null for http://.
struct PostOp : std::enable_shared_from_this<PostOp> {
    PostOp(asio::io_context& io, asio::ssl::context* ssl,
           std::function<void(int, const std::string&)> cb)
        : resolver(io), deadline(io), done(std::move(cb)) {
        if (ssl != nullptr) {
            tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io, *ssl);
        } else {
            plain = std::make_unique<beast::tcp_stream>(io);
        }
    }

    beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

    // f(stream) with the stream HTTP goes over: the TLS stream or the plain TCP stream.
    template <class F>
    void with_stream(F&& f) {
        if (tls) {
            f(*tls);
        } else {
            f(*plain);
        }
    }

    void run(const core::LokiEndpoint& ep, std::chrono::milliseconds timeout) {
        deadline.expires_after(timeout);
        deadline.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) {
                self->timed_out = true;
                self->resolver.cancel();
                self->tcp().socket().close();
            }
        });
        if (tls) {
            // Server name indication and host name verification (an IP literal is matched
            // against the certificate's IP addresses and sends no SNI).
            SSL* ssl = tls->native_handle();
            const bool name_ok =
                tls::is_ip_literal(ep.host)
                    ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ep.host.c_str()) == 1
                    : SSL_set_tlsext_host_name(ssl, ep.host.c_str()) == 1 &&
                          SSL_set1_host(ssl, ep.host.c_str()) == 1;
            if (!name_ok) {
                return finish(0, "TLS: cannot set the host name to verify");
            }
        }
        resolver.async_resolve(
            ep.host, std::to_string(ep.port),
            [self = shared_from_this()](const boost::system::error_code& ec,
                                        const tcp::resolver::results_type& r) {
                if (ec) {
                    return self->finish(0, "resolve: " + self->reason(ec));
                }
                self->tcp().async_connect(
                    r, [self](const boost::system::error_code& ec2, const tcp::endpoint&) {
                        if (ec2) {
                            return self->finish(0, "connect: " + self->reason(ec2));
                        }
                        if (!self->tls) {
                            return self->write();
                        }
                        self->tls->async_handshake(
                            asio::ssl::stream_base::client,
                            [self](const boost::system::error_code& ec3) {
                                if (ec3) {
                                    return self->finish(0, "TLS handshake: " +
                                                               self->tls_reason(ec3));
                                }
                                self->write();
                            });
                    });
            });
    }

    void write() {
        with_stream([&](auto& s) {
            http::async_write(s, req,
                              [self = shared_from_this()](const boost::system::error_code& ec,
                                                          std::size_t) {
                                  if (ec) {
                                      return self->finish(0, "write: " + self->reason(ec));
                                  }
                                  self->read();
                              });
        });
    }

    void read() {
        parser.body_limit(64 * 1024);
        with_stream([&](auto& s) {
            http::async_read(
                s, buf, parser,
                [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                    // A TLS peer that closes without close_notify after a complete response
                    // (body delimited by Content-Length) still gave its answer.
                    const bool truncated_ok =
                        ec == asio::ssl::error::stream_truncated && self->parser.is_done();
                    if (ec && !truncated_ok) {
                        return self->finish(0, "read: " + self->reason(ec));
                    }
                    const auto& res = self->parser.get();
                    std::string body = res.body().substr(0, 200);
                    self->finish(static_cast<int>(res.result_int()), body);
                });
        });
    }

    std::string reason(const boost::system::error_code& ec) const {
        return timed_out ? std::string("timed out") : ec.message();
    }

    // The OpenSSL reason, with the certificate verification result when that is what failed.
    std::string tls_reason(const boost::system::error_code& ec) const {
        std::string why = reason(ec);
        if (!timed_out) {
            const long v = SSL_get_verify_result(tls->native_handle());
            if (v != X509_V_OK) {
                why += std::string(" (") + X509_verify_cert_error_string(v) + ")";
            }
        }
        return why;
    }

    void finish(int status, const std::string& why) {
        if (!done) {
            return;
        }
        deadline.cancel();
        resolver.cancel();
        boost::system::error_code ignored;
        tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
        tcp().socket().close(ignored);
        auto cb = std::move(done);
        done = nullptr;
        cb(status, why);
    }

    tcp::resolver resolver;
    std::unique_ptr<beast::tcp_stream> plain;                      // http://
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;     // https://
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

// TLS 1.2+ client context for an https:// endpoint: the system roots plus `ca_file` (PEM),
// peer verification on (the host name is set per connection). `why` says what failed to load.
std::shared_ptr<asio::ssl::context> make_loki_ssl_context(const std::string& ca_file,
                                                          std::string& why) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    boost::system::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (ec) {
        why = "system CA roots: " + ec.message();
    }
    if (!ca_file.empty()) {
        ctx->load_verify_file(ca_file, ec);
        if (ec) {
            why = "HOP_LOKI_CA_FILE " + ca_file + ": " + ec.message();
        }
    }
    ctx->set_verify_mode(asio::ssl::verify_peer);
    return ctx;
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
    if (settings_.endpoint.tls) {
        // A CA file that does not load leaves the pushes failing verification (retried and
        // logged); the settings check has already made sure the file is a readable PEM.
        std::string why;
        ssl_ = make_loki_ssl_context(settings_.ca_file, why);
        if (!why.empty()) {
            log_.error("Loki TLS: cannot load trusted CAs", {{"reason", why}});
        }
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
                               "Loki pushes that failed (connection or TLS error, timeout, 5xx, "
                               "408, 429) and were retried.",
                               {})
                       .get();
    m_queue_ = &reg.gauge("hopgate_loki_queue_lines", "Log lines waiting to be pushed to Loki.",
                          {})
                    .get();
}

void LokiPusher::start() {
    log_.info("pushing logs to Loki",
              {{"endpoint", std::string(settings_.endpoint.tls ? "https://" : "http://") +
                                settings_.endpoint.host + ":" +
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
        io_, ssl_.get(), [self = shared_from_this()](int status, const std::string& why) {
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
        auto op = std::make_shared<PostOp>(io, ssl_.get(), [&got](int status, const std::string&) {
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
