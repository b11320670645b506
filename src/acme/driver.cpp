#include "acme/driver.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <charconv>

#include "acme/error.hpp"
#include "tls/certs.hpp"

namespace hopgate::acme {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Url {
    std::string host;
    std::string port = "443";
    std::string target = "/";
};

// "https://host[:port][/path]" only; the ACME directory and every URL in it must be HTTPS.
std::optional<Url> split_url(std::string_view url) {
    constexpr std::string_view kScheme = "https://";
    if (url.size() > 4096 || !url.starts_with(kScheme)) {
        return std::nullopt;
    }
    url.remove_prefix(kScheme.size());
    Url u;
    const auto slash = url.find('/');
    std::string_view auth = url.substr(0, slash);
    if (slash != std::string_view::npos) {
        u.target = std::string(url.substr(slash));
    }
    if (!auth.empty() && auth.front() == '[') {
        const auto close = auth.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        u.host = std::string(auth.substr(1, close - 1));
        auth.remove_prefix(close + 1);
        if (!auth.empty()) {
            if (auth.front() != ':') {
                return std::nullopt;
            }
            u.port = std::string(auth.substr(1));
        }
    } else if (const auto colon = auth.rfind(':'); colon != std::string_view::npos) {
        u.host = std::string(auth.substr(0, colon));
        u.port = std::string(auth.substr(colon + 1));
    } else {
        u.host = std::string(auth);
    }
    unsigned port = 0;
    auto r = std::from_chars(u.port.data(), u.port.data() + u.port.size(), port);
    if (u.host.empty() || r.ec != std::errc() || r.ptr != u.port.data() + u.port.size() ||
        port == 0 || port > 65535 || u.host.find('@') != std::string::npos) {
        return std::nullopt;
    }
    return u;
}

std::shared_ptr<asio::ssl::context> make_ssl(const DriverOptions& opts, std::string* why) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    boost::system::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (!opts.ca_roots_file.empty()) {
        ctx->load_verify_file(opts.ca_roots_file, ec);
        if (ec) {
            *why = "HOP_ACME_CA_ROOTS " + opts.ca_roots_file + ": " + ec.message();
            return nullptr;
        }
    }
    ctx->set_verify_mode(asio::ssl::verify_peer);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    return ctx;
}

struct Conn {
    explicit Conn(asio::any_io_executor ex, asio::ssl::context& ctx)
        : resolver(ex), stream(ex, ctx), watchdog(ex) {}
    tcp::resolver resolver;
    beast::ssl_stream<beast::tcp_stream> stream;
    asio::steady_timer watchdog;
};

struct Exchange {
    std::error_code ec;
    std::string why;
    HttpResponse res;
};

asio::awaitable<Exchange> exchange(std::shared_ptr<asio::ssl::context> ctx, DriverOptions opts,
                                   HttpRequest req) {
    Exchange out;
    auto fail = [&](std::string why) {
        out.ec = Errc::kHttp;
        out.why = req.method + " " + req.url + ": " + std::move(why);
        return out;
    };
    auto url = split_url(req.url);
    if (!url) {
        co_return fail("not an https URL");
    }
    auto ex = co_await asio::this_coro::executor;
    auto c = std::make_shared<Conn>(ex, *ctx);
    // One deadline for the whole exchange, resolution included.
    c->watchdog.expires_after(opts.request_timeout);
    std::weak_ptr<Conn> weak = c;
    c->watchdog.async_wait([weak](const boost::system::error_code& ec) {
        if (auto cc = weak.lock(); cc && !ec) {
            cc->resolver.cancel();
            beast::get_lowest_layer(cc->stream).close();
        }
    });
    struct Stop {
        Conn* c;
        ~Stop() { c->watchdog.cancel(); }
    } stop{c.get()};

    auto [rec, results] = co_await c->resolver.async_resolve(url->host, url->port, kTuple);
    if (rec) {
        co_return fail("resolve: " + rec.message());
    }
    auto [cec, ep] = co_await beast::get_lowest_layer(c->stream).async_connect(results, kTuple);
    if (cec) {
        co_return fail("connect: " + cec.message());
    }
    SSL* ssl = c->stream.native_handle();
    if (tls::is_ip_literal(url->host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url->host.c_str());
    } else {
        SSL_set_tlsext_host_name(ssl, url->host.c_str());
        SSL_set1_host(ssl, url->host.c_str());
    }
    auto [hec] = co_await c->stream.async_handshake(asio::ssl::stream_base::client, kTuple);
    if (hec) {
        co_return fail("TLS handshake: " + hec.message());
    }
    http::request<http::string_body> hreq;
    hreq.method_string(req.method);
    hreq.target(url->target);
    hreq.version(11);
    hreq.set(http::field::host, url->port == "443" ? url->host : url->host + ":" + url->port);
    hreq.set(http::field::user_agent, "hopgate-acme/0.1");
    if (!req.content_type.empty()) {
        hreq.set(http::field::content_type, req.content_type);
    }
    if (!req.accept.empty()) {
        hreq.set(http::field::accept, req.accept);
    }
    hreq.body() = req.body;
    hreq.prepare_payload();
    auto [wec, wn] = co_await http::async_write(c->stream, hreq, kTuple);
    if (wec) {
        co_return fail("write: " + wec.message());
    }
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(kMaxDocument);
    if (req.method == "HEAD") {
        parser.skip(true);
    }
    auto [rdec, rn] = co_await http::async_read(c->stream, buf, parser, kTuple);
    if (rdec) {
        if (rdec == http::error::body_limit) {
            out.ec = Errc::kTooLarge;
            out.why = req.url + ": response larger than 1 MiB";
            co_return out;
        }
        co_return fail("read: " + rdec.message());
    }
    auto& res = parser.get();
    out.res.status = static_cast<int>(res.result_int());
    out.res.content_type = std::string(res[http::field::content_type]);
    out.res.location = std::string(res[http::field::location]);
    out.res.replay_nonce = std::string(res["Replay-Nonce"]);
    out.res.retry_after = std::string(res[http::field::retry_after]);
    out.res.body = std::move(res.body());
    // Best effort; the peer may already have closed.
    beast::get_lowest_layer(c->stream).expires_after(std::chrono::seconds(1));
    beast::get_lowest_layer(c->stream).close();
    co_return out;
}

class OrderRun : public OrderHandle, public std::enable_shared_from_this<OrderRun> {
  public:
    OrderRun(asio::any_io_executor ex, DriverOptions opts, OrderConfig cfg, EVP_PKEY* key,
             Provisioner p, std::function<void(IssueResult)> done)
        : ex_(ex),
          opts_(std::move(opts)),
          flow_(std::move(cfg), key),
          provision_(std::move(p)),
          done_(std::move(done)),
          timer_(ex) {}

    void cancel() override {
        cancelled_ = true;
        timer_.cancel();
    }

    // `self` is a coroutine parameter, so the frame owns the order until it completes.
    static asio::awaitable<void> run(std::shared_ptr<OrderRun> self) { co_await self->run_impl(); }

    asio::awaitable<void> run_impl() {
        IssueResult result;
        std::string why;
        auto ssl = make_ssl(opts_, &why);
        const auto deadline = std::chrono::steady_clock::now() + opts_.order_deadline;
        Action a = ssl ? flow_.start() : Action{};
        if (!ssl) {
            a.kind = Action::Kind::kFailed;
            a.error = Errc::kInvalidArgument;
            a.message = why;
        }
        while (a.kind != Action::Kind::kDone && a.kind != Action::Kind::kFailed) {
            if (cancelled_ || std::chrono::steady_clock::now() > deadline) {
                a = Action{};
                a.error = Errc::kOrderFailed;
                a.message = cancelled_ ? "cancelled" : "order deadline exceeded";
                break;
            }
            switch (a.kind) {
                case Action::Kind::kSend: {
                    auto ex = co_await exchange(ssl, opts_, a.request);
                    if (ex.ec) {
                        a = Action{};
                        a.error = ex.ec;
                        a.message = ex.why;
                    } else {
                        a = flow_.on_response(ex.res, std::chrono::system_clock::now());
                    }
                    break;
                }
                case Action::Kind::kWait: {
                    timer_.expires_after(a.delay);
                    co_await timer_.async_wait(kTuple);
                    a = flow_.on_wait_done();
                    break;
                }
                case Action::Kind::kProvision:
                    provision_(a.challenge, true);
                    a = flow_.on_provisioned();
                    break;
                default:
                    break;
            }
        }
        for (const auto& t : flow_.provisioned()) {
            provision_(t, false);
        }
        result.error = a.kind == Action::Kind::kDone ? std::error_code() : a.error;
        if (a.kind != Action::Kind::kDone && !result.error) {
            result.error = Errc::kOrderFailed;
        }
        result.message = a.message;
        result.issued.cert_chain_pem = std::move(a.cert_chain_pem);
        result.issued.key_pem = std::move(a.key_pem);
        result.issued.account_url = flow_.account_url();
        result.issued.renewal_info_url = flow_.renewal_info_url();
        result.issued.bad_nonce_retries = flow_.bad_nonce_retries();
        auto done = std::move(done_);
        done(std::move(result));
    }

  private:
    asio::any_io_executor ex_;
    DriverOptions opts_;
    OrderFlow flow_;
    Provisioner provision_;
    std::function<void(IssueResult)> done_;
    asio::steady_timer timer_;
    bool cancelled_ = false;
};

}  // namespace

std::shared_ptr<OrderHandle> async_obtain(asio::any_io_executor ex, DriverOptions opts,
                                          OrderConfig cfg, EVP_PKEY* account_key,
                                          Provisioner provision,
                                          std::function<void(IssueResult)> done) {
    auto o = std::make_shared<OrderRun>(ex, std::move(opts), std::move(cfg), account_key,
                                        std::move(provision), std::move(done));
    asio::co_spawn(ex, OrderRun::run(o), asio::detached);
    return o;
}

void async_http(asio::any_io_executor ex, const DriverOptions& opts, HttpRequest req,
                std::function<void(std::error_code, std::string, HttpResponse)> done) {
    std::string why;
    auto ssl = make_ssl(opts, &why);
    if (!ssl) {
        asio::post(ex, [done = std::move(done), why] { done(Errc::kInvalidArgument, why, {}); });
        return;
    }
    asio::co_spawn(
        ex,
        [ssl, opts, req = std::move(req), done = std::move(done)]() -> asio::awaitable<void> {
            auto r = co_await exchange(ssl, opts, req);
            done(r.ec, r.why, std::move(r.res));
        },
        asio::detached);
}

}  // namespace hopgate::acme
