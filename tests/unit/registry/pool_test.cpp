// The registry's connection pool: idle and lifetime limits (HOP_DB_MAX_IDLE_CONNS,
// HOP_DB_CONN_MAX_LIFETIME) on a fake connection type.
#include "registry/pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace hopgate::registry::detail {
namespace {

struct FakeConn {
    explicit FakeConn(std::atomic<int>& live) : live_(live) { ++live_; }
    ~FakeConn() { --live_; }
    std::atomic<int>& live_;
};

using Pool = ConnPool<FakeConn>;

Pool::Factory factory(std::atomic<int>& live, std::atomic<int>& made) {
    return [&live, &made]() -> core::Result<std::unique_ptr<FakeConn>> {
        ++made;
        return std::make_unique<FakeConn>(live);
    };
}

// Pins: of four connections returned at once, only max_idle stay open; the others close, and the
// pool still opens new ones up to max_open when asked.
TEST(ConnPool, KeepsAtMostMaxIdle) {
    std::atomic<int> live{0};
    std::atomic<int> made{0};
    Pool pool(4, factory(live, made), nullptr, /*max_idle=*/1);
    {
        std::vector<Pool::Lease> leases;
        for (int i = 0; i < 4; ++i) {
            auto l = pool.acquire(std::chrono::milliseconds(100));
            ASSERT_TRUE(l.ok());
            leases.push_back(std::move(*l));
        }
        EXPECT_EQ(live.load(), 4);
        EXPECT_EQ(pool.open_count(), 4u);
    }
    EXPECT_EQ(live.load(), 1) << "only one idle connection is kept";
    EXPECT_EQ(pool.open_count(), 1u);
    auto again = pool.acquire(std::chrono::milliseconds(100));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(made.load(), 4) << "the idle one is reused";
}

// Pins: a connection older than max_lifetime is closed when returned and is never handed out
// again; a fresh one replaces it. With no lifetime, the same connection is reused.
TEST(ConnPool, ClosesConnectionsPastTheirLifetime) {
    std::atomic<int> live{0};
    std::atomic<int> made{0};
    Pool pool(2, factory(live, made), nullptr, /*max_idle=*/2, std::chrono::seconds(1));
    { auto l = pool.acquire(std::chrono::milliseconds(100)); ASSERT_TRUE(l.ok()); }
    { auto l = pool.acquire(std::chrono::milliseconds(100)); ASSERT_TRUE(l.ok()); }
    EXPECT_EQ(made.load(), 1) << "young: reused";
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    { auto l = pool.acquire(std::chrono::milliseconds(100)); ASSERT_TRUE(l.ok()); }
    EXPECT_EQ(made.load(), 2) << "past its lifetime: replaced";
    EXPECT_EQ(live.load(), 1);
    EXPECT_EQ(pool.open_count(), 1u);

    std::atomic<int> live2{0};
    std::atomic<int> made2{0};
    Pool forever(2, factory(live2, made2), nullptr);
    for (int i = 0; i < 3; ++i) {
        auto l = forever.acquire(std::chrono::milliseconds(100));
        ASSERT_TRUE(l.ok());
    }
    EXPECT_EQ(made2.load(), 1);
}

// Pins: a discarded (broken) connection frees its slot; the count stays right.
TEST(ConnPool, DiscardFreesTheSlot) {
    std::atomic<int> live{0};
    std::atomic<int> made{0};
    Pool pool(1, factory(live, made), nullptr, 1, std::chrono::seconds(60));
    {
        auto l = pool.acquire(std::chrono::milliseconds(100));
        ASSERT_TRUE(l.ok());
        l->discard();
    }
    EXPECT_EQ(pool.open_count(), 0u);
    EXPECT_EQ(live.load(), 0);
    auto l = pool.acquire(std::chrono::milliseconds(100));
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(made.load(), 2);
}

}  // namespace
}  // namespace hopgate::registry::detail
