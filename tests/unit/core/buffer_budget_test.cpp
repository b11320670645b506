#include "core/buffer_budget.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

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

using Owner = BufferBudget::Owner;
using Refusal = BufferBudget::Refusal;
constexpr std::size_t kLease = 128;

// One source may hold at most its share; other sources (same domain) are not affected.
TEST(BufferBudgetShares, SourceShareRefusesOnlyThatSource) {
    BufferBudget b(16 * kLease, {.per_domain = BufferBudget::kUnlimited, .per_source = 4 * kLease});
    std::vector<BufferBudget::Lease> hostile;
    for (int i = 0; i < 4; ++i) {
        auto l = b.try_acquire(kLease, Owner{"app.example", "src-a"});
        ASSERT_TRUE(l) << i;
        hostile.push_back(std::move(*l));
    }
    EXPECT_FALSE(b.try_acquire(kLease, Owner{"app.example", "src-a"}));
    EXPECT_EQ(b.last_refusal(), Refusal::kSource);
    EXPECT_FALSE(b.try_acquire(kLease, Owner{"other.example", "src-a"}));  // whatever domain
    EXPECT_EQ(b.refused(Refusal::kSource), 2u);
    EXPECT_EQ(b.held_by_source("src-a"), 4 * kLease);
    auto other = b.try_acquire(kLease, Owner{"app.example", "src-b"});
    ASSERT_TRUE(other);
    EXPECT_EQ(b.held_by_domain("app.example"), 5 * kLease);
    hostile.pop_back();  // a released lease makes room for one more
    EXPECT_TRUE(b.try_acquire(kLease, Owner{"app.example", "src-a"}));
    EXPECT_EQ(b.refused(), 2u);
}

// One domain may hold at most its share, whichever sources ask; other domains still get leases.
TEST(BufferBudgetShares, DomainShareLeavesRoomForOtherDomains) {
    BufferBudget b(16 * kLease, {.per_domain = 8 * kLease, .per_source = 4 * kLease});
    std::vector<BufferBudget::Lease> held;
    const char* sources[] = {"s1", "s2", "s3", "s4"};
    int granted = 0;
    for (const char* src : sources) {
        for (int i = 0; i < 4; ++i) {
            if (auto l = b.try_acquire(kLease, Owner{"attacked.example", src})) {
                held.push_back(std::move(*l));
                ++granted;
            }
        }
    }
    EXPECT_EQ(granted, 8);
    EXPECT_EQ(b.refused(Refusal::kDomain), 8u);
    EXPECT_EQ(b.held_by_domain("attacked.example"), 8 * kLease);
    for (int i = 0; i < 4; ++i) {
        auto l = b.try_acquire(kLease, Owner{"quiet.example", "s1"});
        EXPECT_FALSE(l) << "s1 already holds its share on the other domain";
    }
    EXPECT_EQ(b.last_refusal(), Refusal::kSource);
    auto l = b.try_acquire(kLease, Owner{"quiet.example", "s9"});
    ASSERT_TRUE(l);
    EXPECT_EQ(b.in_use(), 9 * kLease);
}

// Shares never let the total be exceeded; a refusal names the most specific reason that trips.
TEST(BufferBudgetShares, TotalStillBindsAndReasonIsMostSpecific) {
    BufferBudget b(4 * kLease, {.per_domain = 3 * kLease, .per_source = 2 * kLease});
    auto a1 = b.try_acquire(kLease, Owner{"d1", "s1"});
    auto a2 = b.try_acquire(kLease, Owner{"d1", "s2"});
    auto a3 = b.try_acquire(kLease, Owner{"d2", "s3"});
    auto a4 = b.try_acquire(kLease, Owner{"d2", "s4"});
    ASSERT_TRUE(a1 && a2 && a3 && a4);
    EXPECT_FALSE(b.try_acquire(kLease, Owner{"d3", "s5"}));
    EXPECT_EQ(b.last_refusal(), Refusal::kTotal);
    auto a5 = b.try_acquire(kLease, Owner{"d1", "s1"});  // both s1 (1 of 2) and d1 (2 of 3) fit
    EXPECT_FALSE(a5);
    EXPECT_EQ(b.last_refusal(), Refusal::kTotal);
    a4.reset();
    auto a6 = b.try_acquire(kLease, Owner{"d1", "s1"});
    ASSERT_TRUE(a6);
    EXPECT_FALSE(b.try_acquire(kLease, Owner{"d1", "s1"}));
    EXPECT_EQ(b.last_refusal(), Refusal::kSource);  // source, domain and total all spent
    EXPECT_EQ(b.refused(Refusal::kTotal), 2u);
    EXPECT_EQ(b.refused(Refusal::kSource), 1u);
    EXPECT_EQ(b.refused(), 3u);
}

// A key holding nothing may always take one lease, even when its share is below one lease; a
// second one is refused.
TEST(BufferBudgetShares, ShareSmallerThanOneLeaseStillAllowsOne) {
    BufferBudget b(10 * kLease, {.per_domain = kLease / 2, .per_source = kLease / 2});
    auto a = b.try_acquire(kLease, Owner{"d", "s"});
    ASSERT_TRUE(a);
    EXPECT_FALSE(b.try_acquire(kLease, Owner{"d", "t"}));
    EXPECT_EQ(b.last_refusal(), Refusal::kDomain);
    EXPECT_FALSE(b.try_acquire(kLease, Owner{"e", "s"}));
    EXPECT_EQ(b.last_refusal(), Refusal::kSource);
    EXPECT_TRUE(b.try_acquire(kLease, Owner{"e", "t"}));
}

// Empty keys and empty leases are counted against no share and make no account.
TEST(BufferBudgetShares, EmptyKeysAndEmptyLeasesAreNotAccounted) {
    BufferBudget b(4 * kLease, {.per_domain = kLease, .per_source = kLease});
    auto a = b.try_acquire(kLease, Owner{"", ""});
    auto c = b.try_acquire(kLease, Owner{"", ""});
    ASSERT_TRUE(a && c);
    EXPECT_EQ(b.domains(), 0u);
    EXPECT_EQ(b.sources(), 0u);
    auto z1 = b.try_acquire(0, Owner{"d", "s"});
    auto z2 = b.try_acquire(0, Owner{"d", "s"});
    ASSERT_TRUE(z1 && z2);
    EXPECT_EQ(b.domains(), 0u);
    z1.reset();
    z2.reset();
    auto d = b.try_acquire(kLease, Owner{"d", ""});
    ASSERT_TRUE(d);
    EXPECT_EQ(b.domains(), 1u);
    EXPECT_EQ(b.sources(), 0u);
    EXPECT_EQ(b.held_by_domain("d"), kLease);
}

// Moving a lease moves its share accounting; releasing the last lease of a key erases its account.
TEST(BufferBudgetShares, MovesCarryAccountsAndZeroAccountsAreErased) {
    BufferBudget b(8 * kLease, {.per_domain = 2 * kLease, .per_source = 2 * kLease});
    auto a = b.try_acquire(kLease, Owner{"d1", "s1"});
    auto c = b.try_acquire(kLease, Owner{"d2", "s2"});
    ASSERT_TRUE(a && c);
    BufferBudget::Lease moved(std::move(*a));
    a.reset();  // the moved-from lease gives nothing back
    EXPECT_EQ(b.held_by_domain("d1"), kLease);
    EXPECT_EQ(b.held_by_source("s1"), kLease);
    moved = std::move(*c);  // d1/s1 go back and their accounts disappear
    EXPECT_EQ(b.held_by_domain("d1"), 0u);
    EXPECT_EQ(b.domains(), 1u);
    EXPECT_EQ(b.sources(), 1u);
    c.reset();
    EXPECT_EQ(b.held_by_domain("d2"), kLease);
    moved = BufferBudget::Lease{};
    EXPECT_EQ(b.domains(), 0u);
    EXPECT_EQ(b.sources(), 0u);
    EXPECT_EQ(b.in_use(), 0u);
}

// Leases with accounts may outlive the budget object.
TEST(BufferBudgetShares, KeyedLeaseOutlivesBudget) {
    std::optional<BufferBudget::Lease> l;
    {
        BufferBudget b(kLease, {.per_domain = kLease, .per_source = kLease});
        l = b.try_acquire(kLease, Owner{"d", "s"});
        ASSERT_TRUE(l);
    }
    l.reset();
}

// Random churn over many keys: every share and the total hold after each step, per-key sums
// match the live leases exactly, and the accounts never outnumber the live leases.
TEST(BufferBudgetShares, ChurnKeepsSharesAndAccountsBounded) {
    constexpr std::size_t kPerDomain = 6 * kLease;
    constexpr std::size_t kPerSource = 3 * kLease;
    BufferBudget b(20 * kLease, {.per_domain = kPerDomain, .per_source = kPerSource});
    struct Held {
        std::string domain;
        std::string source;
        BufferBudget::Lease lease;
    };
    std::vector<Held> held;
    std::uint32_t seed = 777;
    auto next = [&seed] {
        seed = seed * 1103515245u + 12345u;
        return seed >> 16;
    };
    auto count = [&held](auto field, const std::string& key) {
        return static_cast<std::size_t>(std::count_if(
            held.begin(), held.end(), [&](const Held& h) { return h.*field == key; }));
    };
    for (int i = 0; i < 20000; ++i) {
        if (next() % 3 != 0 || held.empty()) {
            std::string d = "d" + std::to_string(next() % 5);
            std::string s = "s" + std::to_string(next() % 12);
            if (auto l = b.try_acquire(kLease, Owner{d, s})) {
                held.push_back({d, s, std::move(*l)});
            }
        } else {
            held.erase(held.begin() + static_cast<long>(next() % held.size()));
        }
        ASSERT_LE(b.in_use(), b.limit());
        ASSERT_EQ(b.in_use(), held.size() * kLease);
        ASSERT_LE(b.domains(), held.size());
        ASSERT_LE(b.sources(), held.size());
        if (i % 97 == 0) {
            for (int k = 0; k < 12; ++k) {
                const std::string s = "s" + std::to_string(k);
                ASSERT_EQ(b.held_by_source(s), count(&Held::source, s) * kLease);
                ASSERT_LE(b.held_by_source(s), kPerSource);
            }
            for (int k = 0; k < 5; ++k) {
                const std::string d = "d" + std::to_string(k);
                ASSERT_EQ(b.held_by_domain(d), count(&Held::domain, d) * kLease);
                ASSERT_LE(b.held_by_domain(d), kPerDomain);
            }
        }
    }
    held.clear();
    EXPECT_EQ(b.in_use(), 0u);
    EXPECT_EQ(b.domains(), 0u);
    EXPECT_EQ(b.sources(), 0u);
}

}  // namespace
}  // namespace hopgate::core
