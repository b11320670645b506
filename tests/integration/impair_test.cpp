// Integration tests of hopgate-impair: the real binary on loopback port 0, in front of in-test
// UDP and TCP echo servers, driven through its control port and signals. Every wait has a
// deadline; timing assertions are lower bounds only (upper bounds are generous).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "impair_process.hpp"

namespace {

using namespace hopgate::testing;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---- small POSIX helpers -------------------------------------------------------------------


std::uint16_t local_port(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}


std::uint64_t fnv1a(const std::vector<std::uint8_t>& data) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (auto b : data) {
        h = (h ^ b) * 0x100000001b3ULL;
    }
    return h;
}

// Value of `"key":N` inside the object that follows `"section":` (or anywhere if empty).
std::uint64_t json_u64(const std::string& json, const std::string& section,
                       const std::string& key) {
    std::size_t from = 0;
    std::size_t to = json.size();
    if (!section.empty()) {
        from = json.find("\"" + section + "\":{");
        if (from == std::string::npos) {
            ADD_FAILURE() << "no section " << section << " in " << json;
            return 0;
        }
        to = json.find('}', from);
    }
    const std::string needle = "\"" + key + "\":";
    const auto at = json.find(needle, from);
    if (at == std::string::npos || at > to) {
        ADD_FAILURE() << "no key " << key << " in " << json;
        return 0;
    }
    return std::stoull(json.substr(at + needle.size()));
}

// ---- the relay process ---------------------------------------------------------------------


// ---- echo servers --------------------------------------------------------------------------

class UdpEcho {
  public:
    UdpEcho() {
        fd_ = socket(AF_INET, SOCK_DGRAM, 0);
        auto a = loopback(0);
        bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        const int big = 4 << 20;
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        port_ = local_port(fd_);
        thread_ = std::thread([this] { loop(); });
    }
    ~UdpEcho() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    std::uint16_t port() const { return port_; }
    std::set<std::uint16_t> source_ports() {
        std::lock_guard lock(mu_);
        return ports_;
    }
    std::uint16_t last_source_port() {
        std::lock_guard lock(mu_);
        return last_port_;
    }

  private:
    void loop() {
        std::vector<char> buf(65536);
        while (!stop_) {
            if (!wait_readable(fd_, Clock::now() + 20ms)) {
                continue;
            }
            sockaddr_in from{};
            socklen_t len = sizeof from;
            const ssize_t n =
                recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
            if (n < 0) {
                continue;
            }
            {
                std::lock_guard lock(mu_);
                last_port_ = ntohs(from.sin_port);
                ports_.insert(last_port_);
            }
            sendto(fd_, buf.data(), static_cast<std::size_t>(n), 0,
                   reinterpret_cast<sockaddr*>(&from), len);
        }
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::set<std::uint16_t> ports_;
    std::uint16_t last_port_ = 0;
    std::thread thread_;
};

class TcpEcho {
  public:
    TcpEcho() {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        const int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        auto a = loopback(0);
        bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        listen(fd_, 16);
        port_ = local_port(fd_);
        thread_ = std::thread([this] { accept_loop(); });
    }
    ~TcpEcho() {
        stop_ = true;
        thread_.join();
        for (auto& t : conns_) {
            t.join();
        }
        close(fd_);
    }
    std::uint16_t port() const { return port_; }

  private:
    void accept_loop() {
        while (!stop_) {
            if (!wait_readable(fd_, Clock::now() + 20ms)) {
                continue;
            }
            const int c = accept(fd_, nullptr, nullptr);
            if (c >= 0) {
                conns_.emplace_back([this, c] { echo(c); });
            }
        }
    }
    void echo(int c) {
        std::vector<char> buf(65536);
        while (!stop_) {
            if (!wait_readable(c, Clock::now() + 20ms)) {
                continue;
            }
            const ssize_t n = read(c, buf.data(), buf.size());
            if (n <= 0) {
                break;
            }
            ssize_t off = 0;
            while (off < n && !stop_) {
                const ssize_t w = write(c, buf.data() + off, static_cast<std::size_t>(n - off));
                if (w <= 0) {
                    break;
                }
                off += w;
            }
        }
        shutdown(c, SHUT_WR);
        close(c);
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::vector<std::thread> conns_;  // touched by the accept thread only, joined after it
};

// ---- clients -------------------------------------------------------------------------------

class UdpClient {
  public:
    explicit UdpClient(std::uint16_t relay_port) {
        fd_ = socket(AF_INET, SOCK_DGRAM, 0);
        const int big = 4 << 20;
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        auto a = loopback(relay_port);
        connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    ~UdpClient() { close(fd_); }

    void send(const std::string& payload) const { ::send(fd_, payload.data(), payload.size(), 0); }
    std::optional<std::string> recv(Clock::duration timeout) const {
        if (!wait_readable(fd_, Clock::now() + timeout)) {
            return std::nullopt;
        }
        char buf[65536];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0) {
            return std::nullopt;
        }
        return std::string(buf, static_cast<std::size_t>(n));
    }
    // One round trip; false if no matching echo within `timeout`.
    bool ping(const std::string& payload, Clock::duration timeout = 1s) const {
        send(payload);
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            auto r = recv(deadline - Clock::now());
            if (r && *r == payload) {
                return true;
            }
        }
        return false;
    }
    // Collects datagrams until `quiet` passes without one (or `limit` passes in total).
    std::vector<std::string> drain(Clock::duration quiet, Clock::duration limit = 10s) const {
        std::vector<std::string> out;
        const auto end = Clock::now() + limit;
        while (Clock::now() < end) {
            auto r = recv(quiet);
            if (!r) {
                break;
            }
            out.push_back(std::move(*r));
        }
        return out;
    }

  private:
    int fd_ = -1;
};


// Reads exactly `n` bytes (or until EOF/deadline).
std::vector<std::uint8_t> read_n(int fd, std::size_t n, Clock::time_point deadline) {
    std::vector<std::uint8_t> out;
    out.reserve(n);
    std::vector<std::uint8_t> buf(65536);
    while (out.size() < n && wait_readable(fd, deadline)) {
        const ssize_t r = read(fd, buf.data(), std::min(buf.size(), n - out.size()));
        if (r <= 0) {
            break;
        }
        out.insert(out.end(), buf.begin(), buf.begin() + r);
    }
    return out;
}



std::vector<std::string> udp_args(std::uint16_t target, std::vector<std::string> extra) {
    std::vector<std::string> a = {"--udp",
                                  "--listen",
                                  "127.0.0.1:0",
                                  "--target",
                                  "127.0.0.1:" + std::to_string(target),
                                  "--control",
                                  "127.0.0.1:0",
                                  "--log-level",
                                  "warn"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

std::vector<std::string> tcp_args(std::uint16_t target, std::vector<std::string> extra) {
    auto a = udp_args(target, std::move(extra));
    a[0] = "--tcp";
    return a;
}

std::string seq_payload(int i) { return "seq:" + std::to_string(i); }

// Sends `n` numbered datagrams, paced so that no socket buffer overflows, and returns the
// sequence numbers echoed back, in arrival order.
std::vector<int> numbered_round(const UdpClient& c, int n, Clock::duration quiet = 400ms) {
    std::vector<int> got;
    std::thread rx([&] {
        for (auto& s : c.drain(quiet, 15s)) {
            got.push_back(std::stoi(s.substr(4)));
        }
    });
    for (int i = 0; i < n; ++i) {
        c.send(seq_payload(i));
        if (i % 16 == 15) {
            std::this_thread::sleep_for(200us);
        }
    }
    rx.join();
    return got;
}

// ---- UDP -----------------------------------------------------------------------------------

// Datagrams go through the relay and back unchanged; the start line names both ports.
TEST(ImpairUdp, RelaysBothWays) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {}));
    ASSERT_TRUE(relay.started()) << relay.start_line();
    ASSERT_NE(relay.control_port(), 0);
    UdpClient c(relay.listen_port());
    for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(c.ping("hello " + std::to_string(i))) << i;
    }
    const std::string big(60000, 'x');  // the large buffer class works too
    ASSERT_TRUE(c.ping(big));
    ControlClient ctl(relay.control_port());
    const auto s = ctl.stats();
    EXPECT_EQ(json_u64(s, "up", "tx_datagrams"), 51u);
    EXPECT_EQ(json_u64(s, "down", "tx_datagrams"), 51u);
    EXPECT_EQ(json_u64(s, "", "mappings"), 1u);
}

// --loss 30 drops about 30 % per direction, and the same seed drops the same datagrams.
TEST(ImpairUdp, LossIsAboutThirtyPercentAndSeeded) {
    constexpr int kN = 1000;
    auto run = [&](const std::string& seed, std::string* stats) {
        UdpEcho echo;
        ImpairProcess relay(udp_args(echo.port(), {"--loss", "30", "--seed", seed}));
        EXPECT_TRUE(relay.started());
        UdpClient c(relay.listen_port());
        auto got = numbered_round(c, kN);
        ControlClient ctl(relay.control_port());
        *stats = ctl.stats();
        std::sort(got.begin(), got.end());
        return got;
    };
    std::string s1;
    std::string s2;
    std::string s3;
    const auto a = run("1", &s1);
    const auto b = run("1", &s2);
    const auto c = run("2", &s3);
    ASSERT_EQ(json_u64(s1, "up", "rx_datagrams"), static_cast<std::uint64_t>(kN)) << s1;
    const double up_loss = static_cast<double>(json_u64(s1, "up", "dropped_loss")) / kN;
    const double down_loss = static_cast<double>(json_u64(s1, "down", "dropped_loss")) /
                             static_cast<double>(json_u64(s1, "down", "rx_datagrams"));
    EXPECT_NEAR(up_loss, 0.30, 0.05) << s1;
    EXPECT_NEAR(down_loss, 0.30, 0.05) << s1;
    EXPECT_NEAR(static_cast<double>(a.size()) / kN, 0.49, 0.07);
    // Same seed, same fates (the n-th datagram's fate depends only on seed and n).
    ASSERT_EQ(json_u64(s2, "up", "rx_datagrams"), static_cast<std::uint64_t>(kN)) << s2;
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
}

// --delay-ms 50 adds at least 100 ms to the round trip.
TEST(ImpairUdp, DelayAddsRoundTrip) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {"--delay-ms", "50"}));
    ASSERT_TRUE(relay.started());
    UdpClient c(relay.listen_port());
    for (int i = 0; i < 5; ++i) {
        const auto t0 = Clock::now();
        ASSERT_TRUE(c.ping("p" + std::to_string(i), 3s));
        const auto rtt = Clock::now() - t0;
        EXPECT_GE(rtt, 100ms);
        EXPECT_LT(rtt, 2s);
    }
}

// Jitter reorders datagrams but loses none.
TEST(ImpairUdp, JitterReorders) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {"--jitter-ms", "30", "--seed", "7"}));
    ASSERT_TRUE(relay.started());
    UdpClient c(relay.listen_port());
    const auto got = numbered_round(c, 200, 500ms);
    ASSERT_EQ(got.size(), 200u);
    int inversions = 0;
    for (std::size_t i = 1; i < got.size(); ++i) {
        inversions += got[i] < got[i - 1] ? 1 : 0;
    }
    EXPECT_GT(inversions, 10);
    std::set<int> unique(got.begin(), got.end());
    EXPECT_EQ(unique.size(), 200u);
}

// --dup duplicates about that share of datagrams, in each direction.
TEST(ImpairUdp, DupDuplicates) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {"--dup", "50", "--seed", "2"}));
    ASSERT_TRUE(relay.started());
    UdpClient c(relay.listen_port());
    const auto got = numbered_round(c, 200);
    // 200 * 1.5 (up) * 1.5 (down) = 450 expected.
    EXPECT_GT(got.size(), 360u);
    EXPECT_LT(got.size(), 540u);
    ControlClient ctl(relay.control_port());
    const auto s = ctl.stats();
    EXPECT_NEAR(static_cast<double>(json_u64(s, "up", "duplicated")), 100.0, 30.0) << s;
}

// A rate limit with a small queue tail-drops a burst and spreads the rest out in time.
TEST(ImpairUdp, RateLimitTailDropsAndPaces) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {"--up-rate-mbit", "1", "--queue-kb", "8"}));
    ASSERT_TRUE(relay.started());
    UdpClient c(relay.listen_port());
    const std::string payload(1000, 'r');
    const auto t0 = Clock::now();
    for (int i = 0; i < 100; ++i) {
        c.send(payload);
    }
    const auto got = c.drain(500ms);
    ControlClient ctl(relay.control_port());
    const auto s = ctl.stats();
    EXPECT_GT(json_u64(s, "up", "dropped_queue"), 50u) << s;
    EXPECT_GE(got.size(), 8u);
    // >= 8 datagrams of 1000 bytes at 1 Mbit/s take >= 64 ms to serialize (lower bound only).
    EXPECT_GE(Clock::now() - t0, 64ms);
    EXPECT_EQ(json_u64(s, "up", "tx_datagrams"), got.size()) << s;
}

// `cut` stops traffic both ways (counted), `restore` resumes it.
TEST(ImpairUdp, ControlCutAndRestore) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {}));
    ASSERT_TRUE(relay.started());
    UdpClient c(relay.listen_port());
    ControlClient ctl(relay.control_port());
    ASSERT_TRUE(c.ping("before"));
    ASSERT_EQ(ctl.command("cut"), "ok cut");
    for (int i = 0; i < 10; ++i) {
        c.send("during");
    }
    EXPECT_TRUE(c.drain(300ms).empty());
    auto s = ctl.stats();
    EXPECT_NE(s.find("\"cut\":true"), std::string::npos);
    EXPECT_EQ(json_u64(s, "up", "dropped_cut"), 10u) << s;
    ASSERT_EQ(ctl.command("restore"), "ok restore");
    EXPECT_TRUE(c.ping("after"));
}

// `rebind` gives the mapping a new upstream source port; replies still reach the client.
TEST(ImpairUdp, ControlRebindChangesSourcePort) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {}));
    ASSERT_TRUE(relay.started());
    UdpClient c(relay.listen_port());
    ControlClient ctl(relay.control_port());
    ASSERT_TRUE(c.ping("one"));
    const auto p1 = echo.last_source_port();
    ASSERT_EQ(ctl.command("rebind"), "ok rebind 1");
    ASSERT_TRUE(c.ping("two"));
    const auto p2 = echo.last_source_port();
    EXPECT_NE(p1, p2);
    EXPECT_EQ(echo.source_ports().size(), 2u);
}

// Each client address gets its own mapping (own upstream source port).
TEST(ImpairUdp, OneMappingPerClient) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {}));
    ASSERT_TRUE(relay.started());
    UdpClient a(relay.listen_port());
    UdpClient b(relay.listen_port());
    ASSERT_TRUE(a.ping("from a"));
    ASSERT_TRUE(b.ping("from b"));
    EXPECT_EQ(echo.source_ports().size(), 2u);
    ControlClient ctl(relay.control_port());
    EXPECT_EQ(json_u64(ctl.stats(), "", "mappings"), 2u);
}

// SIGUSR1 toggles cut, SIGUSR2 rebinds; SIGTERM prints the final stats and exits 0.
TEST(ImpairUdp, SignalsCutRebindAndStatsOnExit) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {}));
    ASSERT_TRUE(relay.started());
    UdpClient c(relay.listen_port());
    ControlClient ctl(relay.control_port());
    ASSERT_TRUE(c.ping("one"));
    auto wait_for = [&](const std::string& needle) {
        const auto deadline = Clock::now() + 3s;
        while (Clock::now() < deadline) {
            if (ctl.stats().find(needle) != std::string::npos) {
                return true;
            }
            std::this_thread::sleep_for(10ms);
        }
        return false;
    };
    relay.signal(SIGUSR1);
    ASSERT_TRUE(wait_for("\"cut\":true"));
    EXPECT_FALSE(c.ping("cut", 300ms));
    relay.signal(SIGUSR1);
    ASSERT_TRUE(wait_for("\"cut\":false"));
    ASSERT_TRUE(c.ping("restored"));
    const auto p1 = echo.last_source_port();
    relay.signal(SIGUSR2);
    ASSERT_TRUE(wait_for("\"rebinds\":1"));
    ASSERT_TRUE(c.ping("rebound"));
    EXPECT_NE(echo.last_source_port(), p1);
    std::string rest;
    EXPECT_EQ(relay.stop(&rest), 0);
    EXPECT_NE(rest.find("{\"stats\":{\"mode\":\"udp\""), std::string::npos) << rest;
}

// Bad control input gets an error line, never a crash; an over-long line closes that connection.
TEST(ImpairControl, BadCommandsGetErrors) {
    UdpEcho echo;
    ImpairProcess relay(udp_args(echo.port(), {}));
    ASSERT_TRUE(relay.started());
    {
        ControlClient ctl(relay.control_port());
        for (const std::string& bad : std::vector<std::string>{
                 "bogus", "", "   ", "set", "set loss", "set loss abc", "set loss -5",
                 "set loss 101", "set sideways loss 5", "set up nonsense 1", "set dup nan",
                 "set delay-ms 1e300", "cut now", "set queue-kb 0",
                 std::string("\x01\xff\x7f", 3)}) {
            const auto r = ctl.command(bad);
            EXPECT_EQ(r.rfind("err ", 0), 0u) << "'" << bad << "' -> '" << r << "'";
        }
        EXPECT_EQ(ctl.command("set up loss 2.5"), "ok set");
        EXPECT_NE(ctl.command("get").find("\"loss\":2.5"), std::string::npos);
        EXPECT_EQ(ctl.command("get").find("\"down\":{\"loss\":2.5"), std::string::npos);
        EXPECT_EQ(ctl.command("quit"), "ok bye");
        EXPECT_TRUE(ctl.closed_by_peer());
    }
    {
        ControlClient ctl(relay.control_port());
        EXPECT_EQ(ctl.command(std::string(5000, 'a')), "err line too long");
        EXPECT_TRUE(ctl.closed_by_peer());
    }
    ControlClient ctl(relay.control_port());
    EXPECT_FALSE(ctl.stats().empty());
    UdpClient c(relay.listen_port());
    EXPECT_TRUE(c.ping("still alive"));
}

// ---- TCP -----------------------------------------------------------------------------------

// 8 MiB go through the TCP relay with delay and come back byte-identical; RTT grows by 2*delay.
TEST(ImpairTcp, Relays8MiBIntactWithDelay) {
    TcpEcho echo;
    ImpairProcess relay(tcp_args(echo.port(), {"--delay-ms", "20"}));
    ASSERT_TRUE(relay.started());
    const int fd = tcp_connect(relay.listen_port());
    ASSERT_GE(fd, 0);

    const std::uint8_t ping[] = {'p'};
    const auto t0 = Clock::now();
    ASSERT_TRUE(write_all(fd, ping, 1));
    ASSERT_EQ(read_n(fd, 1, Clock::now() + 3s).size(), 1u);
    EXPECT_GE(Clock::now() - t0, 40ms);

    constexpr std::size_t kBytes = 8u << 20;
    std::vector<std::uint8_t> data(kBytes);
    std::uint64_t x = 42;
    for (auto& b : data) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        b = static_cast<std::uint8_t>(x >> 56);
    }
    std::thread writer([&] {
        EXPECT_TRUE(write_all(fd, data.data(), data.size()));
        shutdown(fd, SHUT_WR);
    });
    const auto got = read_n(fd, kBytes, Clock::now() + 15s);
    writer.join();
    EXPECT_EQ(got.size(), kBytes);
    EXPECT_EQ(fnv1a(got), fnv1a(data));
    // After our FIN has gone through and come back, the relay closes cleanly.
    EXPECT_TRUE(read_n(fd, 1, Clock::now() + 3s).empty());
    close(fd);

    ControlClient ctl(relay.control_port());
    const auto s = ctl.stats();
    EXPECT_EQ(json_u64(s, "up", "tx_bytes"), kBytes + 1) << s;
    EXPECT_EQ(json_u64(s, "down", "tx_bytes"), kBytes + 1) << s;
}

// `cut` holds TCP bytes (nothing lost), `restore` delivers them; loss is not settable.
TEST(ImpairTcp, CutHoldsBytesRestoreDelivers) {
    TcpEcho echo;
    ImpairProcess relay(tcp_args(echo.port(), {}));
    ASSERT_TRUE(relay.started());
    ControlClient ctl(relay.control_port());
    const int fd = tcp_connect(relay.listen_port());
    ASSERT_GE(fd, 0);
    std::vector<std::uint8_t> msg(1000, 'z');
    ASSERT_TRUE(write_all(fd, msg.data(), msg.size()));
    ASSERT_EQ(read_n(fd, msg.size(), Clock::now() + 3s).size(), msg.size());
    ASSERT_EQ(ctl.command("cut"), "ok cut");
    ASSERT_TRUE(write_all(fd, msg.data(), msg.size()));
    EXPECT_TRUE(read_n(fd, 1, Clock::now() + 300ms).empty());
    ASSERT_EQ(ctl.command("restore"), "ok restore");
    EXPECT_EQ(read_n(fd, msg.size(), Clock::now() + 3s), msg);
    close(fd);
    EXPECT_EQ(ctl.command("set loss 5").rfind("err ", 0), 0u);
    EXPECT_EQ(ctl.command("rebind").rfind("err ", 0), 0u);
    EXPECT_EQ(ctl.command("set delay-ms 5"), "ok set");
}

// A TCP rate limit paces the stream (lower bound only).
TEST(ImpairTcp, RateLimitPaces) {
    TcpEcho echo;
    ImpairProcess relay(tcp_args(echo.port(), {"--up-rate-mbit", "8"}));
    ASSERT_TRUE(relay.started());
    const int fd = tcp_connect(relay.listen_port());
    ASSERT_GE(fd, 0);
    std::vector<std::uint8_t> data(256 * 1024, 'q');
    const auto t0 = Clock::now();
    std::thread writer([&] { EXPECT_TRUE(write_all(fd, data.data(), data.size())); });
    const auto got = read_n(fd, data.size(), Clock::now() + 10s);
    writer.join();
    EXPECT_EQ(got.size(), data.size());
    // 256 KiB at 8 Mbit/s = 262 ms.
    EXPECT_GE(Clock::now() - t0, 250ms);
    close(fd);
}

// Start-up errors exit 1 with a message, before printing a start line.
TEST(ImpairStartup, BadFlagsExitOne) {
    for (std::vector<std::string> args :
         {std::vector<std::string>{"--tcp", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9",
                                   "--loss", "5"},
          std::vector<std::string>{"--udp", "--listen", "127.0.0.1:0"},
          std::vector<std::string>{"--udp", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9",
                                   "--loss", "200"},
          std::vector<std::string>{"--bogus"}}) {
        ImpairProcess relay(args);
        EXPECT_FALSE(relay.started()) << relay.start_line();
        EXPECT_EQ(relay.stop(), 1);
    }
}

}  // namespace
