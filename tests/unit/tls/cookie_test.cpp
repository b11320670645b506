// CookieGuard: HelloVerifyRequest shape and size, address binding, key rotation, and that a
// flood of garbage and cookie-less hellos allocates nothing and never gets accepted.
#include "tls/cookie.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>

#include "tls_test_util.hpp"

// Counts C++ heap allocations in this test binary, to show the guard keeps no per-peer
// containers (OpenSSL's own transient mallocs are checked with mallinfo2 below).
namespace {
std::atomic<std::size_t> g_news{0};
}
void* operator new(std::size_t n) {
    g_news.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace hopgate::tls::test {
namespace {

// A real OpenSSL ClientHello (first flight of a DTLS client, no cookie).
Bytes real_client_hello() {
    static const Bytes hello = [] {
        auto ctx = make_client_context(ClientTrust{"", true}, Protocol::kDtls);
        auto c = DtlsEngine::client(ctx, "tunnel.example.com");
        Bytes buf(kBuf);
        std::size_t n = c->pop_datagram(buf);
        return Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }();
    return hello;
}

// The client's second hello, echoing the cookie `guard` issued to `addr`.
Bytes hello_with_cookie(CookieGuard& guard, const Bytes& addr) {
    auto ctx = make_client_context(ClientTrust{"", true}, Protocol::kDtls);
    auto c = DtlsEngine::client(ctx, "tunnel.example.com");
    Bytes buf(kBuf);
    std::size_t n = c->pop_datagram(buf);
    Bytes reply;
    EXPECT_EQ(guard.check_client_hello({buf.data(), n}, addr, reply),
              CookieGuard::Decision::kReplyAndDrop);
    c->on_datagram(reply);
    n = c->pop_datagram(buf);
    return Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

const Bytes kAddrA{127, 0, 0, 1, 0x1f, 0x90};
const Bytes kAddrB{127, 0, 0, 2, 0x1f, 0x90};

// Pins: a cookie-less ClientHello gets a well-formed HelloVerifyRequest, no larger than the
// request, echoing the record sequence number; nothing is remembered (the same hello gets the
// same answer and is still not accepted).
TEST(CookieGuard, HelloWithoutCookieGetsSmallHelloVerifyRequest) {
    CookieGuard guard;
    Bytes hello = real_client_hello();
    ClientHelloView view;
    ASSERT_TRUE(parse_client_hello(hello, view));
    EXPECT_TRUE(view.cookie.empty());
    Bytes reply;
    ASSERT_EQ(guard.check_client_hello(hello, kAddrA, reply), CookieGuard::Decision::kReplyAndDrop);
    EXPECT_LE(reply.size(), hello.size());
    ASSERT_EQ(reply.size(), 13u + 12u + 3u + CookieGuard::kCookieSize);
    EXPECT_EQ(reply[0], 22);  // handshake record
    EXPECT_TRUE(std::equal(hello.begin() + 5, hello.begin() + 11, reply.begin() + 5));
    EXPECT_EQ(reply[13], 3);  // hello_verify_request
    EXPECT_EQ(reply[27], CookieGuard::kCookieSize);
    Bytes reply2;
    EXPECT_EQ(guard.check_client_hello(hello, kAddrA, reply2),
              CookieGuard::Decision::kReplyAndDrop);
    EXPECT_EQ(reply, reply2);
    std::printf("[ sizes    ] ClientHello %zu bytes -> HelloVerifyRequest %zu bytes\n",
                hello.size(), reply.size());
}

// Pins: the hello echoing the cookie is accepted from the same address only.
TEST(CookieGuard, CookieIsBoundToAddress) {
    CookieGuard guard;
    Bytes hello2 = hello_with_cookie(guard, kAddrA);
    Bytes reply;
    EXPECT_EQ(guard.check_client_hello(hello2, kAddrA, reply), CookieGuard::Decision::kAccept);
    EXPECT_EQ(guard.check_client_hello(hello2, kAddrB, reply),
              CookieGuard::Decision::kReplyAndDrop);
    Bytes shorter(kAddrA.begin(), kAddrA.end() - 1);
    EXPECT_EQ(guard.check_client_hello(hello2, shorter, reply),
              CookieGuard::Decision::kReplyAndDrop);
    // A cookie from another guard (another key) is not valid here.
    CookieGuard other;
    EXPECT_NE(other.check_client_hello(hello2, kAddrA, reply), CookieGuard::Decision::kAccept);
}

// Pins: after one rotation the previous key's cookies still verify; after two they do not.
// maybe_rotate() rotates only once a full period has passed.
TEST(CookieGuard, RotationKeepsPreviousKeyOnce) {
    using namespace std::chrono_literals;
    const core::Instant t0 = core::kInstantZero + 1000s;
    CookieGuard guard(60s, t0);
    std::uint8_t cookie[CookieGuard::kCookieSize];
    ASSERT_EQ(guard.make_cookie(kAddrA, cookie), CookieGuard::kCookieSize);
    EXPECT_TRUE(guard.verify_cookie(cookie, kAddrA));
    EXPECT_FALSE(guard.maybe_rotate(t0 + 59s));
    EXPECT_TRUE(guard.verify_cookie(cookie, kAddrA));
    EXPECT_TRUE(guard.maybe_rotate(t0 + 60s));
    EXPECT_TRUE(guard.verify_cookie(cookie, kAddrA)) << "previous key must stay valid once";
    std::uint8_t fresh[CookieGuard::kCookieSize];
    ASSERT_EQ(guard.make_cookie(kAddrA, fresh), CookieGuard::kCookieSize);
    EXPECT_FALSE(std::equal(cookie, cookie + CookieGuard::kCookieSize, fresh));
    EXPECT_FALSE(guard.maybe_rotate(t0 + 119s));
    EXPECT_TRUE(guard.maybe_rotate(t0 + 120s));
    EXPECT_FALSE(guard.verify_cookie(cookie, kAddrA)) << "two rotations old";
    EXPECT_TRUE(guard.verify_cookie(fresh, kAddrA));
    // A long idle gap (>= 2 periods) retires both keys at once.
    EXPECT_TRUE(guard.maybe_rotate(t0 + 1000s));
    EXPECT_FALSE(guard.verify_cookie(fresh, kAddrA));
}

// Pins: a real hello cut at every length, and every single-byte corruption of it, never
// crashes and never yields kAccept; truncations are dropped, not answered.
TEST(CookieGuard, TruncatedAndCorruptedHellos) {
    CookieGuard guard;
    Bytes hello2 = hello_with_cookie(guard, kAddrA);
    Bytes reply;
    for (std::size_t cut = 0; cut < hello2.size(); ++cut) {
        Bytes part(hello2.begin(), hello2.begin() + static_cast<std::ptrdiff_t>(cut));
        EXPECT_EQ(guard.check_client_hello(part, kAddrA, reply), CookieGuard::Decision::kDrop)
            << cut;
    }
    ClientHelloView view;
    ASSERT_TRUE(parse_client_hello(hello2, view));
    std::size_t cookie_off = static_cast<std::size_t>(view.cookie.data() - hello2.data());
    for (std::size_t i = cookie_off; i < cookie_off + view.cookie.size(); ++i) {
        Bytes bad = hello2;
        bad[i] ^= 0x01;
        EXPECT_NE(guard.check_client_hello(bad, kAddrA, reply), CookieGuard::Decision::kAccept)
            << i;
    }
}

// Pins: non-handshake records, fragmented hellos and hellos smaller than the reply are dropped
// without a reply (no amplification).
TEST(CookieGuard, DropsNonHellos) {
    CookieGuard guard;
    Bytes reply;
    Bytes hello = real_client_hello();
    Bytes app = hello;
    app[0] = 23;
    EXPECT_EQ(guard.check_client_hello(app, kAddrA, reply), CookieGuard::Decision::kDrop);
    Bytes frag = hello;
    frag[13 + 8] = 1;  // fragment_offset = 1
    EXPECT_EQ(guard.check_client_hello(frag, kAddrA, reply), CookieGuard::Decision::kDrop);
    Bytes epoch1 = hello;
    epoch1[4] = 1;
    EXPECT_EQ(guard.check_client_hello(epoch1, kAddrA, reply), CookieGuard::Decision::kDrop);
    EXPECT_TRUE(reply.empty());
    EXPECT_GE(guard.stats().dropped, 3u);
    // The smallest well-formed hello (one suite, one compression method, no extensions) is
    // 67 bytes and is still answered with a reply no larger than itself.
    Bytes tiny{22,   0xfe, 0xfd, 0,  0, 0, 0, 0, 0, 0, 0, 0,  54,  // record header, len 54
               1,    0,    0,    42, 0, 0, 0, 0, 0, 0, 0, 42,      // handshake header, len 42
               0xfe, 0xfd};
    tiny.resize(tiny.size() + 32, 0x5a);            // random
    for (int b : {0, 0, 0, 2, 0xc0, 0x2b, 1, 0}) {  // sid, cookie, suites, comp
        tiny.push_back(static_cast<std::uint8_t>(b));
    }
    ASSERT_EQ(tiny.size(), 67u);
    EXPECT_EQ(guard.check_client_hello(tiny, kAddrA, reply), CookieGuard::Decision::kReplyAndDrop);
    EXPECT_LE(reply.size(), tiny.size());
    Bytes too_long_addr(CookieGuard::kMaxPeerAddr + 1, 1);
    EXPECT_EQ(guard.check_client_hello(hello, too_long_addr, reply), CookieGuard::Decision::kDrop);
}

// Pins: 10,000 random datagrams and cookie-less/forged-cookie hellos from 10,000 addresses:
// nothing is accepted, no C++ allocation happens inside the guard, and the heap does not grow.
TEST(CookieGuard, FloodAllocatesNothingPerPeer) {
    CookieGuard guard;
    Bytes hello = real_client_hello();
    Bytes forged = hello_with_cookie(guard, kAddrA);
    ClientHelloView view;
    ASSERT_TRUE(parse_client_hello(forged, view));
    std::size_t cookie_off = static_cast<std::size_t>(view.cookie.data() - forged.data());
    std::mt19937 rng(42);
    // Pre-build inputs so the loop measures the guard only.
    std::vector<Bytes> inputs;
    inputs.reserve(10000);
    for (int i = 0; i < 10000; ++i) {
        Bytes d;
        switch (i % 4) {
            case 0:
                d.resize(1 + rng() % 1500);
                for (auto& b : d) {
                    b = static_cast<std::uint8_t>(rng());
                }
                break;
            case 1:
                d = hello;
                d[5 + rng() % 6] = static_cast<std::uint8_t>(rng());  // other record seq
                break;
            case 2:
                d = forged;
                for (std::size_t k = 0; k < view.cookie.size(); ++k) {
                    d[cookie_off + k] = static_cast<std::uint8_t>(rng());
                }
                break;
            default:
                d = hello;
                d[rng() % d.size()] = static_cast<std::uint8_t>(rng());
                break;
        }
        inputs.push_back(std::move(d));
    }
    Bytes reply;
    reply.reserve(256);
    Bytes addr(6);
    const auto before = guard.stats();
    const std::size_t news_before = g_news.load();
    const std::size_t heap_before = mallinfo2().uordblks;
    std::size_t replies = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        addr[0] = static_cast<std::uint8_t>(i);
        addr[1] = static_cast<std::uint8_t>(i >> 8);
        auto d = guard.check_client_hello(inputs[i], addr, reply);
        ASSERT_NE(d, CookieGuard::Decision::kAccept) << i;
        if (d == CookieGuard::Decision::kReplyAndDrop) {
            ASSERT_LE(reply.size(), inputs[i].size());
            ++replies;
        }
    }
    const std::size_t heap_after = mallinfo2().uordblks;
    EXPECT_EQ(g_news.load(), news_before) << "C++ allocations inside the guard";
    EXPECT_LT(heap_after > heap_before ? heap_after - heap_before : 0, 16u * 1024)
        << "heap grew during the flood";
    EXPECT_GT(replies, 4000u);
    const auto after = guard.stats();
    EXPECT_EQ(after.accepted, before.accepted);
    EXPECT_EQ(after.replied + after.dropped - before.replied - before.dropped, inputs.size());
    std::printf("[ flood    ] %zu datagrams: %zu answered, %zu dropped\n", inputs.size(), replies,
                inputs.size() - replies);
}

}  // namespace
}  // namespace hopgate::tls::test
