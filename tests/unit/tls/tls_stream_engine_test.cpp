// TlsStreamEngine: handshake, verification, ALPN, 1 MiB each way through random-size chunks,
// backpressure and close_notify.
#include "tls/tls_stream_engine.hpp"

#include <gtest/gtest.h>

#include <random>

#include "tls_test_util.hpp"

namespace hopgate::tls::test {
namespace {

ContextPtr tls_server() {
    static ContextPtr ctx =
        make_server_context(server_identity().cert_pem, server_identity().key_pem, Protocol::kTls);
    return ctx;
}
ContextPtr tls_client() {
    static ContextPtr ctx =
        make_client_context(ClientTrust{server_ca_file().path(), false}, Protocol::kTls);
    return ctx;
}

bool stream_handshake(TlsStreamEngine& c, TlsStreamEngine& s, std::mt19937& rng) {
    Bytes sink;
    for (int i = 0; i < 20 && !(c.handshake_done() && s.handshake_done()); ++i) {
        pump_stream(c, s, rng, 97, sink);
        pump_stream(s, c, rng, 97, sink);
        if (c.failed() || s.failed()) {
            return false;
        }
    }
    return c.handshake_done() && s.handshake_done() && sink.empty();
}

// Pins: handshake (TLS 1.3, ALPN hopgate/1, verified) then 1 MiB each way, concurrently, fed
// in random chunk sizes, arrives byte-identical; write() is partial under backpressure.
TEST(TlsStreamEngine, OneMebibyteEachWayInRandomChunks) {
    std::mt19937 rng(1234);
    auto c = TlsStreamEngine::client(tls_client(), "tunnel.example.com");
    auto s = TlsStreamEngine::server(tls_server());
    ASSERT_TRUE(stream_handshake(*c, *s, rng)) << c->error() << " / " << s->error();
    EXPECT_EQ(c->version(), "TLSv1.3");
    EXPECT_EQ(c->alpn(), "hopgate/1");
    EXPECT_EQ(SSL_get_verify_result(c->native()), X509_V_OK);

    const std::size_t kSize = 1 << 20;
    Bytes up(kSize);
    Bytes down(kSize);
    for (auto& b : up) {
        b = static_cast<std::uint8_t>(rng());
    }
    for (auto& b : down) {
        b = static_cast<std::uint8_t>(rng());
    }
    Bytes got_up;
    Bytes got_down;
    std::size_t sent_up = 0;
    std::size_t sent_down = 0;
    bool saw_partial = false;
    std::uniform_int_distribution<std::size_t> wlen(1, 300000);
    for (int iter = 0; iter < 100000 && (got_up.size() < kSize || got_down.size() < kSize);
         ++iter) {
        if (sent_up < kSize) {
            std::size_t n = std::min(wlen(rng), kSize - sent_up);
            auto w = c->write(std::span<const std::uint8_t>(up.data() + sent_up, n));
            ASSERT_TRUE(w.ok());
            saw_partial |= *w < n;
            sent_up += *w;
        }
        if (sent_down < kSize) {
            std::size_t n = std::min(wlen(rng), kSize - sent_down);
            auto w = s->write(std::span<const std::uint8_t>(down.data() + sent_down, n));
            ASSERT_TRUE(w.ok());
            saw_partial |= *w < n;
            sent_down += *w;
        }
        pump_stream(*c, *s, rng, 5000, got_up);
        pump_stream(*s, *c, rng, 5000, got_down);
        ASSERT_FALSE(c->failed()) << c->error();
        ASSERT_FALSE(s->failed()) << s->error();
    }
    EXPECT_TRUE(got_up == up);
    EXPECT_TRUE(got_down == down);
    EXPECT_TRUE(saw_partial) << "backpressure never engaged";
}

// Pins: the stream engine checks the hostname and the chain like the DTLS engine.
TEST(TlsStreamEngine, WrongHostnameFailsInsecureWorks) {
    std::mt19937 rng(5);
    auto c = TlsStreamEngine::client(tls_client(), "evil.example.org");
    auto s = TlsStreamEngine::server(tls_server());
    EXPECT_FALSE(stream_handshake(*c, *s, rng));
    EXPECT_TRUE(c->failed());
    EXPECT_NE(c->error().find("hostname mismatch"), std::string::npos) << c->error();

    auto insecure = make_client_context(ClientTrust{"", true}, Protocol::kTls);
    auto c2 = TlsStreamEngine::client(insecure, "evil.example.org");
    auto s2 = TlsStreamEngine::server(tls_server());
    EXPECT_TRUE(stream_handshake(*c2, *s2, rng)) << c2->error();
}

// Pins: a client offering a different ALPN protocol is refused by the server.
TEST(TlsStreamEngine, AlpnMismatchFails) {
    std::mt19937 rng(6);
    auto other =
        make_client_context(ClientTrust{server_ca_file().path(), false}, Protocol::kTls, {"h2"});
    auto c = TlsStreamEngine::client(other, "tunnel.example.com");
    auto s = TlsStreamEngine::server(tls_server());
    EXPECT_FALSE(stream_handshake(*c, *s, rng));
    EXPECT_TRUE(s->failed());
}

// Pins: close_notify is seen by the peer as kClosed; writes after it fail.
TEST(TlsStreamEngine, CloseNotify) {
    std::mt19937 rng(7);
    auto c = TlsStreamEngine::client(tls_client(), "tunnel.example.com");
    auto s = TlsStreamEngine::server(tls_server());
    ASSERT_TRUE(stream_handshake(*c, *s, rng));
    c->close_notify();
    EXPECT_EQ(c->write(Bytes{1}).error(), make_error_code(Errc::kClosed));
    Bytes buf(kBuf);
    std::size_t n = c->pop_bytes(buf);
    ASSERT_GT(n, 0u);
    EXPECT_EQ(s->on_bytes({buf.data(), n}), n);
    EXPECT_EQ(s->read(buf).error(), make_error_code(Errc::kClosed));
}

// Pins: corrupted ciphertext makes the receiver fail (TLS has no silent drop), not crash.
TEST(TlsStreamEngine, CorruptionFails) {
    std::mt19937 rng(8);
    auto c = TlsStreamEngine::client(tls_client(), "tunnel.example.com");
    auto s = TlsStreamEngine::server(tls_server());
    ASSERT_TRUE(stream_handshake(*c, *s, rng));
    ASSERT_TRUE(c->write(Bytes(100, 7)).ok());
    Bytes buf(kBuf);
    std::size_t n = c->pop_bytes(buf);
    buf[n - 1] ^= 0xff;
    s->on_bytes({buf.data(), n});
    auto r = s->read(buf);
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(s->failed());
    EXPECT_EQ(r.error(), make_error_code(Errc::kProtocol));
}

}  // namespace
}  // namespace hopgate::tls::test
