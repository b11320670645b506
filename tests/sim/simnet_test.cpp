#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "sim/link.hpp"
#include "sim/network.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HG_SIM_UNDER_SANITIZER 1
#endif
#endif

namespace hopgate::sim {
namespace {

using core::Duration;
using core::Instant;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr Instant kT0{};

Instant at_us(std::int64_t us) { return kT0 + microseconds(us); }

std::vector<std::uint8_t> bytes(std::size_t n) { return std::vector<std::uint8_t>(n, 0xab); }

// Pops everything due up to `until`, in order.
std::vector<Delivered> drain(Link& link, Instant until = core::kInstantMax) {
    std::vector<Delivered> out;
    Delivered d;
    while (link.pop_due(until, d)) {
        out.push_back(d);
    }
    return out;
}

std::uint64_t dropped(const LinkStats& s) {
    return s.dropped_loss + s.dropped_queue + s.dropped_mtu + s.dropped_cut;
}

// Mean length of runs of consecutive lost datagrams over `n` sends.
double mean_loss_run(const LinkConfig& config, int n, double* loss_rate) {
    Link link(config, 7);
    const auto payload = bytes(100);
    int runs = 0;
    int lost = 0;
    bool in_run = false;
    for (int i = 0; i < n; ++i) {
        const bool l = link.send(payload, at_us(i)) == SendResult::kDroppedLoss;
        lost += l ? 1 : 0;
        runs += (l && !in_run) ? 1 : 0;
        in_run = l;
    }
    *loss_rate = static_cast<double>(lost) / n;
    return runs == 0 ? 0.0 : static_cast<double>(lost) / runs;
}

// ---- Test endpoints ----------------------------------------------------------------------------

// Sends `count` datagrams of `size` bytes, one every `interval` starting at `start`
// (interval 0 = all at once). Each starts with its 8-byte big-endian sequence number.
// Records what comes back.
class Pacer : public Endpoint {
public:
    Pacer(std::uint64_t count, std::size_t size, Duration interval, Instant start = kT0)
        : count_(count), interval_(interval), next_at_(start), buf_(size, 0x5a) {}

    void on_datagram(std::span<const std::uint8_t> d, Instant now) override {
        received.push_back({now, seq_of(d)});
    }
    void on_timeout(Instant) override {}
    std::optional<Instant> next_timeout() const override {
        return sent_ < count_ ? std::optional<Instant>(next_at_) : std::nullopt;
    }
    void flush(Instant now,
               const std::function<void(std::span<const std::uint8_t>)>& send) override {
        while (sent_ < count_ && next_at_ <= now) {
            for (int i = 0; i < 8; ++i) {
                buf_[static_cast<std::size_t>(i)] =
                    static_cast<std::uint8_t>(sent_ >> (56 - 8 * i));
            }
            send(buf_);
            ++sent_;
            next_at_ += interval_;
        }
    }

    static std::uint64_t seq_of(std::span<const std::uint8_t> d) {
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < 8 && i < d.size(); ++i) {
            v = (v << 8) | d[i];
        }
        return v;
    }

    struct Arrival {
        Instant at;
        std::uint64_t seq;
    };
    std::vector<Arrival> received;
    std::uint64_t sent() const { return sent_; }

private:
    std::uint64_t count_;
    Duration interval_;
    Instant next_at_;
    std::uint64_t sent_ = 0;
    std::vector<std::uint8_t> buf_;
};

// Echoes every datagram back (optionally) and counts what arrived, per path.
class Echo : public Endpoint {
public:
    explicit Echo(bool echo = true) : echo_(echo) {}

    void on_datagram(std::span<const std::uint8_t> d, Instant now) override {
        on_path_datagram(d, now, 0);
    }
    void on_path_datagram(std::span<const std::uint8_t> d, Instant, PathId path) override {
        ++received;
        ++per_path[path];
        if (echo_) {
            pending_.insert(pending_.end(), d.begin(), d.end());
            lengths_.push_back(d.size());
        }
    }
    void on_timeout(Instant) override {}
    std::optional<Instant> next_timeout() const override { return std::nullopt; }
    void flush(Instant, const std::function<void(std::span<const std::uint8_t>)>& send) override {
        std::size_t offset = 0;
        for (std::size_t len : lengths_) {
            send(std::span<const std::uint8_t>(pending_).subspan(offset, len));
            offset += len;
        }
        pending_.clear();
        lengths_.clear();
    }

    std::uint64_t received = 0;
    std::map<PathId, std::uint64_t> per_path;

private:
    bool echo_;
    std::vector<std::uint8_t> pending_;  // Flat, so echoing does not allocate per datagram.
    std::vector<std::size_t> lengths_;
};

// A broken endpoint: its timer is always in the past and firing it changes nothing.
class StuckTimer : public Endpoint {
public:
    void on_datagram(std::span<const std::uint8_t>, Instant) override {}
    void on_timeout(Instant) override { ++fired; }
    std::optional<Instant> next_timeout() const override { return kT0; }
    void flush(Instant, const std::function<void(std::span<const std::uint8_t>)>&) override {}
    std::uint64_t fired = 0;
};

// ---- Link --------------------------------------------------------------------------------------

// The measured Bernoulli loss rate matches `loss` within statistical tolerance.
TEST(Link, LossRateMatchesConfig) {
    LinkConfig c;
    c.loss = 0.1;
    Link link(c, 1);
    const auto payload = bytes(100);
    constexpr int kN = 100'000;
    for (int i = 0; i < kN; ++i) {
        link.send(payload, at_us(i));
    }
    // sd = sqrt(0.1 * 0.9 / 1e5) ~ 0.00095; 0.005 is > 5 sd.
    EXPECT_NEAR(static_cast<double>(link.stats().dropped_loss) / kN, 0.1, 0.005);
    EXPECT_EQ(drain(link).size(), kN - link.stats().dropped_loss);
}

// Without jitter, datagrams arrive in send order, exactly `delay` after they were sent.
TEST(Link, FifoWithoutJitter) {
    LinkConfig c;
    c.delay = milliseconds(10);
    Link link(c, 1);
    const auto payload = bytes(50);
    for (int i = 0; i < 1000; ++i) {
        link.send(payload, at_us(i / 10 * 7));  // Several sends per instant: ties keep FIFO.
    }
    const auto out = drain(link);
    ASSERT_EQ(out.size(), 1000u);
    for (std::size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].id, i);
        EXPECT_EQ(out[i].at, at_us(static_cast<std::int64_t>(i) / 10 * 7) + milliseconds(10));
    }
}

// Jitter reorders, and each delivery lies in [send + delay, send + delay + jitter].
TEST(Link, JitterReordersWithinBounds) {
    LinkConfig c;
    c.delay = milliseconds(10);
    c.jitter = milliseconds(5);
    Link link(c, 2);
    const auto payload = bytes(50);
    for (int i = 0; i < 1000; ++i) {
        link.send(payload, at_us(i * 100));
    }
    const auto out = drain(link);
    ASSERT_EQ(out.size(), 1000u);
    int inversions = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const Instant sent = at_us(static_cast<std::int64_t>(out[i].id) * 100);
        EXPECT_GE(out[i].at, sent + milliseconds(10));
        EXPECT_LE(out[i].at, sent + milliseconds(15));
        if (i > 0) {
            EXPECT_LE(out[i - 1].at, out[i].at);  // Delivery-time order.
            inversions += out[i].id < out[i - 1].id ? 1 : 0;
        }
    }
    EXPECT_GT(inversions, 100);
}

// pop_due returns only datagrams due by `now`, and next_delivery names the earliest.
TEST(Link, PopDueRespectsTime) {
    LinkConfig c;
    c.delay = milliseconds(5);
    Link link(c, 3);
    EXPECT_FALSE(link.next_delivery());
    link.send(bytes(10), at_us(0));
    link.send(bytes(20), at_us(1000));
    ASSERT_TRUE(link.next_delivery());
    EXPECT_EQ(*link.next_delivery(), at_us(5000));
    Delivered d;
    EXPECT_FALSE(link.pop_due(at_us(4999), d));
    ASSERT_TRUE(link.pop_due(at_us(5000), d));
    EXPECT_EQ(d.data.size(), 10u);
    EXPECT_EQ(*link.next_delivery(), at_us(6000));
    EXPECT_FALSE(link.pop_due(at_us(5999), d));
    ASSERT_TRUE(link.pop_due(at_us(6000), d));
    EXPECT_EQ(d.data.size(), 20u);
    EXPECT_FALSE(link.next_delivery());
}

// `dup` duplicates at the configured rate; each id arrives at most twice.
TEST(Link, DuplicationRate) {
    LinkConfig c;
    c.dup = 0.2;
    c.jitter = microseconds(500);
    Link link(c, 4);
    const auto payload = bytes(100);
    constexpr int kN = 100'000;
    for (int i = 0; i < kN; ++i) {
        link.send(payload, at_us(i * 10));
    }
    EXPECT_NEAR(static_cast<double>(link.stats().duplicated) / kN, 0.2, 0.01);
    const auto out = drain(link);
    EXPECT_EQ(out.size(), kN + link.stats().duplicated);
    std::vector<int> count(kN, 0);
    for (const auto& d : out) {
        ++count[d.id];
    }
    for (int n : count) {
        ASSERT_TRUE(n == 1 || n == 2);
    }
}

// 1000 x 1250-byte datagrams at 10 Mbit/s serialize back to back: 1 ms each, 1 s in total.
TEST(Link, RateLimitSerializes) {
    LinkConfig c;
    c.rate_bps = 10'000'000;
    c.delay = milliseconds(20);
    Link link(c, 5);
    const auto payload = bytes(1250);
    for (int i = 0; i < 1000; ++i) {
        link.send(payload, kT0);
    }
    const auto out = drain(link);
    ASSERT_EQ(out.size(), 1000u);
    for (std::size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].at, kT0 + milliseconds(20) + milliseconds(static_cast<int>(i) + 1));
    }
    EXPECT_EQ(out.back().at - kT0, seconds(1) + milliseconds(20));
    EXPECT_EQ(link.stats().max_queue_packets, 1000u);
}

// Serialization times that are not whole microseconds do not drift over many datagrams.
TEST(Link, RateLimitHasNoRoundingDrift) {
    LinkConfig c;
    c.rate_bps = 3'000'000;  // 100 bytes = 266.67 us.
    Link link(c, 5);
    const auto payload = bytes(100);
    for (int i = 0; i < 3000; ++i) {
        link.send(payload, kT0);
    }
    const auto out = drain(link);
    ASSERT_EQ(out.size(), 3000u);
    EXPECT_EQ(out.back().at, at_us(800'000));  // 3000 * 800 bits / 3 Mbit/s, exactly.
}

// An idle serializer does not bank credit: a datagram sent later leaves size*8/rate after it.
TEST(Link, RateLimitIdleLinkStartsFresh) {
    LinkConfig c;
    c.rate_bps = 8'000'000;  // 1000 bytes = 1 ms.
    Link link(c, 5);
    link.send(bytes(1000), kT0);
    link.send(bytes(1000), at_us(10'000));
    const auto out = drain(link);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].at, at_us(1000));
    EXPECT_EQ(out[1].at, at_us(11'000));
}

// A full queue tail-drops (packets and bytes bounds), and accepts again once it drains.
TEST(Link, QueueTailDrop) {
    {
        LinkConfig c;
        c.rate_bps = 1'000'000;
        c.queue_packets = 10;
        Link link(c, 6);
        for (int i = 0; i < 100; ++i) {
            link.send(bytes(1000), kT0);
        }
        EXPECT_EQ(link.stats().dropped_queue, 90u);
        EXPECT_EQ(link.stats().max_queue_packets, 10u);
        EXPECT_EQ(drain(link).size(), 10u);
    }
    {
        LinkConfig c;
        c.rate_bps = 8'000'000;  // 1000 bytes = 1 ms.
        c.queue_bytes = 5000;
        Link link(c, 6);
        for (int i = 0; i < 20; ++i) {
            link.send(bytes(1000), kT0);
        }
        EXPECT_EQ(link.stats().dropped_queue, 15u);
        EXPECT_EQ(link.stats().max_queue_bytes, 5000u);
        // At 2 ms two have left the serializer: room for exactly two more.
        for (int i = 0; i < 3; ++i) {
            link.send(bytes(1000), at_us(2000));
        }
        EXPECT_EQ(link.stats().dropped_queue, 16u);
        EXPECT_EQ(drain(link).size(), 7u);
    }
}

// The MTU black hole drops only datagrams larger than the MTU, and can be lowered at run time.
TEST(Link, MtuBlackHole) {
    LinkConfig c;
    c.mtu = 1200;
    Link link(c, 7);
    for (int i = 0; i < 100; ++i) {
        link.send(bytes(i % 2 == 0 ? 1200 : 1201), at_us(i));
    }
    EXPECT_EQ(link.stats().dropped_mtu, 50u);
    for (const auto& d : drain(link)) {
        EXPECT_EQ(d.data.size(), 1200u);
        EXPECT_EQ(d.id % 2, 0u);
    }
    c.mtu = 1000;
    link.set_config(c);
    EXPECT_EQ(link.send(bytes(1200), at_us(200)), SendResult::kDroppedMtu);
    EXPECT_EQ(link.send(bytes(1000), at_us(200)), SendResult::kInFlight);
    EXPECT_EQ(drain(link).size(), 1u);
}

// A cut link drops everything, including what was in flight; restoring it lets traffic resume.
TEST(Link, CutDropsEverything) {
    LinkConfig c;
    c.delay = milliseconds(50);
    c.rate_bps = 1'000'000;
    Link link(c, 8);
    for (int i = 0; i < 10; ++i) {
        link.send(bytes(500), kT0);
    }
    c.cut = true;
    link.set_config(c);
    EXPECT_EQ(link.in_flight(), 0u);
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(link.send(bytes(500), at_us(1000)), SendResult::kDroppedCut);
    }
    EXPECT_EQ(link.stats().dropped_cut, 20u);
    EXPECT_TRUE(drain(link).empty());
    c.cut = false;
    link.set_config(c);
    link.send(bytes(500), at_us(2000));
    const auto out = drain(link);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].at, at_us(2000 + 4000 + 50'000));  // The queue was emptied by the cut.
}

// Gilbert-Elliott loss comes in bursts: mean run of consecutive losses far above Bernoulli's.
TEST(Link, BurstyLossProducesBursts) {
    LinkConfig bursty;
    bursty.burst_enter = 0.01;
    bursty.burst_exit = 0.2;  // Mean burst 5 datagrams.
    bursty.burst_loss = 1.0;
    double bursty_rate = 0;
    const double bursty_run = mean_loss_run(bursty, 200'000, &bursty_rate);

    LinkConfig bernoulli;
    bernoulli.loss = bursty_rate;  // Same average loss, independent drops.
    double bernoulli_rate = 0;
    const double bernoulli_run = mean_loss_run(bernoulli, 200'000, &bernoulli_rate);

    EXPECT_NEAR(bursty_rate, 0.01 / (0.01 + 0.2), 0.01);  // Stationary share of the bad state.
    EXPECT_NEAR(bernoulli_rate, bursty_rate, 0.005);
    EXPECT_NEAR(bursty_run, 5.0, 0.5);
    EXPECT_LT(bernoulli_run, 1.2);
}

// Every datagram is accounted for: sent + copies = delivered + dropped + in flight.
TEST(Link, StatsBalance) {
    LinkConfig c;
    c.delay = milliseconds(30);
    c.jitter = milliseconds(3);
    c.loss = 0.05;
    c.burst_enter = 0.001;
    c.dup = 0.05;
    c.rate_bps = 20'000'000;
    c.queue_packets = 50;
    c.mtu = 1300;
    Link link(c, 9);
    Delivered d;
    for (int i = 0; i < 50'000; ++i) {
        link.send(bytes(static_cast<std::size_t>(1000 + i % 400)), at_us(i * 300));
        if (i == 20'000 || i == 30'000) {
            c.cut = !c.cut;
            link.set_config(c);
        }
        while (link.pop_due(at_us(i * 300), d)) {
        }
        const auto& s = link.stats();
        ASSERT_EQ(s.sent + s.duplicated, s.delivered + dropped(s) + link.in_flight());
    }
    const auto& s = link.stats();
    EXPECT_GT(s.dropped_loss, 0u);
    EXPECT_GT(s.dropped_queue, 0u);
    EXPECT_GT(s.dropped_mtu, 0u);
    EXPECT_GT(s.dropped_cut, 0u);
    EXPECT_GT(s.duplicated, 0u);
}

// Invalid probabilities are rejected at construction and by set_config (old config kept).
TEST(Link, RejectsInvalidConfig) {
    LinkConfig bad;
    bad.loss = 1.5;
    EXPECT_THROW(Link(bad, 1), std::invalid_argument);
    Link link(LinkConfig{}, 1);
    EXPECT_THROW(link.set_config(bad), std::invalid_argument);
    EXPECT_EQ(link.config().loss, 0.0);
}

// ---- Network -----------------------------------------------------------------------------------

LinkConfig lossy_path() {
    LinkConfig c;
    c.delay = milliseconds(25);
    c.jitter = milliseconds(4);
    c.loss = 0.03;
    c.dup = 0.02;
    c.rate_bps = 50'000'000;
    c.queue_bytes = 64 * 1024;
    return c;
}

std::vector<std::string> traced_run(std::uint64_t seed) {
    Pacer a(2000, 1200, microseconds(150));
    Echo b;
    Network net(a, b, lossy_path(), lossy_path(), seed);
    std::vector<std::string> trace;
    net.set_trace([&trace](std::string_view line) { trace.emplace_back(line); });
    net.schedule(at_us(100'000), [&net] {
        LinkConfig c = net.link_ab().config();
        c.mtu = 1000;
        net.link_ab().set_config(c);
    });
    net.run_for(seconds(1));
    return trace;
}

// The same seed replays the exact same event trace; a different seed gives a different one.
TEST(Network, SeedDeterminesTrace) {
    const auto t1 = traced_run(42);
    const auto t2 = traced_run(42);
    const auto t3 = traced_run(43);
    ASSERT_GT(t1.size(), 4000u);
    EXPECT_EQ(t1, t2);
    EXPECT_NE(t1, t3);
}

// Echoed datagrams come back one round trip later; run_until returns true once done().
TEST(Network, EchoRoundTripAndDone) {
    Pacer a(100, 200, milliseconds(1));
    Echo b;
    LinkConfig c;
    c.delay = milliseconds(10);
    Network net(a, b, c, c, 1);
    EXPECT_TRUE(net.run_until([&] { return a.received.size() == 100; }, kT0 + seconds(5)));
    EXPECT_EQ(net.now(), at_us(99'000 + 20'000));
    for (std::size_t i = 0; i < a.received.size(); ++i) {
        EXPECT_EQ(a.received[i].seq, i);
        EXPECT_EQ(a.received[i].at, at_us(static_cast<std::int64_t>(i) * 1000 + 20'000));
    }
    // The first send happens in run_until's initial flush, so 99 timeouts.
    EXPECT_EQ(net.events_processed(), 99u /*timeouts*/ + 200u /*deliveries*/);
}

// run_until returns false at the deadline (now() == deadline) when done() never holds,
// and also when nothing at all is pending.
TEST(Network, DeadlineReturnsFalse) {
    Pacer a(1'000'000, 100, milliseconds(1));
    Echo b(false);
    Network net(a, b, LinkConfig{}, LinkConfig{}, 1);
    EXPECT_FALSE(net.run_until([] { return false; }, kT0 + milliseconds(500)));
    EXPECT_EQ(net.now(), kT0 + milliseconds(500));
    EXPECT_EQ(b.received, 501u);  // Sends at 0..500 ms inclusive, zero delay.
    EXPECT_FALSE(net.stalled());

    Echo idle1(false);
    Echo idle2(false);
    Network quiet(idle1, idle2, LinkConfig{}, LinkConfig{}, 1);
    EXPECT_FALSE(quiet.run_until([] { return false; }, kT0 + seconds(3)));
    EXPECT_EQ(quiet.now(), kT0 + seconds(3));
}

// A timer stuck in the past is detected as a stall with a diagnostic, instead of spinning.
TEST(Network, StuckTimerIsReportedAsStall) {
    StuckTimer a;
    Echo b;
    Network net(a, b, LinkConfig{}, LinkConfig{}, 1);
    EXPECT_FALSE(net.run_until([] { return false; }, kT0 + seconds(1)));
    EXPECT_TRUE(net.stalled());
    EXPECT_EQ(a.fired, Network::kDefaultStallLimit);
    EXPECT_NE(net.stall_reason().find("endpoint a's next_timeout()"), std::string::npos)
        << net.stall_reason();
    EXPECT_FALSE(net.run_until([] { return true; }, kT0 + seconds(1)));
}

// Scheduled actions run at their time: lowering the MTU mid-transfer black-holes big datagrams
// sent afterwards, and cut/restore drops exactly what is sent (or in flight) meanwhile.
TEST(Network, ScheduledActionsChangeLinks) {
    Pacer a(1000, 1200, milliseconds(1));
    Echo b(false);
    LinkConfig c;
    c.delay = milliseconds(5);
    Network net(a, b, c, c, 1);
    net.schedule(at_us(300'000), [&net] {
        LinkConfig l = net.link_ab().config();
        l.mtu = 1000;
        net.link_ab().set_config(l);
    });
    net.schedule(at_us(600'000), [&net] {
        LinkConfig l = net.link_ab().config();
        l.mtu = 0;
        net.link_ab().set_config(l);
    });
    net.schedule(at_us(602'500), [&net] {
        LinkConfig l = net.link_ab().config();
        l.cut = true;
        net.link_ab().set_config(l);
    });
    net.schedule(at_us(700'000), [&net] {
        LinkConfig l = net.link_ab().config();
        l.cut = false;
        net.link_ab().set_config(l);
    });
    EXPECT_TRUE(net.run_for(seconds(2)));
    const auto& s = net.link_ab().stats();
    EXPECT_EQ(s.dropped_mtu, 300u);  // Sent at 300..599 ms.
    // Sent at 600..602 ms (in flight at the cut) and 603..699 ms (on the cut link).
    EXPECT_EQ(s.dropped_cut, 100u);
    EXPECT_EQ(b.received, 600u);  // Sent at 0..299 and 700..999 ms.
}

// rebind() gives the rebound side's later datagrams a new path id; in-flight ones keep the old.
TEST(Network, RebindChangesPathId) {
    Pacer a(100, 100, milliseconds(1));
    Echo b(false);
    LinkConfig c;
    c.delay = milliseconds(10);
    Network net(a, b, c, c, 1);
    net.schedule(at_us(49'500), [&net] { net.rebind(Side::kA); });
    EXPECT_TRUE(net.run_for(seconds(1)));
    EXPECT_EQ(net.path(Side::kA), 1u);
    EXPECT_EQ(net.path(Side::kB), 0u);
    EXPECT_EQ(b.per_path[0], 50u);  // Sent at 0..49 ms.
    EXPECT_EQ(b.per_path[1], 50u);
}

// 500k datagrams through a lossy, jittery, rate-limited path (plus the echoes) all arrive and the
// link statistics balance; the wall time is printed (speed is a benchmark's job, not asserted).
TEST(Network, HalfMillionDatagramsAreFast) {
    constexpr std::uint64_t kN = 500'000;
    Pacer a(kN, 1200, microseconds(10));
    Echo b;
    LinkConfig c;
    c.delay = milliseconds(20);
    c.jitter = milliseconds(1);
    c.loss = 0.01;
    c.dup = 0.01;
    c.rate_bps = 1'000'000'000;  // 1200 bytes = 9.6 us.
    Network net(a, b, c, c, 99);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(net.run_for(seconds(10)));
    const auto wall = std::chrono::steady_clock::now() - start;
    const double ms = std::chrono::duration<double, std::milli>(wall).count();
    EXPECT_EQ(a.sent(), kN);
    const auto& ab = net.link_ab().stats();
    const auto& ba = net.link_ba().stats();
    EXPECT_EQ(ab.sent + ab.duplicated, ab.delivered + dropped(ab));
    EXPECT_EQ(ba.sent, ab.delivered);
    std::printf("[ perf ] %llu datagrams a->b, %llu b->a, %llu events: %.1f ms wall\n",
                static_cast<unsigned long long>(ab.sent), static_cast<unsigned long long>(ba.sent),
                static_cast<unsigned long long>(net.events_processed()), ms);
}

}  // namespace
}  // namespace hopgate::sim
