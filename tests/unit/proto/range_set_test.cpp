// Unit tests of RangeSet (proto/range_set.hpp): fixed cases and a seeded differential test
// against std::set<uint64_t>.
#include "proto/range_set.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace hopgate::proto {
namespace {

// Checks the representation invariant: sorted, non-empty, disjoint and non-adjacent ranges.
void expect_canonical(const RangeSet& rs) {
    const auto& r = rs.ranges();
    for (std::size_t i = 0; i < r.size(); ++i) {
        ASSERT_LT(r[i].lo, r[i].hi) << "empty range at " << i;
        if (i > 0) {
            ASSERT_LT(r[i - 1].hi, r[i].lo) << "overlapping or adjacent ranges at " << i;
        }
    }
}

// The canonical range list of a reference set.
std::vector<Range> ranges_of(const std::set<std::uint64_t>& s) {
    std::vector<Range> out;
    for (const std::uint64_t v : s) {
        if (!out.empty() && out.back().hi == v) {
            ++out.back().hi;
        } else {
            out.push_back({v, v + 1});
        }
    }
    return out;
}

std::set<std::uint64_t> to_set(const RangeSet& rs) {
    std::set<std::uint64_t> s;
    for (const auto& r : rs.ranges()) {
        for (std::uint64_t v = r.lo; v < r.hi; ++v) {
            s.insert(v);
        }
    }
    return s;
}

// Pins add() return values (newly covered count) and coalescing of touching ranges.
TEST(RangeSet, AddCountsAndCoalesces) {
    RangeSet rs;
    EXPECT_EQ(rs.add(10, 20), 10u);
    EXPECT_EQ(rs.add(20, 25), 5u);  // adjacent: merges
    EXPECT_EQ(rs.count(), 1u);
    EXPECT_EQ(rs.add(0, 5), 5u);
    EXPECT_EQ(rs.count(), 2u);
    EXPECT_EQ(rs.add(3, 12), 5u);  // fills [5,10), bridges both
    EXPECT_EQ(rs.count(), 1u);
    EXPECT_EQ(rs.front(), (Range{0, 25}));
    EXPECT_EQ(rs.add(7, 7), 0u);  // empty
    EXPECT_EQ(rs.add(9, 3), 0u);  // inverted
    EXPECT_EQ(rs.add(0, 25), 0u);
}

// Pins remove() splitting a range, trimming both ends and erasing whole ranges.
TEST(RangeSet, RemoveSplitsAndTrims) {
    RangeSet rs;
    rs.add(0, 100);
    rs.remove(40, 60);
    EXPECT_EQ(rs.ranges(), (std::vector<Range>{{0, 40}, {60, 100}}));
    rs.remove(30, 70);
    EXPECT_EQ(rs.ranges(), (std::vector<Range>{{0, 30}, {70, 100}}));
    rs.remove(0, 30);
    EXPECT_EQ(rs.ranges(), (std::vector<Range>{{70, 100}}));
    rs.remove(90, 1000);
    EXPECT_EQ(rs.ranges(), (std::vector<Range>{{70, 90}}));
    rs.remove(0, ~0ULL);
    EXPECT_TRUE(rs.empty());
}

// Pins contains()/contains_all() at range edges (hi is exclusive).
TEST(RangeSet, ContainsEdges) {
    RangeSet rs;
    rs.add(10, 20);
    rs.add(30, 40);
    EXPECT_FALSE(rs.contains(9));
    EXPECT_TRUE(rs.contains(10));
    EXPECT_TRUE(rs.contains(19));
    EXPECT_FALSE(rs.contains(20));
    EXPECT_TRUE(rs.contains_all(10, 20));
    EXPECT_FALSE(rs.contains_all(10, 21));
    EXPECT_FALSE(rs.contains_all(15, 35));
    EXPECT_TRUE(rs.contains_all(5, 5));  // empty interval
    EXPECT_FALSE(rs.contains(~0ULL));
}

// Pins keep_highest() dropping the lowest ranges only.
TEST(RangeSet, KeepHighest) {
    RangeSet rs;
    for (std::uint64_t i = 0; i < 10; ++i) {
        rs.add(i * 10, i * 10 + 5);
    }
    rs.keep_highest(3);
    EXPECT_EQ(rs.ranges(), (std::vector<Range>{{70, 75}, {80, 85}, {90, 95}}));
    rs.keep_highest(5);
    EXPECT_EQ(rs.count(), 3u);
    rs.keep_highest(0);
    EXPECT_TRUE(rs.empty());
}

// Pins that values near 2^64 work (packet numbers and offsets use the whole range).
TEST(RangeSet, HighValues) {
    RangeSet rs;
    const std::uint64_t top = ~0ULL;
    EXPECT_EQ(rs.add(top - 10, top), 10u);
    EXPECT_TRUE(rs.contains(top - 1));
    rs.remove(top - 5, top);
    EXPECT_EQ(rs.back(), (Range{top - 10, top - 5}));
}

// Pins RangeSet semantics against std::set over thousands of random operations (seeded).
TEST(RangeSet, DifferentialAgainstStdSet) {
    for (std::uint32_t seed = 1; seed <= 4; ++seed) {
        SCOPED_TRACE(seed);
        std::mt19937_64 rng(seed);
        RangeSet rs;
        std::set<std::uint64_t> ref;
        // Small universe so operations overlap a lot; seed 4 favours in-order appends.
        const std::uint64_t universe = seed == 4 ? 4000 : 300;
        std::uint64_t cursor = 0;
        for (int op = 0; op < 3000; ++op) {
            const std::uint64_t kind = rng() % 100;
            std::uint64_t lo = rng() % universe;
            std::uint64_t hi = lo + rng() % 24;
            if (seed == 4 && kind < 50) {
                lo = cursor + rng() % 3;  // mostly contiguous, sometimes a gap
                hi = lo + 1 + rng() % 4;
                cursor = hi;
            }
            if (kind < 45) {
                std::uint64_t fresh = 0;
                for (std::uint64_t v = lo; v < hi; ++v) {
                    fresh += ref.insert(v).second ? 1 : 0;
                }
                ASSERT_EQ(rs.add(lo, hi), fresh) << "add " << lo << ".." << hi;
            } else if (kind < 70) {
                for (std::uint64_t v = lo; v < hi; ++v) {
                    ref.erase(v);
                }
                rs.remove(lo, hi);
            } else if (kind < 85) {
                ASSERT_EQ(rs.contains(lo), ref.count(lo) == 1) << "contains " << lo;
            } else if (kind < 98) {
                bool all = true;
                for (std::uint64_t v = lo; v < hi && all; ++v) {
                    all = ref.count(v) == 1;
                }
                ASSERT_EQ(rs.contains_all(lo, hi), all) << "contains_all " << lo << ".." << hi;
            } else {
                const std::size_t keep = rng() % 8;
                rs.keep_highest(keep);
                ref = to_set(rs);  // reference follows: check the kept ranges are the highest
                if (keep > 0 && !rs.empty()) {
                    ASSERT_LE(rs.count(), keep);
                }
            }
            expect_canonical(rs);
            ASSERT_EQ(rs.ranges(), ranges_of(ref)) << "after op " << op;
        }
    }
}

// Pins that keep_highest keeps exactly the n highest ranges of a random set.
TEST(RangeSet, KeepHighestDifferential) {
    std::mt19937_64 rng(7);
    for (int round = 0; round < 200; ++round) {
        RangeSet rs;
        for (int i = 0; i < 20; ++i) {
            const std::uint64_t lo = rng() % 1000;
            rs.add(lo, lo + 1 + rng() % 10);
        }
        const std::vector<Range> before = rs.ranges();
        const std::size_t keep = rng() % 25;
        rs.keep_highest(keep);
        const std::size_t expect = std::min(keep, before.size());
        ASSERT_EQ(rs.count(), expect);
        EXPECT_TRUE(std::equal(rs.ranges().begin(), rs.ranges().end(),
                               before.end() - static_cast<std::ptrdiff_t>(expect)));
    }
}

}  // namespace
}  // namespace hopgate::proto
