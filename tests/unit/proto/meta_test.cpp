// Unit tests of the stream head codec (proto/meta.hpp): round trips, byte-split decoding,
// size limits and malformed records.
#include "proto/meta.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/wire.hpp"

namespace hopgate::proto {
namespace {

using Bytes = std::vector<std::uint8_t>;

StreamMeta request_head() {
    StreamMeta m;
    m.kind = StreamKind::kHttp;
    m.request_id = "01HZX3R6Q9K2M7";
    m.head = HeadType::kRequest;
    m.method = "POST";
    m.target = "/api/v1/items?page=2&sort=desc";
    m.headers = {{"host", "app.example.com"},
                 {"user-agent", "curl/8.4.0"},
                 {"accept", "*/*"},
                 {"content-type", "application/json"},
                 {"content-length", "42"},
                 {"x-forwarded-for", "203.0.113.7"},
                 {"x-empty", ""}};
    return m;
}

StreamMeta response_head() {
    StreamMeta m;
    m.kind = StreamKind::kUpgrade;
    m.request_id = "r1";
    m.head = HeadType::kResponse;
    m.status = 101;
    m.headers = {{"upgrade", "websocket"}, {"connection", "Upgrade"}};
    return m;
}

Bytes encode(const StreamMeta& m, std::size_t max = kDefaultMaxMetaSize) {
    Bytes out;
    EXPECT_TRUE(encode_meta(m, out, max));
    return out;
}

// Builds a record from a raw body (the length prefix is added here).
Bytes record(const Bytes& body) {
    Bytes out(8 + body.size());
    Writer w(out);
    EXPECT_TRUE(w.varint(body.size()) && w.bytes(body));
    out.resize(w.size());
    return out;
}

MetaParse decode(const Bytes& b, StreamMeta& out, std::size_t& consumed,
                 std::size_t max = kDefaultMaxMetaSize) {
    return decode_meta(b, max, out, consumed);
}

// Pins request/response/raw heads surviving encode→decode unchanged, with `consumed` exact.
TEST(Meta, RoundTrip) {
    StreamMeta raw;
    raw.kind = StreamKind::kRaw;
    StreamMeta status999 = response_head();
    status999.status = 999;
    for (const auto& m : {request_head(), response_head(), raw, status999}) {
        const Bytes b = encode(m);
        StreamMeta out;
        std::size_t consumed = 0;
        ASSERT_EQ(decode(b, out, consumed), MetaParse::kOk);
        EXPECT_EQ(out, m);
        EXPECT_EQ(consumed, b.size());
    }
}

// Pins that trailing stream data after the record is not consumed (data follows the head).
TEST(Meta, TrailingDataNotConsumed) {
    Bytes b = encode(request_head());
    const std::size_t n = b.size();
    b.push_back('D');
    b.push_back('A');
    StreamMeta out;
    std::size_t consumed = 0;
    ASSERT_EQ(decode(b, out, consumed), MetaParse::kOk);
    EXPECT_EQ(consumed, n);
}

// Pins the exact wire layout of a small response head (golden vector).
TEST(Meta, GoldenResponse) {
    StreamMeta m;
    m.kind = StreamKind::kHttp;
    m.request_id = "a";
    m.head = HeadType::kResponse;
    m.status = 200;
    m.headers = {{"k", "v"}};
    // body: version 1, kind 0, rid "a", head 2, status 200 (0x40c8), 1 header "k":"v"
    const Bytes expect = {0x0c, 0x01, 0x00, 0x01, 'a', 0x02, 0x40, 0xc8, 0x01, 0x01, 'k', 0x01,
                          'v'};
    EXPECT_EQ(encode(m), expect);
}

// Pins byte-split decoding: every proper prefix is kNeedMore, the full record kOk.
TEST(Meta, SplitAtEveryByte) {
    StreamMeta big = request_head();
    big.target.assign(300, 't');  // pushes the body length to a 2-byte varint
    for (const auto& m : {request_head(), response_head(), big}) {
        const Bytes b = encode(m);
        for (std::size_t n = 0; n < b.size(); ++n) {
            StreamMeta out;
            std::size_t consumed = 0;
            const Bytes prefix(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
            EXPECT_EQ(decode(prefix, out, consumed), MetaParse::kNeedMore) << "prefix " << n;
        }
        StreamMeta out;
        std::size_t consumed = 0;
        EXPECT_EQ(decode(b, out, consumed), MetaParse::kOk);
        EXPECT_EQ(out, m);
    }
}

// Pins kTooLarge as soon as the declared length exceeds the limit, even before the body arrives.
TEST(Meta, TooLarge) {
    const Bytes b = encode(request_head());
    StreamMeta out;
    std::size_t consumed = 0;
    EXPECT_EQ(decode(b, out, consumed, b.size() - 1), MetaParse::kTooLarge);
    EXPECT_EQ(decode(b, out, consumed, b.size()), MetaParse::kOk);
    // Only the 4-byte length prefix of a 1 MiB record: too large without waiting for the body.
    const Bytes prefix = {0x80, 0x10, 0x00, 0x00};
    EXPECT_EQ(decode(prefix, out, consumed), MetaParse::kTooLarge);
    // Maximal varint length must not overflow the check.
    const Bytes huge = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    EXPECT_EQ(decode(huge, out, consumed), MetaParse::kTooLarge);
}

// Pins that encode_meta refuses heads over max_size or over a field limit, leaving `out` alone.
TEST(Meta, EncodeRejectsOversize) {
    const StreamMeta m = request_head();
    const std::size_t size = encode(m).size();
    Bytes out = {0xaa};
    EXPECT_FALSE(encode_meta(m, out, size - 1));
    EXPECT_EQ(out, Bytes{0xaa});
    EXPECT_TRUE(encode_meta(m, out, size));
    EXPECT_EQ(out.size(), size + 1);  // appended after the existing byte

    StreamMeta long_method = m;
    long_method.method.assign(kMaxMethodLen + 1, 'M');
    Bytes o1;
    EXPECT_FALSE(encode_meta(long_method, o1));
    StreamMeta long_rid = m;
    long_rid.request_id.assign(kMaxRequestIdLen + 1, 'r');
    EXPECT_FALSE(encode_meta(long_rid, o1));
    StreamMeta many = m;
    many.headers.assign(kMaxMetaHeaders + 1, Header{"a", "b"});
    EXPECT_FALSE(encode_meta(many, o1));
    StreamMeta long_name = m;
    long_name.headers.push_back({std::string(1025, 'n'), "v"});
    EXPECT_FALSE(encode_meta(long_name, o1));
    // A status the decoder would reject must not be encodable either.
    StreamMeta bad_status = response_head();
    bad_status.status = 1000;
    EXPECT_FALSE(encode_meta(bad_status, o1));
    StreamMeta max_headers = m;
    max_headers.headers.assign(kMaxMetaHeaders, Header{"a", "b"});
    EXPECT_TRUE(encode_meta(max_headers, o1));
}

// Body: version, kind, rid, head type, then `tail`.
Bytes body(std::uint8_t version, std::uint8_t kind, std::uint8_t head, const Bytes& tail) {
    Bytes b(4 + tail.size());
    b[0] = version;
    b[1] = kind;
    b[2] = 0x00;  // empty request id
    b[3] = head;
    std::copy(tail.begin(), tail.end(), b.begin() + 4);
    return b;
}

// Pins rejection of records with a bad version, kind, head type or trailing bytes.
TEST(Meta, MalformedHeader) {
    StreamMeta out;
    std::size_t consumed = 0;
    EXPECT_EQ(decode(record(body(1, 0, 0, {0x00})), out, consumed), MetaParse::kOk);
    EXPECT_EQ(decode(record(body(0, 0, 0, {0x00})), out, consumed), MetaParse::kMalformed);
    EXPECT_EQ(decode(record(body(2, 0, 0, {0x00})), out, consumed), MetaParse::kMalformed);
    EXPECT_EQ(decode(record(body(1, 3, 0, {0x00})), out, consumed), MetaParse::kMalformed);
    EXPECT_EQ(decode(record(body(1, 0, 3, {0x00})), out, consumed), MetaParse::kMalformed);
    EXPECT_EQ(decode(record(body(1, 0, 0, {0x00, 0x00})), out, consumed), MetaParse::kMalformed);
    EXPECT_EQ(decode(record(body(1, 0, 0, {})), out, consumed), MetaParse::kMalformed);
    EXPECT_EQ(decode(record({}), out, consumed), MetaParse::kMalformed);
    EXPECT_EQ(decode(record({0x01}), out, consumed), MetaParse::kMalformed);
}

// Pins the status range: 999 is accepted, 1000 rejected.
TEST(Meta, StatusAbove999) {
    StreamMeta out;
    std::size_t consumed = 0;
    EXPECT_EQ(decode(record(body(1, 0, 2, {0x43, 0xe7, 0x00})), out, consumed), MetaParse::kOk);
    EXPECT_EQ(out.status, 999);
    EXPECT_EQ(decode(record(body(1, 0, 2, {0x43, 0xe8, 0x00})), out, consumed),
              MetaParse::kMalformed);
    // A huge status must not be truncated into a valid uint16_t.
    EXPECT_EQ(decode(record(body(1, 0, 2, {0x80, 0x01, 0x00, 0xc8, 0x00})), out, consumed),
              MetaParse::kMalformed);
}

// Pins the header-count limit and truncated header lists.
TEST(Meta, TooManyHeaders) {
    auto with_headers = [](std::size_t n) {
        Bytes tail(2);
        Writer w(tail);
        EXPECT_TRUE(w.varint(n));
        tail.resize(w.size());
        for (std::size_t i = 0; i < n; ++i) {
            tail.insert(tail.end(), {0x01, 'a', 0x00});
        }
        return record(body(1, 0, 0, tail));
    };
    StreamMeta out;
    std::size_t consumed = 0;
    EXPECT_EQ(decode(with_headers(kMaxMetaHeaders), out, consumed), MetaParse::kOk);
    EXPECT_EQ(out.headers.size(), kMaxMetaHeaders);
    EXPECT_EQ(decode(with_headers(kMaxMetaHeaders + 1), out, consumed), MetaParse::kMalformed);
    // Declares two headers, carries one.
    EXPECT_EQ(decode(record(body(1, 0, 0, {0x02, 0x01, 'a', 0x00})), out, consumed),
              MetaParse::kMalformed);
}

// Pins that a string length running past the body (but within the buffer) is malformed.
TEST(Meta, StringBeyondBody) {
    // Body declares rid length 5 but is only 4 bytes long; extra bytes follow the record.
    Bytes b = {0x04, 0x01, 0x00, 0x05, 0x00, 'x', 'x', 'x', 'x', 'x'};
    StreamMeta out;
    std::size_t consumed = 0;
    EXPECT_EQ(decode(b, out, consumed), MetaParse::kMalformed);
}

// Pins that `out` is untouched when decoding fails.
TEST(Meta, OutputUntouchedOnFailure) {
    StreamMeta out = response_head();
    std::size_t consumed = 7;
    EXPECT_EQ(decode(record(body(9, 0, 0, {0x00})), out, consumed), MetaParse::kMalformed);
    EXPECT_EQ(out, response_head());
    EXPECT_EQ(consumed, 7u);
}

}  // namespace
}  // namespace hopgate::proto
