// Unit tests of the wire primitives (proto/wire.hpp): QUIC varints and bounded Reader/Writer.
#include "proto/wire.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace hopgate::proto {
namespace {

std::vector<std::uint8_t> encode(std::uint64_t v) {
    std::array<std::uint8_t, 8> buf{};
    Writer w(buf);
    EXPECT_TRUE(w.varint(v));
    return {buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(w.size())};
}

bool decode(const std::vector<std::uint8_t>& b, std::uint64_t& v, std::size_t& used) {
    Reader r(b);
    const bool ok = r.varint(v);
    used = r.position();
    return ok;
}

struct Golden {
    std::vector<std::uint8_t> bytes;
    std::uint64_t value;
};

// RFC 9000 Appendix A.1 sample varints.
const std::vector<Golden>& rfc_vectors() {
    static const std::vector<Golden> v = {
        {{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 151288809941952652ULL},
        {{0x9d, 0x7f, 0x3e, 0x7d}, 494878333ULL},
        {{0x7b, 0xbd}, 15293ULL},
        {{0x25}, 37ULL},
    };
    return v;
}

// Pins the RFC 9000 §A.1 examples in both directions.
TEST(Varint, RfcGoldenVectors) {
    for (const auto& g : rfc_vectors()) {
        EXPECT_EQ(encode(g.value), g.bytes) << g.value;
        std::uint64_t v = 0;
        std::size_t used = 0;
        ASSERT_TRUE(decode(g.bytes, v, used));
        EXPECT_EQ(v, g.value);
        EXPECT_EQ(used, g.bytes.size());
    }
}

// Pins that a non-minimal encoding (0x4025 = 37) decodes, as RFC 9000 §A.1 allows.
TEST(Varint, NonMinimalDecodes) {
    std::uint64_t v = 0;
    std::size_t used = 0;
    ASSERT_TRUE(decode({0x40, 0x25}, v, used));
    EXPECT_EQ(v, 37u);
    EXPECT_EQ(used, 2u);
    ASSERT_TRUE(decode({0x80, 0x00, 0x00, 0x25}, v, used));
    EXPECT_EQ(v, 37u);
    ASSERT_TRUE(decode({0xc0, 0, 0, 0, 0, 0, 0, 0x25}, v, used));
    EXPECT_EQ(v, 37u);
}

// Pins the size class of every length boundary and that each boundary value round-trips.
TEST(Varint, Boundaries) {
    struct B {
        std::uint64_t v;
        std::size_t size;
    };
    const B cases[] = {{0, 1},
                       {63, 1},
                       {64, 2},
                       {16383, 2},
                       {16384, 4},
                       {(1ULL << 30) - 1, 4},
                       {1ULL << 30, 8},
                       {kVarintMax, 8}};
    for (const auto& c : cases) {
        EXPECT_EQ(varint_size(c.v), c.size) << c.v;
        const auto bytes = encode(c.v);
        ASSERT_EQ(bytes.size(), c.size) << c.v;
        std::uint64_t v = 0;
        std::size_t used = 0;
        ASSERT_TRUE(decode(bytes, v, used));
        EXPECT_EQ(v, c.v);
        EXPECT_EQ(used, c.size);
    }
    EXPECT_EQ(encode(63), (std::vector<std::uint8_t>{0x3f}));
    EXPECT_EQ(encode(64), (std::vector<std::uint8_t>{0x40, 0x40}));
    EXPECT_EQ(encode(kVarintMax),
              (std::vector<std::uint8_t>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
}

// Pins that values of 2^62 and above are rejected by the Writer without writing anything.
TEST(Varint, WriterRejectsTooLarge) {
    for (const std::uint64_t v : {1ULL << 62, ~0ULL}) {
        std::array<std::uint8_t, 16> buf{};
        Writer w(buf);
        EXPECT_FALSE(w.varint(v));
        EXPECT_FALSE(w.ok());
        EXPECT_EQ(w.size(), 0u);
    }
}

// Pins that a varint that does not fit the remaining output fails and sets !ok().
TEST(Varint, WriterOutOfSpace) {
    std::array<std::uint8_t, 3> buf{};
    Writer w(buf);
    EXPECT_TRUE(w.varint(1));
    EXPECT_FALSE(w.varint(16384));  // needs 4 bytes, 2 left
    EXPECT_FALSE(w.ok());
    EXPECT_EQ(w.size(), 1u);
}

// Pins that every truncation of every encoding fails cleanly and leaves !ok() set.
TEST(Varint, TruncatedInputFails) {
    for (const auto& g : rfc_vectors()) {
        for (std::size_t n = 0; n < g.bytes.size(); ++n) {
            const std::vector<std::uint8_t> cut(g.bytes.begin(),
                                                g.bytes.begin() + static_cast<std::ptrdiff_t>(n));
            Reader r(cut);
            std::uint64_t v = 0;
            EXPECT_FALSE(r.varint(v)) << "len " << n;
            EXPECT_FALSE(r.ok());
            EXPECT_EQ(r.position(), 0u);
        }
    }
}

// Pins Reader bounds on bytes()/u8()/length_prefixed(), including the max_len limit.
TEST(Reader, BoundsAndLengthPrefixed) {
    const std::vector<std::uint8_t> in = {0x03, 'a', 'b', 'c', 0x05, 'x'};
    Reader r(in);
    std::string_view s;
    ASSERT_TRUE(r.length_prefixed(3, s));
    EXPECT_EQ(s, "abc");
    std::string_view t;
    EXPECT_FALSE(r.length_prefixed(10, t));  // declares 5, only 1 left
    EXPECT_FALSE(r.ok());

    Reader limited(in);
    EXPECT_FALSE(limited.length_prefixed(2, s));  // 3 > max_len 2

    Reader b(in);
    std::span<const std::uint8_t> view;
    EXPECT_FALSE(b.bytes(7, view));
    Reader c(std::span<const std::uint8_t>{});
    std::uint8_t u = 0;
    EXPECT_FALSE(c.u8(u));
    EXPECT_TRUE(c.empty());
}

// Pins Writer helpers: length_prefixed, zeros and bytes respect the span bound.
TEST(Writer, HelpersRespectBounds) {
    std::array<std::uint8_t, 6> buf{};
    Writer w(buf);
    EXPECT_TRUE(w.length_prefixed("abc"));
    EXPECT_TRUE(w.zeros(2));
    EXPECT_EQ(w.remaining(), 0u);
    EXPECT_FALSE(w.u8(1));
    const std::array<std::uint8_t, 6> expect = {0x03, 'a', 'b', 'c', 0, 0};
    EXPECT_EQ(buf, expect);
    Writer w2(buf);
    const std::array<std::uint8_t, 7> big{};
    EXPECT_FALSE(w2.bytes(big));
    EXPECT_EQ(w2.size(), 0u);
}

}  // namespace
}  // namespace hopgate::proto
