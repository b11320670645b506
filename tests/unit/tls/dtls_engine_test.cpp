// DtlsEngine: handshake and verification, MTU-bounded flights, one record per datagram,
// retransmission under loss, cookie hand-off from the CookieGuard, close and error paths.
#include "tls/dtls_engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "tls/cookie.hpp"
#include "tls_test_util.hpp"

namespace hopgate::tls::test {
namespace {

ContextPtr dtls_server() {
    static ContextPtr ctx =
        make_server_context(server_identity().cert_pem, server_identity().key_pem, Protocol::kDtls);
    return ctx;
}
ContextPtr dtls_client_trusting_ca() {
    static ContextPtr ctx =
        make_client_context(ClientTrust{server_ca_file().path(), false}, Protocol::kDtls);
    return ctx;
}

// A server whose certificate (40 SANs) needs a flight of several datagrams at MTU 1200.
const PemPair& big_identity() {
    static const PemPair big = [] {
        std::vector<std::string> many;
        for (int i = 0; i < 40; ++i) {
            many.push_back("host-" + std::to_string(i) + ".tunnel.example.com");
        }
        return generate_self_signed(many);
    }();
    return big;
}

// Pins: a client trusting the CA file completes the handshake, verifies, and negotiates ALPN.
TEST(DtlsEngine, HandshakeVerifiesAgainstCaFile) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    ASSERT_TRUE(handshake(*c, *s)) << c->error() << " / " << s->error();
    EXPECT_EQ(SSL_get_verify_result(c->native()), X509_V_OK);
    EXPECT_NE(SSL_get0_peer_certificate(c->native()), nullptr);
    EXPECT_EQ(c->alpn(), "hopgate/1");
    EXPECT_EQ(s->alpn(), "hopgate/1");
    EXPECT_EQ(std::string(SSL_get_version(c->native())), "DTLSv1.2");
}

// Pins: wildcard SAN and IP-literal SAN both verify (IP goes through set1_ip, not SNI).
TEST(DtlsEngine, WildcardAndIpLiteralVerify) {
    for (const char* name : {"a.tunnel.example.com", "127.0.0.1", "::1"}) {
        auto c = DtlsEngine::client(dtls_client_trusting_ca(), name);
        auto s = DtlsEngine::server(dtls_server());
        EXPECT_TRUE(handshake(*c, *s)) << name << ": " << c->error();
    }
}

// Pins: a hostname not in the certificate fails verification on the client, with a reason.
TEST(DtlsEngine, WrongHostnameFails) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "evil.example.org");
    auto s = DtlsEngine::server(dtls_server());
    EXPECT_FALSE(handshake(*c, *s));
    EXPECT_TRUE(c->failed());
    EXPECT_FALSE(c->handshake_done());
    EXPECT_NE(c->error().find("hostname mismatch"), std::string::npos) << c->error();
    EXPECT_EQ(c->read(std::span<std::uint8_t>()).error(), make_error_code(Errc::kHandshake));
}

// Pins: a certificate not issued by the trusted CA fails, even with the right name.
TEST(DtlsEngine, UntrustedCertificateFails) {
    auto other =
        make_server_context(other_identity().cert_pem, other_identity().key_pem, Protocol::kDtls);
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(other);
    EXPECT_FALSE(handshake(*c, *s));
    EXPECT_TRUE(c->failed());
    EXPECT_NE(c->error().find("certificate"), std::string::npos) << c->error();
}

// Pins: insecure_skip_verify accepts an untrusted certificate with a wrong name.
TEST(DtlsEngine, InsecureSkipVerifyAcceptsAnything) {
    auto insecure = make_client_context(ClientTrust{"", true}, Protocol::kDtls);
    auto other =
        make_server_context(other_identity().cert_pem, other_identity().key_pem, Protocol::kDtls);
    auto c = DtlsEngine::client(insecure, "evil.example.org");
    auto s = DtlsEngine::server(other);
    EXPECT_TRUE(handshake(*c, *s)) << c->error();
}

// Pins: a server that does not speak hopgate/1 is rejected by the client's ALPN check.
TEST(DtlsEngine, AlpnMismatchFails) {
    auto srv = make_server_context(server_identity().cert_pem, server_identity().key_pem,
                                   Protocol::kDtls, {"other/1"});
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(srv);
    EXPECT_FALSE(handshake(*c, *s));
    EXPECT_TRUE(c->failed() || s->failed());
}

// Pins: with mtu 1200 every handshake datagram (fragmented flights) is <= 1200 bytes, and the
// server's certificate flight really needed fragmentation (several datagrams).
TEST(DtlsEngine, HandshakeDatagramsFitMtu) {
    const PemPair& big = big_identity();
    auto srv = make_server_context(big.cert_pem, big.key_pem, Protocol::kDtls);
    auto insecure = make_client_context(ClientTrust{"", true}, Protocol::kDtls);
    auto c = DtlsEngine::client(insecure, "host-1.tunnel.example.com");
    auto s = DtlsEngine::server(srv);
    std::vector<std::size_t> client_sizes;
    std::vector<std::size_t> server_sizes;
    for (int i = 0; i < 20 && !(c->handshake_done() && s->handshake_done()); ++i) {
        transfer(*c, *s, nullptr, &client_sizes);
        transfer(*s, *c, nullptr, &server_sizes);
    }
    ASSERT_TRUE(c->handshake_done() && s->handshake_done()) << c->error() << s->error();
    std::size_t total = 0;
    for (auto n : server_sizes) {
        EXPECT_LE(n, 1200u);
        total += n;
    }
    for (auto n : client_sizes) {
        EXPECT_LE(n, 1200u);
    }
    EXPECT_GT(total, 1200u);
    EXPECT_GE(server_sizes.size(), 3u);
    std::string line = "client:";
    for (auto n : client_sizes) {
        line += " " + std::to_string(n);
    }
    line += " | server:";
    for (auto n : server_sizes) {
        line += " " + std::to_string(n);
    }
    std::printf("[ sizes    ] handshake datagrams (cert %zu bytes PEM) %s\n", big.cert_pem.size(),
                line.c_str());
}

// Pins: 1,000 records of random sizes up to max_plaintext() round-trip; each write is exactly
// one datagram of plaintext + record_overhead() bytes (37 for AES-GCM), never above the MTU.
TEST(DtlsEngine, RecordsRoundTripOnePerDatagram) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    ASSERT_TRUE(handshake(*c, *s));
    EXPECT_NE(c->cipher().find("GCM"), std::string_view::npos) << c->cipher();
    EXPECT_EQ(c->record_overhead(), 37u);
    EXPECT_EQ(s->record_overhead(), 37u);
    EXPECT_EQ(c->max_plaintext(), 1200u - 37u);
    std::printf("[ overhead ] cipher %s, record overhead %zu, max plaintext %zu\n",
                std::string(c->cipher()).c_str(), c->record_overhead(), c->max_plaintext());

    std::mt19937 rng(7);
    std::uniform_int_distribution<std::size_t> len(1, c->max_plaintext());
    Bytes buf(kBuf);
    for (int i = 0; i < 1000; ++i) {
        DtlsEngine& from = (i % 2 == 0) ? *c : *s;
        DtlsEngine& to = (i % 2 == 0) ? *s : *c;
        Bytes msg(i == 0 ? from.max_plaintext() : len(rng));
        for (auto& b : msg) {
            b = static_cast<std::uint8_t>(rng());
        }
        ASSERT_TRUE(from.write(msg).ok());
        ASSERT_EQ(from.pending_datagrams(), 1u);
        std::size_t n = from.pop_datagram(buf);
        ASSERT_EQ(n, msg.size() + from.record_overhead());
        ASSERT_LE(n, 1200u);
        ASSERT_EQ(from.pop_datagram(buf), 0u);
        to.on_datagram(std::span<const std::uint8_t>(buf.data(), n));
        auto r = to.read(buf);
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(*r, msg.size());
        ASSERT_TRUE(std::equal(msg.begin(), msg.end(), buf.begin()));
        auto again = to.read(buf);
        ASSERT_TRUE(again.ok());
        ASSERT_EQ(*again, 0u);
    }
}

// Pins: several datagrams queued before reading come out as separate records, in order.
TEST(DtlsEngine, QueuedDatagramsKeepBoundaries) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    ASSERT_TRUE(handshake(*c, *s));
    for (std::uint8_t i = 1; i <= 10; ++i) {
        Bytes msg(i * 10u, i);
        ASSERT_TRUE(c->write(msg).ok());
    }
    EXPECT_EQ(c->pending_datagrams(), 10u);
    Bytes buf(kBuf);
    while (std::size_t n = c->pop_datagram(buf)) {
        s->on_datagram(std::span<const std::uint8_t>(buf.data(), n));
    }
    for (std::uint8_t i = 1; i <= 10; ++i) {
        auto r = s->read(buf);
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(*r, i * 10u);
        EXPECT_EQ(buf[0], i);
    }
}

// A sink that keeps what it accepts, or declines everything.
struct CollectingSink final : DatagramSink {
    bool accept(std::span<const std::uint8_t> d) override {
        if (!open) {
            return false;
        }
        got.emplace_back(d.begin(), d.end());
        return true;
    }
    bool open = true;
    std::vector<Bytes> got;
};

// Pins: with a sink, records bypass the outbound queue; a declining sink leaves them queued and
// the sink is skipped while anything is queued (order kept).
TEST(DtlsEngine, SinkTakesRecordsInOrder) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    ASSERT_TRUE(handshake(*c, *s));
    CollectingSink sink;
    c->set_sink(&sink);
    ASSERT_TRUE(c->write(Bytes(100, 1)).ok());
    EXPECT_EQ(c->pending_datagrams(), 0u);
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].size(), 100u + c->record_overhead());
    sink.open = false;
    ASSERT_TRUE(c->write(Bytes(200, 2)).ok());
    EXPECT_EQ(c->pending_datagrams(), 1u);
    sink.open = true;
    ASSERT_TRUE(c->write(Bytes(300, 3)).ok());
    EXPECT_EQ(c->pending_datagrams(), 2u);  // behind the queued one
    EXPECT_EQ(sink.got.size(), 1u);
    c->set_sink(nullptr);
    Bytes buf(kBuf);
    std::vector<Bytes> all = sink.got;
    while (std::size_t n = c->pop_datagram(buf)) {
        all.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    ASSERT_EQ(all.size(), 3u);
    for (std::size_t i = 0; i < all.size(); ++i) {
        s->on_datagram(all[i]);
        auto r = s->read(buf);
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(*r, 100u * (i + 1));
        EXPECT_EQ(buf[0], i + 1);
    }
}

// Pins: viewed datagrams are decrypted without being queued; a view not read before the next
// one arrives is kept, in order; read() returning 0 releases the view.
TEST(DtlsEngine, ViewedDatagramsReadInOrder) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    ASSERT_TRUE(handshake(*c, *s));
    std::vector<Bytes> wire;
    Bytes buf(kBuf);
    for (std::uint8_t i = 1; i <= 3; ++i) {
        ASSERT_TRUE(c->write(Bytes(i * 10u, i)).ok());
        std::size_t n = c->pop_datagram(buf);
        wire.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    s->on_datagram_view(wire[0]);
    auto r = s->read(buf);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 10u);
    r = s->read(buf);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 0u);
    // Two views without reading in between: both arrive, in order.
    s->on_datagram_view(wire[1]);
    s->on_datagram_view(wire[2]);
    wire[1].assign(wire[1].size(), 0);  // the first view was copied when the second came
    for (std::uint8_t i = 2; i <= 3; ++i) {
        r = s->read(buf);
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(*r, i * 10u);
        EXPECT_EQ(buf[0], i);
    }
    r = s->read(buf);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 0u);
}

// Pins: the handshake completes with 30 % of datagrams dropped (multi-datagram flights),
// driven by timeout()/on_timeout() with a 50 ms initial retransmission timer; 8 seeds, each
// bounded to 10 s wall.
TEST(DtlsEngine, HandshakeSurvivesThirtyPercentLoss) {
    DtlsOptions opts;
    opts.initial_retransmit = std::chrono::milliseconds(50);
    opts.max_retransmit = std::chrono::milliseconds(400);
    auto srv =
        make_server_context(big_identity().cert_pem, big_identity().key_pem, Protocol::kDtls);
    TempPem ca(big_identity().cert_pem);
    auto cli = make_client_context(ClientTrust{ca.path(), false}, Protocol::kDtls);
    std::size_t total_dropped = 0;
    std::size_t total_sent = 0;
    for (std::uint32_t seed = 1; seed <= 8; ++seed) {
        std::mt19937 rng(seed);
        std::bernoulli_distribution lose(0.30);
        std::size_t dropped = 0;
        DropFn drop = [&](const Bytes&) {
            bool d = lose(rng);
            dropped += d ? 1 : 0;
            return d;
        };
        auto c = DtlsEngine::client(cli, "host-7.tunnel.example.com", opts);
        auto s = DtlsEngine::server(srv, opts);
        auto start = std::chrono::steady_clock::now();
        std::size_t sent = 0;
        std::size_t timeouts = 0;
        while (!(c->handshake_done() && s->handshake_done())) {
            ASSERT_FALSE(c->failed()) << c->error();
            ASSERT_FALSE(s->failed()) << s->error();
            ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10))
                << "seed " << seed;
            sent += transfer(*c, *s, drop) + transfer(*s, *c, drop);
            for (DtlsEngine* e : {c.get(), s.get()}) {
                if (auto t = e->timeout(); t && t->count() == 0) {
                    e->on_timeout();
                    ++timeouts;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        Bytes msg{1, 2, 3};
        ASSERT_TRUE(c->write(msg).ok());
        std::vector<Bytes> got;
        transfer(*c, *s, nullptr, nullptr, &got);
        ASSERT_EQ(got.size(), 1u);
        EXPECT_EQ(got[0], msg);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
        std::printf("[ loss     ] seed %u: %zu datagrams (%zu dropped), %zu timeouts, %lld ms\n",
                    seed, sent, dropped, timeouts, static_cast<long long>(ms));
        total_dropped += dropped;
        total_sent += sent;
    }
    // The scenario really was lossy (guards against a drop function that never fires).
    EXPECT_GT(total_dropped * 5, total_sent) << total_dropped << " of " << total_sent;
}

// Pins: when the server's final flight (CCS+Finished) is lost, the client's retransmission
// makes the already-finished server resend it (processed inside read()), and both complete.
TEST(DtlsEngine, LostFinalServerFlightIsRecovered) {
    DtlsOptions opts;
    opts.initial_retransmit = std::chrono::milliseconds(30);
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com", opts);
    auto s = DtlsEngine::server(dtls_server(), opts);
    for (int i = 0; i < 10 && !s->handshake_done(); ++i) {
        transfer(*c, *s, nullptr);
        if (!s->handshake_done()) {
            transfer(*s, *c, nullptr);
        }
    }
    ASSERT_TRUE(s->handshake_done());
    ASSERT_FALSE(c->handshake_done());
    Bytes buf(kBuf);
    std::size_t lost = 0;
    while (s->pop_datagram(buf) > 0) {
        ++lost;
    }
    ASSERT_GT(lost, 0u);
    auto start = std::chrono::steady_clock::now();
    while (!c->handshake_done()) {
        ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
        auto t = c->timeout();
        ASSERT_TRUE(t.has_value()) << "client must keep a retransmission timer armed";
        std::this_thread::sleep_for(*t);
        c->on_timeout();
        transfer(*c, *s, nullptr);
        transfer(*s, *c, nullptr);
    }
    EXPECT_FALSE(c->failed() || s->failed());
}

// Pins: without any peer, the client keeps retransmitting and finally fails instead of
// hanging (OpenSSL's 12-timeout limit), with timeout() always armed while handshaking.
TEST(DtlsEngine, HandshakeGivesUpWithoutPeer) {
    DtlsOptions opts;
    opts.initial_retransmit = std::chrono::milliseconds(20);
    opts.max_retransmit = std::chrono::milliseconds(40);
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com", opts);
    Bytes buf(kBuf);
    auto start = std::chrono::steady_clock::now();
    std::size_t flights = 0;
    while (!c->failed() && std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
        while (c->pop_datagram(buf) > 0) {
            ++flights;
        }
        auto t = c->timeout();
        ASSERT_TRUE(t.has_value());
        std::this_thread::sleep_for(*t + std::chrono::milliseconds(1));
        c->on_timeout();
    }
    EXPECT_TRUE(c->failed());
    EXPECT_GE(flights, 10u) << c->error();
    EXPECT_FALSE(c->error().empty());
}

// Pins: the CookieGuard's HelloVerifyRequest is accepted by a real OpenSSL client, and the
// server engine created after kAccept completes the handshake from the cookie-bearing hello.
TEST(DtlsEngine, CookieExchangeHandOff) {
    CookieGuard guard;
    const Bytes addr{127, 0, 0, 1, 0x12, 0x34};
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    Bytes buf(kBuf);
    std::size_t n = c->pop_datagram(buf);
    ASSERT_GT(n, 0u);
    Bytes reply;
    ASSERT_EQ(guard.check_client_hello({buf.data(), n}, addr, reply),
              CookieGuard::Decision::kReplyAndDrop);
    ASSERT_LE(reply.size(), n);
    c->on_datagram(reply);
    ASSERT_FALSE(c->failed()) << c->error();
    n = c->pop_datagram(buf);
    ASSERT_GT(n, 0u);
    Bytes hello2(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    ASSERT_EQ(guard.check_client_hello(hello2, addr, reply), CookieGuard::Decision::kAccept);
    EXPECT_TRUE(reply.empty());

    auto s = DtlsEngine::server(dtls_server(), {}, &guard, addr);
    s->on_datagram(hello2);
    ASSERT_FALSE(s->failed()) << s->error();
    EXPECT_GT(s->pending_datagrams(), 0u);  // the ServerHello flight, no second HVR
    ASSERT_TRUE(handshake(*c, *s)) << c->error() << " / " << s->error();
    ASSERT_TRUE(c->write(Bytes{42}).ok());
    std::vector<Bytes> got;
    transfer(*c, *s, nullptr, nullptr, &got);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], Bytes{42});
}

// Pins: a guarded server engine fed a cookie-less hello (caller skipped the guard) answers
// with a HelloVerifyRequest instead of handshaking, and the exchange still completes.
TEST(DtlsEngine, GuardedServerEngineRequiresCookie) {
    CookieGuard guard;
    const Bytes addr{10, 0, 0, 7, 0, 80};
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server(), {}, &guard, addr);
    Bytes buf(kBuf);
    std::size_t n = c->pop_datagram(buf);
    s->on_datagram({buf.data(), n});
    ASSERT_FALSE(s->failed()) << s->error();
    ASSERT_EQ(s->pending_datagrams(), 1u);
    std::size_t m = s->pop_datagram(buf);
    EXPECT_EQ(buf[13], 3u) << "expected a HelloVerifyRequest";
    c->on_datagram({buf.data(), m});
    EXPECT_TRUE(handshake(*c, *s)) << c->error() << " / " << s->error();
}

// Pins: a cookie made for another address does not get the guarded engine to handshake.
TEST(DtlsEngine, GuardedServerEngineRejectsCookieForOtherAddress) {
    CookieGuard guard;
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    Bytes buf(kBuf);
    std::size_t n = c->pop_datagram(buf);
    Bytes reply;
    ASSERT_EQ(guard.check_client_hello({buf.data(), n}, Bytes{1, 1, 1, 1}, reply),
              CookieGuard::Decision::kReplyAndDrop);
    c->on_datagram(reply);
    n = c->pop_datagram(buf);
    auto s = DtlsEngine::server(dtls_server(), {}, &guard, Bytes{2, 2, 2, 2});
    s->on_datagram({buf.data(), n});
    ASSERT_FALSE(s->failed());
    ASSERT_EQ(s->pending_datagrams(), 1u);
    n = s->pop_datagram(buf);
    EXPECT_EQ(buf[13], 3u) << "a fresh HelloVerifyRequest, not a ServerHello";
    EXPECT_FALSE(s->handshake_done());
}

// Pins: close_notify reaches the peer as kClosed; writes after closing fail with kClosed.
TEST(DtlsEngine, CloseNotify) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    ASSERT_TRUE(handshake(*c, *s));
    c->close_notify();
    EXPECT_EQ(c->write(Bytes{1}).error(), make_error_code(Errc::kClosed));
    Bytes buf(kBuf);
    std::size_t n = c->pop_datagram(buf);
    ASSERT_GT(n, 0u);
    s->on_datagram({buf.data(), n});
    EXPECT_EQ(s->read(buf).error(), make_error_code(Errc::kClosed));
    EXPECT_TRUE(s->peer_closed());
}

// Pins: write's argument and state errors, and backpressure when the outbound queue is full.
TEST(DtlsEngine, WriteErrors) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    EXPECT_EQ(c->write(Bytes{1}).error(), make_error_code(Errc::kNotReady));
    ASSERT_TRUE(handshake(*c, *s));
    EXPECT_EQ(c->write(Bytes{}).error(), make_error_code(Errc::kInvalidArgument));
    EXPECT_EQ(c->write(Bytes(DtlsEngine::kMaxPlaintext + 1)).error(),
              make_error_code(Errc::kTooLarge));
    EXPECT_TRUE(c->write(Bytes(DtlsEngine::kMaxPlaintext)).ok());  // above MTU: allowed (probe)
    for (std::size_t i = 1; i < DatagramQueue::kCapacity; ++i) {
        ASSERT_TRUE(c->write(Bytes{1}).ok());
    }
    EXPECT_EQ(c->write(Bytes{1}).error(), make_error_code(Errc::kWouldBlock));
    // A buffer too small for the 16 KiB record discards it and returns the next datagram.
    Bytes small(100);
    EXPECT_EQ(c->pop_datagram(small), 1u + c->record_overhead());
    EXPECT_EQ(c->stats().oversize_dropped, 1u);
    EXPECT_EQ(c->pending_datagrams(), DatagramQueue::kCapacity - 2);
}

// Pins: garbage, truncated records and replays are ignored by an established engine; data
// still flows afterwards.
TEST(DtlsEngine, GarbageAfterHandshakeIsIgnored) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    ASSERT_TRUE(handshake(*c, *s));
    ASSERT_TRUE(c->write(Bytes{9, 9, 9}).ok());
    Bytes buf(kBuf);
    std::size_t n = c->pop_datagram(buf);
    Bytes record(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    std::mt19937 rng(3);
    for (int i = 0; i < 2000; ++i) {
        Bytes junk(1 + rng() % 1500);
        for (auto& b : junk) {
            b = static_cast<std::uint8_t>(rng());
        }
        if (i % 3 == 0) {
            junk[0] = 23;  // application_data content type
            junk[1] = 0xfe;
            junk[2] = 0xfd;
        }
        s->on_datagram(junk);
        ASSERT_TRUE(s->read(buf).ok());
    }
    for (std::size_t cut = 1; cut < record.size(); ++cut) {
        s->on_datagram(std::span<const std::uint8_t>(record.data(), cut));
        auto r = s->read(buf);
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(*r, 0u);
    }
    s->on_datagram(record);
    auto r = s->read(buf);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 3u);
    s->on_datagram(record);  // replay: dropped by the DTLS replay window
    r = s->read(buf);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 0u);
    EXPECT_FALSE(s->failed()) << s->error();
}

DtlsOptions openssl_records() {
    DtlsOptions o;
    o.own_records = false;
    return o;
}

// Moves `msg` from `from` to `to` as one datagram and returns what `to` read (one record).
Bytes send_record(DtlsEngine& from, DtlsEngine& to, const Bytes& msg) {
    EXPECT_TRUE(from.write(msg).ok());
    Bytes buf(kBuf);
    const std::size_t n = from.pop_datagram(buf);
    EXPECT_EQ(n, msg.size() + from.record_overhead());
    to.on_datagram({buf.data(), n});
    auto r = to.read(buf);
    if (!r) {
        ADD_FAILURE() << r.error().message();
        return {};
    }
    return Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*r));
}

// Pins: the engine's own AES-GCM record code and OpenSSL's record layer interoperate in both
// roles and both directions (same keys, header, nonce and AAD), for 128- and 256-bit keys and
// record sizes from 1 byte to 16 KiB; OpenSSL keeps ChaCha20-Poly1305 sessions.
TEST(DtlsEngine, OwnRecordsInteroperateWithOpenSsl) {
    struct Case {
        const char* suite;
        bool client_own;
        bool server_own;
        bool expect_own;
    };
    const Case cases[] = {
        {"ECDHE-ECDSA-AES128-GCM-SHA256", true, false, true},
        {"ECDHE-ECDSA-AES128-GCM-SHA256", false, true, true},
        {"ECDHE-ECDSA-AES128-GCM-SHA256", true, true, true},
        {"ECDHE-ECDSA-AES256-GCM-SHA384", true, false, true},
        {"ECDHE-ECDSA-AES256-GCM-SHA384", false, true, true},
        {"ECDHE-ECDSA-CHACHA20-POLY1305", true, true, false},
    };
    std::mt19937 rng(11);
    for (const Case& k : cases) {
        SCOPED_TRACE(std::string(k.suite) + " client own " + std::to_string(k.client_own) +
                     " server own " + std::to_string(k.server_own));
        auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com",
                                    k.client_own ? DtlsOptions{} : openssl_records());
        auto s = DtlsEngine::server(dtls_server(), k.server_own ? DtlsOptions{} : openssl_records());
        ASSERT_EQ(SSL_set_cipher_list(s->native(), k.suite), 1);  // the server's preference wins
        ASSERT_TRUE(handshake(*c, *s)) << c->error() << " / " << s->error();
        ASSERT_EQ(c->cipher(), k.suite);
        EXPECT_EQ(c->own_records_sealing(), k.client_own && k.expect_own);
        EXPECT_FALSE(s->own_records_sealing()) << "before the client's first record";
        for (int i = 0; i < 200; ++i) {
            const bool up = i % 2 == 0;
            DtlsEngine& from = up ? *c : *s;
            DtlsEngine& to = up ? *s : *c;
            std::size_t size = 1 + rng() % from.max_plaintext();
            if (i == 10) {
                size = DtlsEngine::kMaxPlaintext;
            }
            Bytes msg(size);
            for (auto& b : msg) {
                b = static_cast<std::uint8_t>(rng());
            }
            ASSERT_EQ(send_record(from, to, msg), msg) << "record " << i;
        }
        EXPECT_EQ(s->own_records_sealing(), k.server_own && k.expect_own);
        EXPECT_EQ(c->own_records_opening(), k.client_own && k.expect_own);
        // Every record went through the own code where it was on (no silent fallback).
        const bool c_own = k.client_own && k.expect_own;
        const bool s_own = k.server_own && k.expect_own;
        EXPECT_EQ(c->stats().own_sealed, c_own ? 100u : 0u);
        EXPECT_EQ(c->stats().own_opened, c_own ? 100u : 0u);
        EXPECT_EQ(s->stats().own_sealed, s_own ? 100u : 0u);
        EXPECT_EQ(s->stats().own_opened, s_own ? 100u : 0u);
        // Alerts still go through OpenSSL, whichever side sealed the records before.
        s->close_notify();
        Bytes buf(kBuf);
        const std::size_t n = s->pop_datagram(buf);
        ASSERT_GT(n, 0u);
        c->on_datagram({buf.data(), n});
        EXPECT_EQ(c->read(buf).error(), make_error_code(Errc::kClosed));
        EXPECT_FALSE(c->failed()) << c->error();
        EXPECT_FALSE(s->failed()) << s->error();
    }
}

// Pins: with own records, a replayed, reordered-beyond-the-window, or tampered record is
// dropped without failing the engine; reordering inside the 64-record window is accepted; two
// records in one datagram are read in order; a buffer smaller than the record returns it in
// pieces.
TEST(DtlsEngine, OwnRecordsReplayTamperAndFraming) {
    auto c = DtlsEngine::client(dtls_client_trusting_ca(), "tunnel.example.com");
    auto s = DtlsEngine::server(dtls_server());
    ASSERT_TRUE(handshake(*c, *s));
    ASSERT_TRUE(c->own_records_sealing());
    std::vector<Bytes> wire;
    Bytes buf(kBuf);
    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(c->write(Bytes(10, static_cast<std::uint8_t>(i))).ok());
        const std::size_t n = c->pop_datagram(buf);
        wire.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    auto deliver = [&](const Bytes& d) -> std::size_t {
        s->on_datagram(d);
        auto r = s->read(buf);
        EXPECT_TRUE(r.ok());
        return r ? *r : 0;
    };
    EXPECT_EQ(deliver(wire[80]), 10u);
    EXPECT_EQ(buf[0], 80u);
    EXPECT_EQ(deliver(wire[80]), 0u) << "replay";
    EXPECT_EQ(deliver(wire[10]), 0u) << "70 behind: outside the window";
    EXPECT_EQ(deliver(wire[30]), 10u) << "50 behind: inside the window";
    EXPECT_EQ(deliver(wire[30]), 0u) << "replay inside the window";
    for (std::size_t at : {std::size_t{0}, std::size_t{5}, std::size_t{13}, std::size_t{30},
                           wire[81].size() - 1}) {
        Bytes bad = wire[81];
        bad[at] ^= 0x40;
        EXPECT_EQ(deliver(bad), 0u) << "flipped byte " << at;
    }
    EXPECT_EQ(deliver(wire[81]), 10u) << "a rejected forgery does not move the window";
    // A seen record followed by a record that is not application data must not reach OpenSSL
    // (whose replay window never saw it): the whole datagram is dropped.
    Bytes mixed = wire[81];
    mixed.insert(mixed.end(), {21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 1, 0});
    EXPECT_EQ(deliver(mixed), 0u) << "replay smuggled next to an alert";
    Bytes two = wire[82];
    two.insert(two.end(), wire[83].begin(), wire[83].end());
    s->on_datagram(two);
    for (const int want : {82, 83}) {
        auto r = s->read(buf);
        ASSERT_TRUE(r.ok());
        ASSERT_EQ(*r, 10u);
        EXPECT_EQ(buf[0], want);
    }
    EXPECT_EQ(*s->read(buf), 0u);
    s->on_datagram(wire[84]);
    Bytes small(4);
    std::size_t got = 0;
    for (;;) {
        auto r = s->read(small);
        ASSERT_TRUE(r.ok());
        if (*r == 0) {
            break;
        }
        EXPECT_EQ(small[0], 84u);
        got += *r;
    }
    EXPECT_EQ(got, 10u);
    EXPECT_FALSE(s->failed()) << s->error();
    // Two replays and one too old, the forgeries but the one with a changed content type (that
    // one is no application record: OpenSSL drops it), and the mixed datagram.
    EXPECT_EQ(s->stats().own_rejected, 3u + 4u + 1u);
    EXPECT_EQ(send_record(*s, *c, Bytes(5, 7)), Bytes(5, 7));
}

// Pins: engines refuse a context of the wrong kind instead of misbehaving.
TEST(DtlsEngine, WrongContextFails) {
    auto tls = make_client_context(ClientTrust{"", true}, Protocol::kTls);
    auto c = DtlsEngine::client(tls, "tunnel.example.com");
    EXPECT_TRUE(c->failed());
    auto s = DtlsEngine::server(dtls_client_trusting_ca());
    EXPECT_TRUE(s->failed());
    EXPECT_FALSE(DtlsEngine::client(dtls_client_trusting_ca(), "")->error().empty());
}

}  // namespace
}  // namespace hopgate::tls::test
