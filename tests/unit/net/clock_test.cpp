#include "net/clock.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>

namespace hopgate::net {
namespace {

using core::Instant;
using core::kInstantMax;
using namespace std::chrono_literals;

constexpr Instant at(std::int64_t ms) { return Instant(std::chrono::milliseconds(ms)); }

// The first deadline arms the timer; the same or a later one only records it.
TEST(LazyDeadline, LaterDeadlineDoesNotRearm) {
    LazyDeadline d;
    EXPECT_TRUE(d.want(at(10)));
    EXPECT_EQ(d.armed(), at(10));
    EXPECT_FALSE(d.want(at(10)));
    EXPECT_FALSE(d.want(at(25)));
    EXPECT_EQ(d.armed(), at(10));
    EXPECT_EQ(d.wanted(), at(25));
}

// An earlier deadline re-arms at once.
TEST(LazyDeadline, EarlierDeadlineRearms) {
    LazyDeadline d;
    EXPECT_TRUE(d.want(at(10)));
    EXPECT_TRUE(d.want(at(4)));
    EXPECT_EQ(d.armed(), at(4));
}

// Firing before the wanted deadline re-arms at it; firing at or after it is due.
TEST(LazyDeadline, EarlyFireRearmsAtWanted) {
    LazyDeadline d;
    ASSERT_TRUE(d.want(at(10)));
    ASSERT_FALSE(d.want(at(30)));
    EXPECT_EQ(d.on_fire(at(10)), LazyDeadline::Fire::kRearm);
    EXPECT_EQ(d.armed(), at(30));
    EXPECT_EQ(d.on_fire(at(30)), LazyDeadline::Fire::kDue);
    EXPECT_EQ(d.armed(), kInstantMax);
    // After a due fire nothing is armed: the next deadline, even a later one, arms.
    EXPECT_TRUE(d.want(at(50)));
}

// No deadline wanted: the armed timer is left alone and finds nothing to do when it fires.
TEST(LazyDeadline, NoDeadlineLeavesTimerIdle) {
    LazyDeadline d;
    EXPECT_FALSE(d.want(kInstantMax));
    ASSERT_TRUE(d.want(at(10)));
    EXPECT_FALSE(d.want(kInstantMax));
    EXPECT_EQ(d.on_fire(at(10)), LazyDeadline::Fire::kIdle);
    EXPECT_EQ(d.armed(), kInstantMax);
}

// reset() forgets everything (the OS timer was cancelled).
TEST(LazyDeadline, ResetForgets) {
    LazyDeadline d;
    ASSERT_TRUE(d.want(at(10)));
    d.reset();
    EXPECT_EQ(d.armed(), kInstantMax);
    EXPECT_TRUE(d.want(at(20)));
}

struct Owner {
    explicit Owner(boost::asio::io_context& io) : timer(io) {}
    LazyTimer timer;
    int fired = 0;
    Instant fired_at{};
    // The callback of the tests below: counts and records when it ran.
    static void record(Owner& s) {
        ++s.fired;
        s.fired_at = core::steady_now();
    }
};

// Deadlines that keep moving later cost one OS arm plus one re-arm per early fire, and the
// callback runs once, not before the last wanted deadline.
TEST(LazyTimer, FiresOnceAtTheLatestDeadline) {
    boost::asio::io_context io;
    auto o = std::make_shared<Owner>(io);
    const Instant start = core::steady_now();
    auto fire = &Owner::record;
    for (int i = 1; i <= 100; ++i) {
        o->timer.arm(start + std::chrono::microseconds(200 * i), o, fire);
    }
    io.run();
    EXPECT_EQ(o->fired, 1);
    EXPECT_GE(o->fired_at, start + 20ms);
    EXPECT_EQ(o->timer.arms(), 2u);
}

// An earlier deadline arms at once and fires at that deadline.
TEST(LazyTimer, EarlierDeadlineFiresEarly) {
    boost::asio::io_context io;
    auto o = std::make_shared<Owner>(io);
    const Instant start = core::steady_now();
    auto fire = &Owner::record;
    o->timer.arm(start + 10s, o, fire);
    o->timer.arm(start + 5ms, o, fire);
    io.run_for(2s);
    EXPECT_EQ(o->fired, 1);
    EXPECT_LT(o->fired_at, start + 1s);
}

// The owner gone means no call; cancel() means no call.
TEST(LazyTimer, OwnerGoneOrCancelledNoCall) {
    boost::asio::io_context io;
    int calls = 0;
    auto fire = [&calls](Owner&) { ++calls; };
    auto gone = std::make_shared<Owner>(io);
    gone->timer.arm(core::steady_now() + 1ms, gone, fire);
    auto cancelled = std::make_shared<Owner>(io);
    cancelled->timer.arm(core::steady_now() + 1ms, cancelled, fire);
    cancelled->timer.cancel();
    std::weak_ptr<Owner> weak = gone;
    gone.reset();
    EXPECT_TRUE(weak.expired());
    io.run_for(200ms);
    EXPECT_EQ(calls, 0);
}

// A callback may arm the timer again (the tunnel's flush after a timeout does).
TEST(LazyTimer, RearmFromCallback) {
    boost::asio::io_context io;
    auto o = std::make_shared<Owner>(io);
    std::function<void(Owner&)> fire;
    std::weak_ptr<Owner> weak = o;
    fire = [&fire, weak](Owner& s) {
        if (++s.fired < 3) {
            s.timer.arm(core::steady_now() + 1ms, weak.lock(), fire);
        }
    };
    o->timer.arm(core::steady_now() + 1ms, o, fire);
    io.run_for(2s);
    EXPECT_EQ(o->fired, 3);
}

}  // namespace
}  // namespace hopgate::net
