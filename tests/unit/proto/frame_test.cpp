// Unit tests of the frame codec (proto/frame.hpp): golden vectors, round trips, truncation at
// every byte, ACK range arithmetic, transport parameters and malformed input.
#include "proto/frame.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace hopgate::proto {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::span<const std::uint8_t> as_span(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

bool same(const Frame& a, const Frame& b) { return frames_equal(a, b); }

Bytes encode(const Frame& f) {
    Bytes buf(70000);
    Writer w(buf);
    EXPECT_TRUE(encode_frame(w, f));
    buf.resize(w.size());
    return buf;
}

// Default transport parameters as encoded by encode_transport_params.
Bytes default_params_bytes() {
    return {0x05, 0x01, 0x80, 0x00, 0x75, 0x30,  // idle 30000
            0x03, 0x80, 0x10, 0x00, 0x00,        // max_data 1 MiB
            0x04, 0x80, 0x04, 0x00, 0x00,        // max_stream_data 256 KiB
            0x05, 0x40, 0x64,                    // max_streams 100
            0x06, 0x19};                         // max_ack_delay 25
}

Bytes concat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

struct Golden {
    const char* name;
    Frame frame;
    Bytes bytes;
};

const std::string kPayload = "hi";
const std::array<std::uint8_t, 1024> kKiB{};

std::vector<Golden> goldens() {
    TransportParams tp;
    std::vector<Golden> g;
    g.push_back({"padding", PaddingFrame{3}, {0x00, 0x00, 0x00}});
    g.push_back({"ping", PingFrame{}, {0x01}});
    g.push_back({"ack",
                 AckFrame{100, {{8, 10}, {2, 5}}},
                 {0x02, 0x0a, 0x40, 0x64, 0x01, 0x02, 0x01, 0x03}});
    g.push_back({"ack_single", AckFrame{0, {{0, 0}}}, {0x02, 0x00, 0x00, 0x00, 0x00}});
    g.push_back({"reset_stream",
                 ResetStreamFrame{4, 0x42, 1000},
                 {0x04, 0x04, 0x40, 0x42, 0x43, 0xe8}});
    g.push_back({"stop_sending", StopSendingFrame{5, 7}, {0x05, 0x05, 0x07}});
    g.push_back({"stream",
                 StreamFrame{4, 0, false, as_span(kPayload)},
                 {0x0a, 0x04, 0x02, 'h', 'i'}});
    g.push_back({"stream_off_fin",
                 StreamFrame{4, 100, true, as_span(kPayload)},
                 {0x0f, 0x04, 0x40, 0x64, 0x02, 'h', 'i'}});
    g.push_back({"stream_fin_empty", StreamFrame{1, 0, true, {}}, {0x0b, 0x01, 0x00}});
    g.push_back({"max_data", MaxDataFrame{1 << 20}, {0x10, 0x80, 0x10, 0x00, 0x00}});
    g.push_back({"max_stream_data",
                 MaxStreamDataFrame{8, 65536},
                 {0x11, 0x08, 0x80, 0x01, 0x00, 0x00}});
    g.push_back({"max_streams", MaxStreamsFrame{100}, {0x12, 0x40, 0x64}});
    g.push_back({"data_blocked", DataBlockedFrame{63}, {0x14, 0x3f}});
    g.push_back({"stream_data_blocked",
                 StreamDataBlockedFrame{1, 64},
                 {0x15, 0x01, 0x40, 0x40}});
    g.push_back({"streams_blocked", StreamsBlockedFrame{0}, {0x16, 0x00}});
    g.push_back({"path_challenge",
                 PathChallengeFrame{0x0102030405060708ULL},
                 {0x1a, 1, 2, 3, 4, 5, 6, 7, 8}});
    g.push_back({"path_response",
                 PathResponseFrame{0xfffffffffffffffeULL},
                 {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}});
    g.push_back({"connection_close",
                 ConnectionCloseFrame{0x11, "bye"},
                 {0x1c, 0x11, 0x03, 'b', 'y', 'e'}});
    g.push_back({"auth",
                 AuthFrame{1, "a.io", "k", "v", tp},
                 concat({0x30, 0x01, 0x04, 'a', '.', 'i', 'o', 0x01, 'k', 0x01, 'v'},
                        default_params_bytes())});
    g.push_back({"auth_ok", AuthOkFrame{tp}, concat({0x31}, default_params_bytes())});
    g.push_back({"auth_fail", AuthFailFrame{2, "old"}, {0x32, 0x02, 0x03, 'o', 'l', 'd'}});
    return g;
}

// Pins the exact encoding of every frame type, and that decoding it gives the struct back.
TEST(Frame, GoldenVectors) {
    for (const auto& g : goldens()) {
        SCOPED_TRACE(g.name);
        EXPECT_EQ(encode(g.frame), g.bytes);
        Reader r(g.bytes);
        Frame out;
        ASSERT_TRUE(decode_frame(r, out));
        EXPECT_TRUE(r.empty());
        EXPECT_TRUE(same(out, g.frame));
    }
}

// Pins that every golden vector covers a distinct variant alternative (all 18 are tested).
TEST(Frame, GoldenCoversEveryType) {
    std::vector<bool> seen(std::variant_size_v<Frame>, false);
    for (const auto& g : goldens()) {
        seen[g.frame.index()] = true;
    }
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
}

// Pins encode→decode→encode identity for frames at field extremes.
TEST(Frame, RoundTripExtremes) {
    const std::string reason(kMaxReasonLen, 'r');
    const std::string domain(kMaxDomainLen, 'd');
    const std::string key(kMaxApiKeyLen, 'k');
    const std::string ver(kMaxClientVersionLen, 'v');
    TransportParams tp{0, kVarintMax, kVarintMax, kVarintMax, (1u << 14) - 1};
    std::vector<AckRange> many;
    std::uint64_t hi = 10'000'000;
    for (std::size_t i = 0; i < kMaxAckRanges; ++i) {
        many.push_back({hi - i % 5, hi});
        hi = hi - i % 5 - 2 - i % 3;
    }
    const std::vector<Frame> frames = {
        PaddingFrame{1},
        AckFrame{kVarintMax, {{0, kVarintMax}}},
        AckFrame{5, many},
        ResetStreamFrame{kVarintMax, kVarintMax, kVarintMax},
        StopSendingFrame{kVarintMax, 0},
        StreamFrame{kVarintMax, kVarintMax - kKiB.size(), true, kKiB},
        StreamFrame{0, 0, false, kKiB},
        MaxDataFrame{kVarintMax},
        MaxStreamDataFrame{kVarintMax, kVarintMax},
        MaxStreamsFrame{kVarintMax},
        DataBlockedFrame{kVarintMax},
        StreamDataBlockedFrame{kVarintMax, kVarintMax},
        StreamsBlockedFrame{kVarintMax},
        PathChallengeFrame{0},
        PathResponseFrame{~0ULL},
        ConnectionCloseFrame{kVarintMax, reason},
        ConnectionCloseFrame{0, ""},
        AuthFrame{kVarintMax, domain, key, ver, tp},
        AuthOkFrame{tp},
        AuthFailFrame{kVarintMax, reason},
    };
    for (const auto& f : frames) {
        SCOPED_TRACE(f.index());
        const Bytes b = encode(f);
        Reader r(b);
        Frame out;
        ASSERT_TRUE(decode_frame(r, out));
        EXPECT_TRUE(r.empty());
        EXPECT_TRUE(same(out, f));
        EXPECT_EQ(encode(out), b);
    }
}

// Pins that a decode of any proper prefix fails cleanly (PADDING: a shorter run is valid).
TEST(Frame, TruncatedAtEveryByte) {
    auto g = goldens();
    // Add long frames so multi-byte fields are cut in the middle too.
    const std::string reason(300, 'x');
    g.push_back({"close_long", ConnectionCloseFrame{0x1234, reason}, {}});
    g.push_back({"stream_kib", StreamFrame{99, 70000, false, kKiB}, {}});
    for (auto& v : g) {
        if (v.bytes.empty()) {
            v.bytes = encode(v.frame);
        }
        SCOPED_TRACE(v.name);
        for (std::size_t n = 0; n < v.bytes.size(); ++n) {
            const Bytes cut(v.bytes.begin(), v.bytes.begin() + static_cast<std::ptrdiff_t>(n));
            Reader r(cut);
            Frame out;
            const bool ok = decode_frame(r, out);
            if (std::holds_alternative<PaddingFrame>(v.frame) && n > 0) {
                ASSERT_TRUE(ok);
                EXPECT_EQ(std::get<PaddingFrame>(out).length, n);
            } else {
                EXPECT_FALSE(ok) << "prefix of " << n << " bytes decoded";
            }
        }
    }
}

// Pins that a run of zero bytes coalesces into one PADDING frame and stops at the next frame.
TEST(Frame, PaddingCoalesces) {
    const Bytes b = {0, 0, 0, 0, 0x01};
    Reader r(b);
    Frame out;
    ASSERT_TRUE(decode_frame(r, out));
    EXPECT_EQ(std::get<PaddingFrame>(out).length, 4u);
    ASSERT_TRUE(decode_frame(r, out));
    EXPECT_TRUE(std::holds_alternative<PingFrame>(out));
    EXPECT_TRUE(r.empty());
}

// Pins RFC 9000 §19.3.1 gap arithmetic: gap 0 means one missing packet between ranges.
TEST(FrameAck, GapMath) {
    // largest=100 first_len=0 | gap=0 len=0 -> 98 | gap=1 len=2 -> [93, 95]
    const Bytes b = {0x02, 0x40, 0x64, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x02};
    Reader r(b);
    Frame out;
    ASSERT_TRUE(decode_frame(r, out));
    const auto& a = std::get<AckFrame>(out);
    const std::vector<AckRange> expect = {{100, 100}, {98, 98}, {93, 95}};
    EXPECT_EQ(a.ranges, expect);
    EXPECT_EQ(encode(out), b);
}

// Pins that a gap reaching exactly packet 0 is valid and one more underflows.
TEST(FrameAck, GapToZeroAndUnderflow) {
    // largest=10 first_len=2 -> smallest 8; gap=6 -> hi = 8-6-2 = 0, len=0.
    {
        const Bytes b = {0x02, 0x0a, 0x00, 0x01, 0x02, 0x06, 0x00};
        Reader r(b);
        Frame out;
        ASSERT_TRUE(decode_frame(r, out));
        const std::vector<AckRange> expect = {{8, 10}, {0, 0}};
        EXPECT_EQ(std::get<AckFrame>(out).ranges, expect);
    }
    // gap=7 -> 8 - 7 - 2 underflows.
    {
        const Bytes b = {0x02, 0x0a, 0x00, 0x01, 0x02, 0x07, 0x00};
        Reader r(b);
        Frame out;
        EXPECT_FALSE(decode_frame(r, out));
    }
    // Huge gap: must not wrap around.
    {
        const Bytes b = {0x02, 0x0a, 0x00, 0x01, 0x02, 0xff, 0xff, 0xff, 0xff,
                         0xff, 0xff, 0xff, 0xff, 0x00};
        Reader r(b);
        Frame out;
        EXPECT_FALSE(decode_frame(r, out));
    }
    // gap=5 -> hi=1, len=2 would go below zero.
    {
        const Bytes b = {0x02, 0x0a, 0x00, 0x01, 0x02, 0x05, 0x02};
        Reader r(b);
        Frame out;
        EXPECT_FALSE(decode_frame(r, out));
    }
}

// Pins that a first range longer than the largest acknowledged is rejected.
TEST(FrameAck, FirstRangeAboveLargest) {
    const Bytes bad = {0x02, 0x05, 0x00, 0x00, 0x06};
    Reader r(bad);
    Frame out;
    EXPECT_FALSE(decode_frame(r, out));
    const Bytes edge = {0x02, 0x05, 0x00, 0x00, 0x05};  // [0, 5] is fine
    Reader r2(edge);
    ASSERT_TRUE(decode_frame(r2, out));
    EXPECT_EQ(std::get<AckFrame>(out).ranges, (std::vector<AckRange>{{0, 5}}));
}

// Pins the range-count limit: kMaxAckRanges ranges decode, one more (or a huge count) fails.
TEST(FrameAck, TooManyRanges) {
    auto build = [](std::uint64_t extra) {
        Bytes b(8 + 2 * extra + 16);
        Writer w(b);
        EXPECT_TRUE(w.varint(0x02) && w.varint(100000) && w.varint(0) && w.varint(extra) &&
                    w.varint(0));
        for (std::uint64_t i = 0; i < extra; ++i) {
            EXPECT_TRUE(w.varint(0) && w.varint(0));
        }
        b.resize(w.size());
        return b;
    };
    {
        const Bytes b = build(kMaxAckRanges - 1);
        Reader r(b);
        Frame out;
        ASSERT_TRUE(decode_frame(r, out));
        EXPECT_EQ(std::get<AckFrame>(out).ranges.size(), kMaxAckRanges);
    }
    {
        const Bytes b = build(kMaxAckRanges);
        Reader r(b);
        Frame out;
        EXPECT_FALSE(decode_frame(r, out));
    }
    {
        // Count 2^62-1 with no ranges: rejected up front, without allocating.
        const Bytes b = {0x02, 0x0a, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
        Reader r(b);
        Frame out;
        EXPECT_FALSE(decode_frame(r, out));
    }
}

// Pins that an ACK with no ranges cannot be encoded.
TEST(FrameAck, EncodeRejectsEmpty) {
    Bytes buf(64);
    Writer w(buf);
    EXPECT_FALSE(encode_frame(w, AckFrame{}));
}

// Pins that decoding into a Frame already holding an AckFrame replaces its ranges.
TEST(FrameAck, ReusedOutputIsReset) {
    Frame out = AckFrame{0, {{1, 1}, {5, 9}, {20, 30}}};
    const Bytes b = {0x02, 0x03, 0x00, 0x00, 0x01};
    Reader r(b);
    ASSERT_TRUE(decode_frame(r, out));
    EXPECT_EQ(std::get<AckFrame>(out).ranges, (std::vector<AckRange>{{2, 3}}));
}

// Pins forward compatibility: unknown transport parameter ids are skipped, known ones applied.
TEST(TransportParamsCodec, UnknownIdsIgnored) {
    const Bytes b = {0x04, 0x01, 0x53, 0x88,        // idle 5000
                     0x3f, 0x05,                    // unknown 0x3f
                     0x52, 0x34, 0x80, 0, 0, 1,     // unknown 0x1234
                     0x06, 0x0a};                   // max_ack_delay 10
    Reader r(b);
    TransportParams p;
    ASSERT_TRUE(decode_transport_params(r, p));
    EXPECT_TRUE(r.empty());
    TransportParams expect;
    expect.idle_timeout_ms = 5000;
    expect.max_ack_delay_ms = 10;
    EXPECT_EQ(p, expect);
}

// Pins RFC 9000 §18.2: max_ack_delay of 2^14 or more is invalid; 2^14-1 is accepted.
TEST(TransportParamsCodec, MaxAckDelayLimit) {
    TransportParams p;
    const Bytes ok = {0x01, 0x06, 0x7f, 0xff};  // 16383
    Reader r1(ok);
    ASSERT_TRUE(decode_transport_params(r1, p));
    EXPECT_EQ(p.max_ack_delay_ms, 16383u);
    const Bytes bad = {0x01, 0x06, 0x80, 0x00, 0x40, 0x00};  // 16384
    Reader r2(bad);
    EXPECT_FALSE(decode_transport_params(r2, p));
}

// Pins the parameter-count limit and that truncated parameter lists fail.
TEST(TransportParamsCodec, CountLimitAndTruncation) {
    Bytes b = {static_cast<std::uint8_t>(kMaxTransportParams + 1)};
    for (std::size_t i = 0; i <= kMaxTransportParams; ++i) {
        b.push_back(0x20);
        b.push_back(0x00);
    }
    Reader r(b);
    TransportParams p;
    EXPECT_FALSE(decode_transport_params(r, p));
    const Bytes full = default_params_bytes();
    for (std::size_t n = 0; n < full.size(); ++n) {
        Reader rc(std::span<const std::uint8_t>(full).first(n));
        TransportParams q;
        EXPECT_FALSE(decode_transport_params(rc, q)) << n;
    }
}

// Pins that every frame type not defined by the protocol is a decode error.
TEST(Frame, UnknownTypeRejected) {
    const std::vector<std::uint64_t> known = {0x00, 0x01, 0x02, 0x04, 0x05, 0x08, 0x09, 0x0a,
                                              0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12,
                                              0x14, 0x15, 0x16, 0x1a, 0x1b, 0x1c, 0x30, 0x31,
                                              0x32};
    for (std::uint64_t t = 0; t < 0x100; ++t) {
        if (std::find(known.begin(), known.end(), t) != known.end()) {
            continue;
        }
        Bytes b(16, 0x01);
        Writer w(b);
        ASSERT_TRUE(w.varint(t));
        Reader r(b);
        Frame out;
        EXPECT_FALSE(decode_frame(r, out)) << "type 0x" << std::hex << t;
    }
    for (const std::uint64_t t : {std::uint64_t{0x4000}, std::uint64_t{0x3fffffff}, kVarintMax}) {
        Bytes b(16, 0x01);
        Writer w(b);
        ASSERT_TRUE(w.varint(t));
        Reader r(b);
        Frame out;
        EXPECT_FALSE(decode_frame(r, out));
    }
}

// Pins that a STREAM frame without the LEN bit takes the rest of the input as data.
TEST(FrameStream, NoLenTakesRest) {
    const Bytes b = {0x08, 0x04, 'h', 'e', 'l', 'l', 'o'};
    Reader r(b);
    Frame out;
    ASSERT_TRUE(decode_frame(r, out));
    EXPECT_TRUE(r.empty());
    const auto& s = std::get<StreamFrame>(out);
    EXPECT_EQ(s.stream_id, 4u);
    EXPECT_EQ(s.offset, 0u);
    EXPECT_FALSE(s.fin);
    EXPECT_EQ(std::string(s.data.begin(), s.data.end()), "hello");

    const Bytes c = {0x0d, 0x01, 0x40, 0x64};  // OFF+FIN, no LEN, empty data
    Reader r2(c);
    ASSERT_TRUE(decode_frame(r2, out));
    const auto& s2 = std::get<StreamFrame>(out);
    EXPECT_EQ(s2.offset, 100u);
    EXPECT_TRUE(s2.fin);
    EXPECT_TRUE(s2.data.empty());
}

// Pins that a STREAM frame whose end offset would exceed 2^62-1 is rejected.
TEST(FrameStream, EndBeyondVarintMax) {
    const Bytes b = {0x0e, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'x'};
    Reader r(b);
    Frame out;
    EXPECT_FALSE(decode_frame(r, out));
    const Bytes ok = {0x0e, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x01, 'x'};
    Reader r2(ok);
    EXPECT_TRUE(decode_frame(r2, out));
}

// Pins that a STREAM LEN larger than the remaining input is rejected.
TEST(FrameStream, LenBeyondInput) {
    const Bytes b = {0x0a, 0x00, 0x05, 'a', 'b'};
    Reader r(b);
    Frame out;
    EXPECT_FALSE(decode_frame(r, out));
}

// Pins stream_frame_overhead() against the actual encoding.
TEST(FrameStream, OverheadMatchesEncoding) {
    for (std::uint64_t id : {0ULL, 63ULL, 64ULL, 1ULL << 40}) {
        for (std::uint64_t off : {0ULL, 1ULL, 16384ULL, 1ULL << 31}) {
            for (std::size_t len : {0u, 1u, 63u, 64u, 1024u}) {
                const Bytes b = encode(StreamFrame{id, off, false, std::span(kKiB).first(len)});
                EXPECT_EQ(b.size(), stream_frame_overhead(id, off, len) + len);
            }
        }
    }
}

// Pins decode-side string limits: reason, domain, api key and client version.
TEST(Frame, StringLimits) {
    auto close_with = [](std::size_t n) {
        Bytes b = {0x1c, 0x00};
        Bytes len(8);
        Writer w(len);
        EXPECT_TRUE(w.varint(n));
        b.insert(b.end(), len.begin(), len.begin() + static_cast<std::ptrdiff_t>(w.size()));
        b.insert(b.end(), n, 'x');
        return b;
    };
    Frame out;
    Bytes ok = close_with(kMaxReasonLen);
    Reader r1(ok);
    EXPECT_TRUE(decode_frame(r1, out));
    Bytes bad = close_with(kMaxReasonLen + 1);
    Reader r2(bad);
    EXPECT_FALSE(decode_frame(r2, out));

    // The encoder truncates an over-long reason instead of producing an undecodable frame.
    const std::string longer(kMaxReasonLen + 50, 'y');
    const Bytes enc = encode(ConnectionCloseFrame{1, longer});
    Reader r3(enc);
    ASSERT_TRUE(decode_frame(r3, out));
    EXPECT_EQ(std::get<ConnectionCloseFrame>(out).reason.size(), kMaxReasonLen);

    const std::string domain(kMaxDomainLen + 1, 'd');
    const Bytes auth = encode(AuthFrame{1, domain, "k", "v", {}});
    Reader r4(auth);
    EXPECT_FALSE(decode_frame(r4, out));
    const std::string key(kMaxApiKeyLen + 1, 'k');
    const Bytes auth2 = encode(AuthFrame{1, "d", key, "v", {}});
    Reader r5(auth2);
    EXPECT_FALSE(decode_frame(r5, out));
    const std::string cv(kMaxClientVersionLen + 1, 'v');
    const Bytes auth3 = encode(AuthFrame{1, "d", "k", cv, {}});
    Reader r6(auth3);
    EXPECT_FALSE(decode_frame(r6, out));
}

// Pins that AUTH/AUTH_OK with an invalid transport parameter fail as a whole frame.
TEST(Frame, AuthWithBadParams) {
    Bytes b = {0x31, 0x01, 0x06, 0x80, 0x00, 0x40, 0x00};
    Reader r(b);
    Frame out;
    EXPECT_FALSE(decode_frame(r, out));
}

// Pins which frames are ack-eliciting (all but PADDING, ACK, CONNECTION_CLOSE).
TEST(Frame, AckEliciting) {
    for (const auto& g : goldens()) {
        const bool expect = !(std::holds_alternative<PaddingFrame>(g.frame) ||
                              std::holds_alternative<AckFrame>(g.frame) ||
                              std::holds_alternative<ConnectionCloseFrame>(g.frame));
        EXPECT_EQ(is_ack_eliciting(g.frame), expect) << g.name;
    }
}

// Pins that encoding into a too-small buffer fails at every size short of the full encoding.
TEST(Frame, EncodeIntoShortBuffer) {
    for (const auto& g : goldens()) {
        for (std::size_t n = 0; n < g.bytes.size(); ++n) {
            Bytes buf(n);
            Writer w(buf);
            EXPECT_FALSE(encode_frame(w, g.frame)) << g.name << " into " << n;
        }
    }
}

// Pins decoding a sequence of frames back to back (as a packet carries them).
TEST(Frame, Sequence) {
    Bytes all;
    const auto g = goldens();
    for (const auto& v : g) {
        if (std::holds_alternative<PaddingFrame>(v.frame)) {
            continue;  // would coalesce with nothing; kept out for simplicity
        }
        all.insert(all.end(), v.bytes.begin(), v.bytes.end());
    }
    Reader r(all);
    std::size_t i = 0;
    Frame out;
    while (!r.empty()) {
        ASSERT_TRUE(decode_frame(r, out));
        while (std::holds_alternative<PaddingFrame>(g[i].frame)) {
            ++i;
        }
        EXPECT_TRUE(same(out, g[i].frame)) << g[i].name;
        ++i;
    }
    EXPECT_EQ(i, g.size());
}

}  // namespace
}  // namespace hopgate::proto
