#include "core/result.hpp"

#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"
#include "core/random.hpp"

namespace hopgate::core {

// Result carries either a value or an error code, never both.
TEST(Result, ValueAndError) {
    Result<std::string> ok(std::string("x"));
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(*ok, "x");
    EXPECT_FALSE(ok.error());
    Result<int> bad(Errc::kParse);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error(), Errc::kParse);
    EXPECT_EQ(bad.error().message(), "parse error");
}

// The seeded generator replays exactly and is roughly uniform.
TEST(Random, SeededAndUniform) {
    Xoshiro256 a(42), b(42), c(43);
    EXPECT_EQ(a.next_u64(), b.next_u64());
    EXPECT_NE(a.next_u64(), c.next_u64());
    int hits = 0;
    for (int i = 0; i < 100000; ++i) {
        hits += a.chance(0.25) ? 1 : 0;
    }
    EXPECT_NEAR(hits / 100000.0, 0.25, 0.01);
    for (int i = 0; i < 1000; ++i) {
        EXPECT_LT(a.uniform(7), 7u);
    }
}

}  // namespace hopgate::core
