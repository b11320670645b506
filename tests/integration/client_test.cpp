// The client agent's forwarding engine end to end: a test "gateway" opens tunnel streams with
// request heads over a real DTLS tunnel on loopback; hopgate::client::LocalForwarder executes
// them against an in-test Beast HTTP service and streams the responses back.
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "client/local_forwarder.hpp"
#include "net/transport.hpp"
#include "tls/certs.hpp"
#include "tls/context.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace hopgate;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string sha256(std::string_view s) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
    return std::string(reinterpret_cast<char*>(d), sizeof d);
}

std::string pattern_bytes(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    std::uint32_t x = seed * 2654435761U + 1;
    for (auto& c : s) {
        x = x * 1664525U + 1013904223U;
        c = static_cast<char>(x >> 24);
    }
    return s;
}

// ---- the local HTTP service, on its own thread
class LocalService {
public:
    LocalService() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
        big_ = pattern_bytes(8 << 20, 7);
        asio::co_spawn(io_, accept_loop(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~LocalService() {
        io_.stop();
        thread_.join();
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::atomic<int> accepted{0};
    std::atomic<int> requests{0};
    std::string big_;

private:
    awaitable<void> accept_loop() {
        for (;;) {
            tcp::socket s = co_await acceptor_.async_accept(use_awaitable);
            ++accepted;
            asio::co_spawn(io_, serve(std::move(s)), asio::detached);
        }
    }

    awaitable<void> serve(tcp::socket s) {
        beast::flat_buffer buf;
        try {
            for (;;) {
                http::request_parser<http::string_body> p;
                p.body_limit(64 << 20);
                co_await http::async_read(s, buf, p, use_awaitable);
                auto req = p.release();
                ++requests;
                const std::string target(req.target());
                if (target == "/ws") {
                    const bool ok = req[http::field::upgrade] == "hgtest";
                    std::string head = ok ? "HTTP/1.1 101 Switching Protocols\r\nUpgrade: hgtest\r\n"
                                            "Connection: Upgrade\r\n\r\nhello-from-101:"
                                          : "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
                    co_await asio::async_write(s, asio::buffer(head), use_awaitable);
                    if (!ok) {
                        continue;
                    }
                    // Byte echo until EOF (buffered bytes first), then close.
                    if (buf.size() > 0) {
                        co_await asio::async_write(s, buf.data(), use_awaitable);
                        buf.consume(buf.size());
                    }
                    char b[4096];
                    for (;;) {
                        boost::system::error_code ec;
                        const std::size_t n = co_await s.async_read_some(
                            asio::buffer(b), asio::redirect_error(use_awaitable, ec));
                        if (ec) {
                            break;
                        }
                        co_await asio::async_write(s, asio::buffer(b, n), use_awaitable);
                    }
                    s.shutdown(tcp::socket::shutdown_send);
                    co_return;
                }
                if (target == "/sse") {
                    std::string head =
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
                    co_await asio::async_write(s, asio::buffer(head), use_awaitable);
                    asio::steady_timer t(io_);
                    for (int i = 0; i < 5; ++i) {
                        t.expires_after(std::chrono::milliseconds(100));
                        co_await t.async_wait(use_awaitable);
                        std::string ev = "data: event " + std::to_string(i) + "\n\n";
                        char hex[16];
                        std::snprintf(hex, sizeof hex, "%zx\r\n", ev.size());
                        std::string chunk = std::string(hex) + ev + "\r\n";
                        co_await asio::async_write(s, asio::buffer(chunk), use_awaitable);
                    }
                    co_await asio::async_write(s, asio::buffer(std::string("0\r\n\r\n")),
                                               use_awaitable);
                    continue;
                }
                if (target == "/slow") {
                    asio::steady_timer t(io_);
                    t.expires_after(std::chrono::milliseconds(1500));
                    co_await t.async_wait(use_awaitable);
                }
                http::response<http::string_body> res{http::status::ok, 11};
                res.set(http::field::content_type, "application/octet-stream");
                res.set("X-Seen-Host", req[http::field::host]);
                res.set("X-Seen-Te", req.chunked() ? "chunked" : "length");
                if (target == "/big") {
                    res.body() = big_;
                } else if (target == "/echo") {
                    res.body() = req.body();
                } else {
                    res.body() = "hello world";
                }
                res.keep_alive(req.keep_alive());
                res.prepare_payload();
                co_await http::async_write(s, res, use_awaitable);
                if (!req.keep_alive()) {
                    co_return;
                }
            }
        } catch (const std::exception&) {
        }
    }

    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::thread thread_;
};

// ---- the gateway side of the tunnel: opens streams, collects responses
struct Call {
    proto::StreamMeta head;       // response head
    bool got_head = false;
    std::string body;
    std::vector<std::pair<Clock::time_point, std::size_t>> arrivals;
    bool fin = false;
    bool reset = false;
    std::uint64_t reset_code = 0;
    bool closed = false;
    std::string to_send;
    std::size_t sent = 0;
    bool send_fin = true;   // FIN after to_send
    bool fin_sent = false;
    bool done() const { return fin || reset; }
};

class Gateway : public net::TunnelEvents {
public:
    void on_tunnel_event(net::Tunnel& t, proto::Event& ev) override {
        switch (ev.type) {
            case proto::EventType::kAuthRequest: t.conn().accept_auth(); break;
            case proto::EventType::kEstablished: tunnel = t.shared_from_this(); break;
            case proto::EventType::kStreamHead:
                if (auto it = calls.find(ev.stream); it != calls.end()) {
                    it->second.head = *ev.meta;
                    it->second.got_head = true;
                }
                break;
            case proto::EventType::kStreamReadable:
                if (auto it = calls.find(ev.stream); it != calls.end()) {
                    read(t, ev.stream, it->second);
                }
                break;
            case proto::EventType::kStreamWritable:
                for (auto& [id, c] : calls) {
                    write(t, id, c);
                }
                break;
            case proto::EventType::kStreamReset:
                if (auto it = calls.find(ev.stream); it != calls.end()) {
                    it->second.reset = true;
                    it->second.reset_code = ev.code;
                }
                break;
            case proto::EventType::kStreamClosed:
                if (auto it = calls.find(ev.stream); it != calls.end()) {
                    it->second.closed = true;
                }
                break;
            default: break;
        }
    }
    proto::StreamId open(const std::string& method, const std::string& target,
                         std::vector<proto::Header> headers, std::string body, bool fin = true,
                         proto::StreamKind kind = proto::StreamKind::kHttp) {
        proto::StreamMeta m;
        m.kind = kind;
        m.head = proto::HeadType::kRequest;
        m.method = method;
        m.target = target;
        m.request_id = "r" + std::to_string(++seq);
        headers.push_back({"Host", "app.example.com"});
        m.headers = std::move(headers);
        auto r = tunnel->conn().open_stream(m);
        EXPECT_TRUE(r.ok());
        auto& c = calls[*r];
        c.to_send = std::move(body);
        c.send_fin = fin;
        write(*tunnel, *r, c);
        tunnel->flush();
        return *r;
    }
    void send_more(proto::StreamId id, const std::string& more, bool fin) {
        auto& c = calls[id];
        c.to_send += more;
        c.send_fin = fin;
        write(*tunnel, id, c);
        tunnel->flush();
    }
    void write(net::Tunnel& t, proto::StreamId id, Call& c) {
        while (!c.fin_sent && !c.reset) {
            const std::size_t n = std::min<std::size_t>(c.to_send.size() - c.sent, 64 * 1024);
            const bool last = c.sent + n == c.to_send.size();
            if (n == 0 && !c.send_fin) {
                return;
            }
            auto r = t.conn().stream_write(
                id,
                std::span<const std::uint8_t>(
                    reinterpret_cast<const std::uint8_t*>(c.to_send.data()) + c.sent, n),
                last && c.send_fin);
            if (!r) {
                return;
            }
            c.sent += *r;
            if (*r < n) {
                return;
            }
            if (last) {
                c.fin_sent = c.send_fin;
                return;
            }
        }
    }
    void read(net::Tunnel& t, proto::StreamId id, Call& c) {
        std::uint8_t buf[65536];
        for (;;) {
            auto r = t.conn().stream_read(id, buf);
            if (!r) {
                return;
            }
            if (r->bytes > 0) {
                c.body.append(reinterpret_cast<char*>(buf), r->bytes);
                c.arrivals.emplace_back(Clock::now(), r->bytes);
            }
            if (r->fin) {
                c.fin = true;
                return;
            }
            if (r->bytes == 0) {
                return;
            }
        }
    }
    std::shared_ptr<net::Tunnel> tunnel;
    std::map<proto::StreamId, Call> calls;
    int seq = 0;
};

class ClientTest : public ::testing::Test {
protected:
    void SetUp() override { start(fwd_opts()); }
    void TearDown() override {
        if (client_tunnel) {
            client_tunnel->set_events(nullptr);
            client_tunnel->abort();
        }
        fwd.reset();
        dtls->stop();
        io.run_for(std::chrono::milliseconds(50));
        std::remove(ca_file.c_str());
    }
    client::ForwarderOptions fwd_opts() {
        client::ForwarderOptions o;
        o.host = "127.0.0.1";
        o.port = svc.port();
        return o;
    }
    void start(client::ForwarderOptions o) {
        fwd = std::make_unique<client::LocalForwarder>(io.get_executor(), o);
        auto pem = tls::generate_self_signed({"localhost", "127.0.0.1"});
        char path[] = "/tmp/hopgate-client-ca-XXXXXX";
        const int fd = mkstemp(path);
        ::close(fd);
        ca_file = path;
        std::ofstream(ca_file) << pem.cert_pem;
        auto srv_ctx = tls::make_server_context(pem.cert_pem, pem.key_pem, tls::Protocol::kDtls);
        tls::ClientTrust trust;
        trust.ca_file = ca_file;
        auto cli_ctx = tls::make_client_context(trust, tls::Protocol::kDtls);
        net::TransportOptions topts;
        dtls = std::make_unique<net::DtlsServer>(
            io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0), srv_ctx, topts,
            [this](const std::shared_ptr<net::Tunnel>& t) {
                t->set_events(&gw);
                server_tunnels.push_back(t);
            });
        dtls->start();
        topts.conn.domain = "app.example.com";
        topts.conn.api_key = std::string(64, 'a');
        std::string err;
        bool finished = false;
        net::dial_dtls(io, dtls->local_endpoint(), cli_ctx, "localhost", topts, fwd.get(),
                       [&](std::shared_ptr<net::Tunnel> t, const std::string& e) {
                           client_tunnel = std::move(t);
                           err = e;
                           finished = true;
                       });
        ASSERT_TRUE(run_until([&] { return finished && gw.tunnel != nullptr; }, 15)) << err;
    }
    bool run_until(const std::function<bool()>& done, double seconds) {
        const auto deadline = Clock::now() + std::chrono::microseconds(
                                                 static_cast<std::int64_t>(seconds * 1e6));
        while (!done() && Clock::now() < deadline) {
            io.run_for(std::chrono::milliseconds(5));
            if (io.stopped()) {
                io.restart();
            }
        }
        return done();
    }
    bool wait(proto::StreamId id, double seconds = 20) {
        return run_until([&] { return gw.calls[id].done(); }, seconds);
    }
    static std::string header(const proto::StreamMeta& m, std::string_view name) {
        for (const auto& h : m.headers) {
            if (h.name.size() == name.size() &&
                std::equal(h.name.begin(), h.name.end(), name.begin(),
                           [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
                return h.value;
            }
        }
        return {};
    }

    LocalService svc;
    asio::io_context io;
    std::string ca_file;
    Gateway gw;
    std::unique_ptr<client::LocalForwarder> fwd;
    std::unique_ptr<net::DtlsServer> dtls;
    std::vector<std::shared_ptr<net::Tunnel>> server_tunnels;
    std::shared_ptr<net::Tunnel> client_tunnel;
};

// A GET gets the service's status, headers (hop-by-hop removed, Host kept) and body.
TEST_F(ClientTest, FixedBody) {
    auto id = gw.open("GET", "/fixed", {{"Connection", "keep-alive, X-Drop"}, {"X-Drop", "1"}}, "");
    ASSERT_TRUE(wait(id));
    auto& c = gw.calls[id];
    ASSERT_TRUE(c.fin) << c.reset_code;
    EXPECT_EQ(c.head.status, 200);
    EXPECT_EQ(c.head.head, proto::HeadType::kResponse);
    EXPECT_EQ(c.body, "hello world");
    EXPECT_EQ(header(c.head, "X-Seen-Host"), "app.example.com");
    EXPECT_EQ(header(c.head, "Content-Length"), "11");
    EXPECT_EQ(header(c.head, "Connection"), "");
    EXPECT_TRUE(run_until([&] { return c.closed; }, 5));
    EXPECT_EQ(fwd->stats().active, 0U);
}

// An 8 MiB response arrives intact.
TEST_F(ClientTest, BigBody) {
    auto id = gw.open("GET", "/big", {}, "");
    ASSERT_TRUE(wait(id, 60));
    auto& c = gw.calls[id];
    ASSERT_TRUE(c.fin);
    EXPECT_EQ(c.body.size(), svc.big_.size());
    EXPECT_TRUE(sha256(c.body) == sha256(svc.big_));
    EXPECT_GT(c.arrivals.size(), 10U);  // streamed, not one lump
}

// A 4 MiB POST with Content-Length is echoed intact; the service saw a length-framed body.
TEST_F(ClientTest, EchoWithLength) {
    const std::string body = pattern_bytes(4 << 20, 3);
    auto id = gw.open("POST", "/echo", {{"Content-Length", std::to_string(body.size())}}, body);
    ASSERT_TRUE(wait(id, 60));
    auto& c = gw.calls[id];
    ASSERT_TRUE(c.fin) << c.reset_code;
    EXPECT_EQ(c.body.size(), body.size());
    EXPECT_TRUE(sha256(c.body) == sha256(body));
    EXPECT_EQ(header(c.head, "X-Seen-Te"), "length");
}

// A POST of unknown length goes chunked to the service, sent in pieces; echoed intact.
TEST_F(ClientTest, EchoChunked) {
    const std::string body = pattern_bytes(4 << 20, 4);
    auto id = gw.open("POST", "/echo", {}, body.substr(0, 1000), false);
    run_until([] { return false; }, 0.1);
    gw.send_more(id, body.substr(1000), true);
    ASSERT_TRUE(wait(id, 60));
    auto& c = gw.calls[id];
    ASSERT_TRUE(c.fin) << c.reset_code;
    EXPECT_TRUE(sha256(c.body) == sha256(body));
    EXPECT_EQ(header(c.head, "X-Seen-Te"), "chunked");
}

// SSE events are forwarded one by one as the service produces them.
TEST_F(ClientTest, SseFlushedPerEvent) {
    auto id = gw.open("GET", "/sse", {}, "");
    ASSERT_TRUE(wait(id));
    auto& c = gw.calls[id];
    ASSERT_TRUE(c.fin);
    EXPECT_EQ(header(c.head, "Content-Type"), "text/event-stream");
    EXPECT_EQ(header(c.head, "Transfer-Encoding"), "");
    EXPECT_NE(c.body.find("data: event 4"), std::string::npos);
    ASSERT_GE(c.arrivals.size(), 5U);
    const auto spread = c.arrivals.back().first - c.arrivals.front().first;
    EXPECT_GT(spread, std::chrono::milliseconds(300));
}

// An unreachable local target resets the stream with kLocalUnreachable.
TEST_F(ClientTest, UnreachableTarget) {
    auto o = fwd_opts();
    tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    o.port = a.local_endpoint().port();
    a.close();  // nothing listens there now
    client_tunnel->set_events(nullptr);
    auto f2 = std::make_unique<client::LocalForwarder>(io.get_executor(), o);
    client_tunnel->set_events(f2.get());
    auto id = gw.open("GET", "/fixed", {}, "");
    ASSERT_TRUE(wait(id));
    EXPECT_TRUE(gw.calls[id].reset);
    EXPECT_EQ(gw.calls[id].reset_code, client::kLocalUnreachable);
    EXPECT_EQ(f2->stats().unreachable_total, 1U);
    client_tunnel->set_events(fwd.get());
}

// A service slower than the head timeout resets the stream with kLocalTimeout.
TEST_F(ClientTest, SlowHeadTimesOut) {
    auto o = fwd_opts();
    o.response_head_timeout = std::chrono::milliseconds(300);
    client_tunnel->set_events(nullptr);
    auto f2 = std::make_unique<client::LocalForwarder>(io.get_executor(), o);
    client_tunnel->set_events(f2.get());
    const auto t0 = Clock::now();
    auto id = gw.open("GET", "/slow", {}, "");
    ASSERT_TRUE(wait(id));
    EXPECT_TRUE(gw.calls[id].reset);
    EXPECT_EQ(gw.calls[id].reset_code, client::kLocalTimeout);
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1400));
    client_tunnel->set_events(fwd.get());
    // With the default timeout the same route succeeds.
    auto id2 = gw.open("GET", "/slow", {}, "");
    ASSERT_TRUE(wait(id2));
    EXPECT_TRUE(gw.calls[id2].fin);
}

// 200 concurrent requests complete over a small, reused set of local connections.
TEST_F(ClientTest, ConcurrentRequestsReuseConnections) {
    auto o = fwd_opts();
    o.max_connections = 16;
    client_tunnel->set_events(nullptr);
    fwd = std::make_unique<client::LocalForwarder>(io.get_executor(), o);
    client_tunnel->set_events(fwd.get());
    const int before = svc.accepted.load();
    std::vector<proto::StreamId> ids;
    for (int i = 0; i < 200; ++i) {
        ids.push_back(gw.open("GET", i % 2 ? "/fixed" : "/echo", {}, ""));
    }
    ASSERT_TRUE(run_until(
        [&] {
            return std::all_of(ids.begin(), ids.end(), [&](auto id) { return gw.calls[id].done(); });
        },
        60));
    for (auto id : ids) {
        EXPECT_TRUE(gw.calls[id].fin);
        EXPECT_EQ(gw.calls[id].head.status, 200);
    }
    const int used = svc.accepted.load() - before;
    EXPECT_LE(used, 16);
    const auto st = fwd->stats();
    EXPECT_GE(st.pool.reuses_total, 180U);
    EXPECT_LE(st.pool.idle, 16U);
    std::printf("200 requests: %d local connections, %llu reuses\n", used,
                static_cast<unsigned long long>(st.pool.reuses_total));
}

// An upgrade answered with 101 becomes a raw byte pipe both ways.
TEST_F(ClientTest, UpgradeEcho) {
    auto id = gw.open("GET", "/ws", {{"Upgrade", "hgtest"}, {"Connection", "Upgrade"}}, "ping-1;",
                      false, proto::StreamKind::kUpgrade);
    auto& c = gw.calls[id];
    ASSERT_TRUE(run_until([&] { return c.body.find("ping-1;") != std::string::npos; }, 10));
    EXPECT_EQ(c.head.status, 101);
    EXPECT_EQ(header(c.head, "Upgrade"), "hgtest");
    const std::string big = pattern_bytes(1 << 20, 9);
    gw.send_more(id, big, true);
    ASSERT_TRUE(wait(id, 30));
    EXPECT_TRUE(c.fin);
    EXPECT_EQ(c.body, "hello-from-101:ping-1;" + big);
    EXPECT_EQ(fwd->stats().upgrades_total, 1U);
}

// A server reset (visitor gone) aborts the local exchange and frees it.
TEST_F(ClientTest, ServerResetAbortsExchange) {
    auto id = gw.open("GET", "/slow", {}, "");
    run_until([] { return false; }, 0.2);
    EXPECT_EQ(fwd->stats().active, 1U);
    (void)gw.tunnel->conn().stream_reset(id, 0x99);
    (void)gw.tunnel->conn().stream_stop_sending(id, 0x99);
    gw.tunnel->flush();
    ASSERT_TRUE(run_until([&] { return fwd->stats().active == 0; }, 5));
    EXPECT_EQ(fwd->stats().cancelled_total, 1U);
}

}  // namespace
