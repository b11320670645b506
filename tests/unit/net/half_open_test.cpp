#include "net/half_open.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

namespace hopgate::net {
namespace {

using core::Instant;
using namespace std::chrono_literals;

constexpr Instant at(std::int64_t ms) { return Instant(std::chrono::milliseconds(ms)); }

sockaddr_storage v4(const char* ip, std::uint16_t port) {
    sockaddr_storage ss{};
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return ss;
}

sockaddr_storage v6(const char* ip, std::uint16_t port) {
    sockaddr_storage ss{};
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    return ss;
}

SourceKey src(const char* ip) { return source_key(v4(ip, 1)); }

HalfOpenLimits limits(std::size_t total, std::size_t per_source) {
    HalfOpenLimits l;
    l.max_total = total;
    l.max_per_source = per_source;
    return l;
}

// Ports do not matter; IPv4 counts per /32, IPv6 per /64, a v4-mapped address as its IPv4.
TEST(SourceKey, PrefixPerFamily) {
    EXPECT_EQ(source_key(v4("192.0.2.1", 1)), source_key(v4("192.0.2.1", 2)));
    EXPECT_NE(source_key(v4("192.0.2.1", 1)), source_key(v4("192.0.2.2", 1)));
    EXPECT_EQ(source_key(v6("2001:db8:1:2::1", 1)), source_key(v6("2001:db8:1:2:ffff::9", 7)));
    EXPECT_NE(source_key(v6("2001:db8:1:2::1", 1)), source_key(v6("2001:db8:1:3::1", 1)));
    EXPECT_EQ(source_key(v6("::ffff:192.0.2.1", 1)), source_key(v4("192.0.2.1", 9)));
    EXPECT_NE(source_key(v6("::ffff:192.0.2.1", 1)), source_key(v6("::ffff:192.0.2.2", 1)));
}

// A source at its cap with only young sessions is refused; other sources are not affected.
TEST(HalfOpenTable, PerSourceCapRefusesYoungNewcomer) {
    HalfOpenTable t(limits(100, 3));
    for (std::uint64_t i = 1; i <= 3; ++i) {
        auto a = t.admit(src("10.0.0.1"), at(0));
        ASSERT_EQ(a.verdict, HalfOpenTable::Verdict::kAdmit);
        EXPECT_TRUE(a.evict.empty());
        t.add(i, src("10.0.0.1"), at(0));
    }
    auto a = t.admit(src("10.0.0.1"), at(500));
    EXPECT_EQ(a.verdict, HalfOpenTable::Verdict::kRefuseSource);
    EXPECT_TRUE(a.evict.empty());
    EXPECT_EQ(t.admit(src("10.0.0.2"), at(500)).verdict, HalfOpenTable::Verdict::kAdmit);
    EXPECT_EQ(t.of_source(src("10.0.0.1")), 3u);
    EXPECT_EQ(t.stats().refused_source, 1u);
}

// At the cap, the source's oldest session makes room once it is over same_source_min_age.
TEST(HalfOpenTable, PerSourceCapEvictsOldestOfThatSource) {
    HalfOpenTable t(limits(100, 2));
    t.add(1, src("10.0.0.9"), at(0));  // another source, older still: untouched
    t.add(2, src("10.0.0.1"), at(100));
    t.add(3, src("10.0.0.1"), at(200));
    auto a = t.admit(src("10.0.0.1"), at(1500));
    ASSERT_EQ(a.verdict, HalfOpenTable::Verdict::kAdmit);
    ASSERT_EQ(a.evict.size(), 1u);
    EXPECT_EQ(a.evict[0], 2u);
    EXPECT_EQ(t.stats().evicted_same_source, 1u);
}

// From half full on, sessions older than pressure_age go, oldest first, down to below half.
TEST(HalfOpenTable, PressureEvictsOldSessionsOldestFirst) {
    HalfOpenTable t(limits(8, 8));
    for (std::uint64_t i = 0; i < 6; ++i) {
        t.add(i, src("10.0.0.1"), at(static_cast<std::int64_t>(i) * 1000));  // 0 s .. 5 s
    }
    // At 6 s: sessions started at 0..3 s are >= 2 s old. 6 of 8 used, half is 4: evict until 3
    // remain -> ids 0, 1, 2.
    auto a = t.admit(src("10.0.0.2"), at(6000));
    ASSERT_EQ(a.verdict, HalfOpenTable::Verdict::kAdmit);
    EXPECT_EQ(a.evict, (std::vector<std::uint64_t>{0, 1, 2}));
    EXPECT_EQ(t.stats().evicted_pressure, 3u);
}

// Below half full nothing is evicted, however old.
TEST(HalfOpenTable, NoPressureBelowHalf) {
    HalfOpenTable t(limits(8, 8));
    t.add(1, src("10.0.0.1"), at(0));
    t.add(2, src("10.0.0.1"), at(0));
    auto a = t.admit(src("10.0.0.2"), at(60000));
    EXPECT_EQ(a.verdict, HalfOpenTable::Verdict::kAdmit);
    EXPECT_TRUE(a.evict.empty());
}

// Full of young sessions: the newcomer is refused and nothing is evicted.
TEST(HalfOpenTable, FullOfYoungSessionsRefuses) {
    HalfOpenTable t(limits(4, 4));
    for (std::uint64_t i = 0; i < 4; ++i) {
        t.add(i, src(i < 2 ? "10.0.0.1" : "10.0.0.2"), at(0));
    }
    auto a = t.admit(src("10.0.0.3"), at(1000));
    EXPECT_EQ(a.verdict, HalfOpenTable::Verdict::kRefuseFull);
    EXPECT_TRUE(a.evict.empty());
    EXPECT_EQ(t.stats().refused_full, 1u);
    // Two seconds later they are old enough to give way.
    a = t.admit(src("10.0.0.3"), at(2000));
    EXPECT_EQ(a.verdict, HalfOpenTable::Verdict::kAdmit);
    EXPECT_FALSE(a.evict.empty());
}

// remove() keeps the per-source counts and the size right; unknown ids are ignored.
TEST(HalfOpenTable, RemoveUpdatesCounts) {
    HalfOpenTable t(limits(10, 2));
    t.add(1, src("10.0.0.1"), at(0));
    t.add(2, src("10.0.0.1"), at(0));
    t.add(2, src("10.0.0.1"), at(0));  // duplicate id: ignored
    EXPECT_EQ(t.size(), 2u);
    t.remove(1);
    t.remove(99);
    EXPECT_EQ(t.size(), 1u);
    EXPECT_EQ(t.of_source(src("10.0.0.1")), 1u);
    EXPECT_EQ(t.admit(src("10.0.0.1"), at(0)).verdict, HalfOpenTable::Verdict::kAdmit);
    t.remove(2);
    EXPECT_EQ(t.of_source(src("10.0.0.1")), 0u);
    EXPECT_EQ(t.size(), 0u);
}

// The flood of item 14.7: 1100 ports of one address never hold more than the per-source cap,
// and another source is still admitted at once.
TEST(HalfOpenTable, OneHostCannotFillTheTable) {
    HalfOpenTable t(limits(1024, 16));
    std::uint64_t id = 0;
    for (int i = 0; i < 1100; ++i) {
        auto a = t.admit(src("127.0.0.2"), at(i));
        if (a.verdict == HalfOpenTable::Verdict::kAdmit) {
            for (auto e : a.evict) {
                t.remove(e);
            }
            t.add(++id, src("127.0.0.2"), at(i));
        }
    }
    EXPECT_EQ(t.size(), 16u);
    EXPECT_EQ(t.admit(src("127.0.0.1"), at(1100)).verdict, HalfOpenTable::Verdict::kAdmit);
}

}  // namespace
}  // namespace hopgate::net
