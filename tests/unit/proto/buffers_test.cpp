// SendBuffer: the block list agrees with a flat reference model under random appends, views and
// releases, and frees what it no longer needs.
#include <gtest/gtest.h>

#include <deque>

#include "core/random.hpp"
#include "proto/buffers.hpp"

namespace hopgate::proto {
namespace {

TEST(SendBuffer, MatchesFlatModelUnderRandomUse) {
    core::Xoshiro256 rng(42);
    for (int round = 0; round < 8; ++round) {
        SendBuffer b;
        std::deque<std::uint8_t> model;  // bytes [base, end)
        std::uint64_t base = 0;
        std::uint64_t next_byte = 0;
        for (int step = 0; step < 2000; ++step) {
            const auto op = rng.uniform(3);
            if (op == 0) {
                std::vector<std::uint8_t> data(rng.uniform(70000));
                for (auto& x : data) {
                    x = static_cast<std::uint8_t>(next_byte++ * 7 + 3);
                }
                b.append(data);
                model.insert(model.end(), data.begin(), data.end());
            } else if (op == 1 && !model.empty()) {
                const std::uint64_t upto = base + rng.uniform(model.size() + 1);
                b.release(upto);
                model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(upto - base));
                base = upto;
            } else if (!model.empty()) {
                const std::uint64_t off = base + rng.uniform(model.size());
                const std::size_t c = b.contiguous(off);
                ASSERT_GT(c, 0u);
                ASSERT_LE(c, base + model.size() - off);
                ASSERT_LE(c, SendBuffer::kMaxBlock);
                const auto v = b.view(off, c);
                for (std::size_t i = 0; i < c; ++i) {
                    ASSERT_EQ(v[i], model[static_cast<std::size_t>(off - base) + i]);
                }
            }
            ASSERT_EQ(b.base(), base);
            ASSERT_EQ(b.size(), model.size());
            ASSERT_EQ(b.contiguous(b.end()), 0u);
        }
    }
}

TEST(SendBuffer, SmallWritesUseSmallBlocksAndDiscardResets) {
    SendBuffer b;
    const std::uint8_t hello[5] = {'h', 'e', 'l', 'l', 'o'};
    b.append(hello);
    EXPECT_EQ(b.contiguous(0), 5u);
    b.release(5);
    EXPECT_EQ(b.size(), 0u);
    b.append(hello);
    EXPECT_EQ(b.base(), 5u);
    EXPECT_EQ(b.view(5, 5)[4], 'o');
    b.discard(100);
    EXPECT_EQ(b.base(), 100u);
    EXPECT_EQ(b.size(), 0u);
    b.append(hello);
    EXPECT_EQ(b.view(102, 3)[0], 'l');
}

}  // namespace
}  // namespace hopgate::proto
