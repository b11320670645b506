// SendBuffer: the block list agrees with a flat reference model under random appends, views and
// releases, and frees what it no longer needs.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <vector>

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

// A recycled buffer (from any state, unacknowledged bytes included) is an empty buffer at offset
// 0 that stores and returns new bytes exactly, across the kept block and new ones.
TEST(SendBuffer, RecycledBufferBehavesAsNew) {
    core::Xoshiro256 rng(7);
    SendBuffer b;
    for (int round = 0; round < 50; ++round) {
        std::vector<std::uint8_t> data(rng.uniform(5000) + 1);
        for (auto& x : data) {
            x = static_cast<std::uint8_t>(rng.uniform(256));
        }
        b.append(data);
        b.release(b.base() + rng.uniform(data.size() + 1));
        b.recycle();
        ASSERT_EQ(b.base(), 0u);
        ASSERT_EQ(b.size(), 0u);
        ASSERT_EQ(b.contiguous(0), 0u);
        b.append(data);
        ASSERT_EQ(b.size(), data.size());
        std::uint64_t off = 0;
        while (off < data.size()) {
            const std::size_t c = b.contiguous(off);
            ASSERT_GT(c, 0u);
            const auto v = b.view(off, c);
            ASSERT_TRUE(std::equal(v.begin(), v.end(), data.begin() + static_cast<std::ptrdiff_t>(off)));
            off += c;
        }
        b.release(b.end());
    }
}

// A recycled receive buffer starts over at offset 0 with nothing readable.
TEST(RecvBuffer, RecycledBufferBehavesAsNew) {
    RecvBuffer r;
    const std::uint8_t abc[3] = {'a', 'b', 'c'};
    r.write(0, abc);
    r.write(10, abc);  // a gap: [3, 10) missing
    EXPECT_EQ(r.readable(), 3u);
    r.recycle();
    EXPECT_EQ(r.read_offset(), 0u);
    EXPECT_EQ(r.readable(), 0u);
    EXPECT_EQ(r.allocated(), 0u);
    EXPECT_EQ(r.write(0, abc), 3u);
    std::uint8_t out[8] = {};
    EXPECT_EQ(r.read(out), 3u);
    EXPECT_EQ(out[2], 'c');
    EXPECT_EQ(r.readable(), 0u);
}

}  // namespace
}  // namespace hopgate::proto
