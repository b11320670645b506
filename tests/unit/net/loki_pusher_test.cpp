#include "net/loki_pusher.hpp"

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <deque>
#include <thread>

namespace hopgate::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A fake Loki on the test's io_context: answers each request with the next scripted status
// (204 once the script is used up) and records the requests.
class FakeLoki {
public:
    explicit FakeLoki(asio::io_context& io) : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
        accept();
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::deque<unsigned> script;
    std::vector<http::request<http::string_body>> seen;
    std::vector<std::chrono::steady_clock::time_point> at;

private:
    void accept() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) {
                return;
            }
            auto conn = std::make_shared<Conn>(std::move(s));
            http::async_read(conn->sock, conn->buf, conn->req,
                             [this, conn](boost::system::error_code ec2, std::size_t) {
                                 if (ec2) {
                                     return;
                                 }
                                 seen.push_back(conn->req);
                                 at.push_back(std::chrono::steady_clock::now());
                                 unsigned status = 204;
                                 if (!script.empty()) {
                                     status = script.front();
                                     script.pop_front();
                                 }
                                 conn->res.result(status);
                                 conn->res.version(11);
                                 conn->res.keep_alive(false);
                                 conn->res.prepare_payload();
                                 http::async_write(conn->sock, conn->res,
                                                   [conn](boost::system::error_code, std::size_t) {
                                                       boost::system::error_code ig;
                                                       conn->sock.shutdown(tcp::socket::shutdown_both, ig);
                                                   });
                             });
            accept();
        });
    }
    struct Conn {
        explicit Conn(tcp::socket s) : sock(std::move(s)) {}
        tcp::socket sock;
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        http::response<http::string_body> res;
    };
    tcp::acceptor acceptor_;
};

core::LokiSettings settings(std::uint16_t port) {
    core::LokiSettings s;
    s.endpoint = {.host = "127.0.0.1", .port = port, .target = "/loki/api/v1/push"};
    s.labels = {{"app", "hopgate"}, {"component", "server"}};
    return s;
}

void push_lines(core::LokiQueue& q, int n, const std::string& prefix) {
    for (int i = 0; i < n; ++i) {
        q.push(prefix + std::to_string(i) + "\n", std::chrono::system_clock::now());
    }
}

// A full batch goes out at once, long before the (one-minute) timer.
TEST(LokiPusher, FullBatchPushedBeforeTheTimer) {
    asio::io_context io;
    FakeLoki loki(io);
    auto q = std::make_shared<core::LokiQueue>(core::LokiQueue::Limits{});
    auto p = std::make_shared<LokiPusher>(io, settings(loki.port()), q, core::Logger{},
                                          LokiPusher::Options{.interval = 60s, .batch_lines = 5});
    p->start();
    push_lines(*q, 5, "l");
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (p->pushed_lines() < 5 && std::chrono::steady_clock::now() < end) {
        io.run_for(50ms);
    }
    ASSERT_GE(loki.seen.size(), 1u);
    EXPECT_EQ(p->pushed_lines(), 5u);
    EXPECT_NE(loki.seen[0].body().find("\"l4\""), std::string::npos);
}

// 500 and 429 are retried with the same batch after growing delays; a 400 drops the batch.
TEST(LokiPusher, RetriesWithBackoffThenDelivers) {
    asio::io_context io;
    FakeLoki loki(io);
    loki.script = {500, 429, 500};
    auto q = std::make_shared<core::LokiQueue>(core::LokiQueue::Limits{});
    core::MetricsRegistry reg;
    auto p = std::make_shared<LokiPusher>(
        io, settings(loki.port()), q, core::Logger{},
        LokiPusher::Options{.interval = 50ms, .backoff_base = 100ms, .backoff_cap = 300ms});
    p->bind_metrics(reg);
    push_lines(*q, 3, "x");
    p->start();
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (p->pushed_lines() < 3 && std::chrono::steady_clock::now() < end) {
        io.run_for(50ms);
    }
    ASSERT_EQ(loki.seen.size(), 4u);
    EXPECT_EQ(p->pushed_lines(), 3u);
    EXPECT_EQ(p->failures(), 3u);
    for (std::size_t i = 1; i < 4; ++i) {
        EXPECT_EQ(loki.seen[i].body(), loki.seen[0].body()) << "retry " << i << " resends the batch";
    }
    // Delays 100, 200, 300 (capped) ms: each gap at least its backoff.
    EXPECT_GE(loki.at[1] - loki.at[0], 90ms);
    EXPECT_GE(loki.at[2] - loki.at[1], 190ms);
    EXPECT_GE(loki.at[3] - loki.at[2], 290ms);
    const std::string text = reg.render();
    EXPECT_NE(text.find("hopgate_loki_push_failures_total 3"), std::string::npos) << text;
    EXPECT_NE(text.find("hopgate_loki_pushed_lines_total 3"), std::string::npos) << text;

    loki.script = {400};
    push_lines(*q, 2, "bad");
    const auto end2 = std::chrono::steady_clock::now() + 10s;
    while (loki.seen.size() < 5 && std::chrono::steady_clock::now() < end2) {
        io.run_for(50ms);
    }
    io.run_for(200ms);
    ASSERT_EQ(loki.seen.size(), 5u) << "a 4xx is not retried";
    EXPECT_EQ(q->size(), 0u);
    EXPECT_NE(reg.render().find("hopgate_loki_dropped_lines_total 2"), std::string::npos);
}

// finish() pushes what is left after the loop; with nobody listening it returns within budget.
TEST(LokiPusher, FinishIsBounded) {
    asio::io_context io;
    auto q = std::make_shared<core::LokiQueue>(core::LokiQueue::Limits{});
    {
        FakeLoki loki(io);
        auto p = std::make_shared<LokiPusher>(io, settings(loki.port()), q, core::Logger{});
        push_lines(*q, 3, "f");
        // The fake Loki needs the loop: run it on a thread while finish() runs its own.
        std::thread t([&] { io.run_for(3s); });
        EXPECT_TRUE(p->finish(2s));
        io.stop();
        t.join();
        EXPECT_EQ(loki.seen.size(), 1u);
    }
    // A listener that never accepts: connect succeeds, no answer ever comes.
    asio::io_context io2;
    tcp::acceptor silent(io2, {asio::ip::make_address("127.0.0.1"), 0});
    auto p2 = std::make_shared<LokiPusher>(io2, settings(silent.local_endpoint().port()), q,
                                           core::Logger{});
    push_lines(*q, 3, "g");
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(p2->finish(300ms));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

}  // namespace
}  // namespace hopgate::net
