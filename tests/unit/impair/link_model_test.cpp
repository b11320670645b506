#include "impair/link_model.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "impair/delay_queue.hpp"

namespace hopgate::impair {
namespace {

using namespace std::chrono_literals;
constexpr core::Instant kT0 = core::kInstantZero + 1s;

std::vector<Fate> fates(LinkModel& m, int n, core::Instant now = kT0) {
    std::vector<Fate> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(m.admit(100, now).fate);
    }
    return out;
}

// A default link delivers everything once, at once.
TEST(LinkModel, PerfectLinkDeliversImmediately) {
    LinkModel m(LinkParams{}, 1);
    for (int i = 0; i < 100; ++i) {
        const auto a = m.admit(1500, kT0);
        ASSERT_EQ(a.fate, Fate::kDeliver);
        ASSERT_EQ(a.copies, 1);
        ASSERT_EQ(a.release[0], kT0);
    }
}

// Same seed, same fates; the fate of the n-th datagram does not depend on its size or time.
TEST(LinkModel, SeededAndTimingIndependent) {
    LinkParams p;
    p.loss_pct = 30;
    p.dup_pct = 10;
    p.jitter = 5ms;
    LinkModel a(p, 9);
    LinkModel b(p, 9);
    LinkModel c(p, 10);
    std::vector<Admission> xs;
    for (int i = 0; i < 1000; ++i) {
        const auto x = a.admit(100, kT0);
        const auto y = b.admit(static_cast<std::size_t>(i), kT0 + std::chrono::milliseconds(i));
        ASSERT_EQ(x.fate, y.fate) << i;
        ASSERT_EQ(x.copies, y.copies) << i;
        if (x.fate == Fate::kDeliver) {
            ASSERT_EQ(x.release[0] - kT0, y.release[0] - (kT0 + std::chrono::milliseconds(i)));
        }
    }
    LinkModel a2(p, 9);
    EXPECT_NE(fates(a2, 200), fates(c, 200));
}

// Loss and dup rates match their percentages over many draws; fractional loss works.
TEST(LinkModel, RatesMatchPercentages) {
    LinkParams p;
    p.loss_pct = 0.5;
    p.dup_pct = 20;
    LinkModel m(p, 3);
    int lost = 0;
    int dups = 0;
    constexpr int kN = 200'000;
    for (int i = 0; i < kN; ++i) {
        const auto a = m.admit(10, kT0);
        lost += a.fate == Fate::kDropLoss ? 1 : 0;
        dups += a.copies == 2 ? 1 : 0;
    }
    EXPECT_NEAR(lost / double(kN), 0.005, 0.001);
    EXPECT_NEAR(dups / double(kN), 0.20 * 0.995, 0.01);
}

// Delay plus jitter stays in [delay, delay + jitter].
TEST(LinkModel, JitterBounded) {
    LinkParams p;
    p.delay = 10ms;
    p.jitter = 4ms;
    LinkModel m(p, 5);
    core::Duration lo = 1h;
    core::Duration hi{0};
    for (int i = 0; i < 10'000; ++i) {
        const auto a = m.admit(10, kT0);
        lo = std::min(lo, a.release[0] - kT0);
        hi = std::max(hi, a.release[0] - kT0);
    }
    EXPECT_GE(lo, 10ms);
    EXPECT_LE(hi, 14ms);
    EXPECT_LT(lo, 10ms + 100us);
    EXPECT_GT(hi, 14ms - 100us);
}

// The serializer spaces datagrams at the rate and tail-drops beyond the queue.
TEST(LinkModel, RateSerializesAndTailDrops) {
    LinkParams p;
    p.rate_mbit = 8;  // 1 byte per microsecond
    p.queue_bytes = 4000;
    LinkModel m(p, 1);
    auto a = m.admit(1000, kT0);
    EXPECT_EQ(a.release[0], kT0 + 1000us);
    a = m.admit(1000, kT0);
    EXPECT_EQ(a.release[0], kT0 + 2000us);
    EXPECT_EQ(m.backlog_bytes(kT0), 2000u);
    a = m.admit(1000, kT0);
    a = m.admit(1000, kT0);
    EXPECT_EQ(a.fate, Fate::kDeliver);  // backlog 3000 + 1000 fits 4000
    EXPECT_EQ(m.admit(1000, kT0).fate, Fate::kDropQueue);
    // Once drained, traffic flows again.
    EXPECT_EQ(m.backlog_bytes(kT0 + 4ms), 0u);
    EXPECT_EQ(m.admit(1000, kT0 + 4ms).release[0], kT0 + 5ms);
}

// A cut link drops everything; params are validated.
TEST(LinkModel, CutAndValidation) {
    LinkModel m(LinkParams{}, 1);
    m.set_cut(true);
    EXPECT_EQ(m.admit(10, kT0).fate, Fate::kDropCut);
    m.set_cut(false);
    EXPECT_EQ(m.admit(10, kT0).fate, Fate::kDeliver);
    LinkParams bad;
    bad.loss_pct = 101;
    EXPECT_THROW(m.set_params(bad), std::invalid_argument);
    bad = {};
    bad.rate_mbit = -1;
    EXPECT_THROW(LinkModel(bad, 1), std::invalid_argument);
}

// The delay queue pops by release time and keeps push order for equal times.
TEST(DelayQueue, OrdersByTimeThenFifo) {
    DelayQueue<int> q;
    EXPECT_EQ(q.next_release(), core::kInstantMax);
    q.push(kT0 + 5ms, 1);
    q.push(kT0 + 1ms, 2);
    q.push(kT0 + 5ms, 3);
    q.push(kT0 + 1ms, 4);
    q.push(kT0 + 3ms, 5);
    std::vector<int> out;
    while (!q.empty()) {
        out.push_back(q.pop());
    }
    EXPECT_EQ(out, (std::vector<int>{2, 4, 5, 1, 3}));
}

}  // namespace
}  // namespace hopgate::impair
