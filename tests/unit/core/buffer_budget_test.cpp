#include "core/buffer_budget.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <vector>

namespace hopgate::core {
namespace {

// Leases are counted while alive and returned on destruction; the limit is never exceeded.
TEST(BufferBudget, CountsLeasesAndRefusesPastTheLimit) {
    BufferBudget b(300);
    auto a = b.try_acquire(128);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->size(), 128u);
    EXPECT_EQ(a->bytes().size(), 128u);
    auto c = b.try_acquire(128);
    ASSERT_TRUE(c);
    EXPECT_EQ(b.in_use(), 256u);
    EXPECT_FALSE(b.try_acquire(128));
    EXPECT_EQ(b.refused(), 1u);
    EXPECT_EQ(b.in_use(), 256u);
    a.reset();
    EXPECT_EQ(b.in_use(), 128u);
    EXPECT_TRUE(b.try_acquire(128));  // temporary: returned at once
    EXPECT_EQ(b.in_use(), 128u);
    EXPECT_EQ(b.peak(), 256u);
}

// An exact fit is allowed; a zero-byte budget refuses everything but empty leases.
TEST(BufferBudget, ExactFitAndZeroLimit) {
    BufferBudget b(100);
    auto a = b.try_acquire(100);
    EXPECT_TRUE(a);
    EXPECT_FALSE(b.try_acquire(1));
    BufferBudget z(0);
    EXPECT_FALSE(z.try_acquire(1));
    EXPECT_TRUE(z.try_acquire(0));
}

// Moving a lease moves the accounting; move-assignment releases the overwritten lease.
TEST(BufferBudget, MoveTransfersOwnership) {
    BufferBudget b(1000);
    auto a = b.try_acquire(100);
    auto c = b.try_acquire(200);
    BufferBudget::Lease moved(std::move(*a));
    EXPECT_EQ(b.in_use(), 300u);
    moved = std::move(*c);  // the first 100 bytes go back
    EXPECT_EQ(b.in_use(), 200u);
    EXPECT_EQ(moved.size(), 200u);
    a.reset();
    c.reset();
    EXPECT_EQ(b.in_use(), 200u);
    moved = BufferBudget::Lease{};
    EXPECT_EQ(b.in_use(), 0u);
}

// Leases may outlive the budget object (sessions can outlive the front door).
TEST(BufferBudget, LeaseOutlivesBudget) {
    std::optional<BufferBudget::Lease> l;
    {
        BufferBudget b(64);
        l = b.try_acquire(64);
        ASSERT_TRUE(l);
    }
    l->bytes()[0] = 1;  // memory still valid
    l.reset();           // no crash: the shared state is still alive
}

// Many acquire/release cycles in random order never leak accounting.
TEST(BufferBudget, ChurnKeepsAccountingExact) {
    BufferBudget b(10 * 64);
    std::vector<BufferBudget::Lease> held;
    std::uint32_t seed = 12345;
    for (int i = 0; i < 10000; ++i) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 2 == 0 || held.empty()) {
            if (auto l = b.try_acquire(64)) {
                held.push_back(std::move(*l));
            }
        } else {
            held.erase(held.begin() + static_cast<long>((seed >> 8) % held.size()));
        }
        ASSERT_EQ(b.in_use(), held.size() * 64);
        ASSERT_LE(b.in_use(), b.limit());
    }
    held.clear();
    EXPECT_EQ(b.in_use(), 0u);
}

// A released block serves the next lease of the same size; other sizes get fresh memory; the
// kept blocks never exceed kSpareBytes and are not counted in in_use().
TEST(BufferBudget, ReleasedMemoryIsReusedWithinABound) {
    BufferBudget b(64 * 1024 * 1024);
    const std::uint8_t* first = nullptr;
    {
        auto l = b.try_acquire(1024);
        ASSERT_TRUE(l);
        first = l->bytes().data();
    }
    EXPECT_EQ(b.in_use(), 0u);
    auto again = b.try_acquire(1024);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->bytes().data(), first);
    auto other = b.try_acquire(2048);
    ASSERT_TRUE(other);
    EXPECT_NE(other->bytes().data(), first);
    // Release more than the bound: only kSpareBytes worth are kept, all of them reusable.
    constexpr std::size_t kBlock = 1024 * 1024;
    std::vector<BufferBudget::Lease> many;
    for (std::size_t i = 0; i < 2 * BufferBudget::kSpareBytes / kBlock; ++i) {
        many.push_back(std::move(*b.try_acquire(kBlock)));
    }
    std::vector<const std::uint8_t*> ptrs;
    for (auto& l : many) {
        ptrs.push_back(l.bytes().data());
    }
    many.clear();
    std::size_t reused = 0;
    for (std::size_t i = 0; i < 2 * BufferBudget::kSpareBytes / kBlock; ++i) {
        many.push_back(std::move(*b.try_acquire(kBlock)));
        if (std::find(ptrs.begin(), ptrs.end(), many.back().bytes().data()) != ptrs.end()) {
            ++reused;
        }
    }
    EXPECT_GE(reused, BufferBudget::kSpareBytes / kBlock);  // malloc may hand back the rest too
}

}  // namespace
}  // namespace hopgate::core
