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

// A server SSL on its own memory BIOs with read-ahead (as the HTTPS front door's TlsSocket):
// completes a handshake with `c`; the client's first application bytes go in the same flight as
// its Finished. Returns the SSL (handshake done) or null.
SslPtr handshake_elsewhere(ContextPtr https, TlsStreamEngine& c, const Bytes& early) {
    SslPtr ssl(SSL_new(https->native()));
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl.get(), rbio, wbio);
    SSL_set_accept_state(ssl.get());
    SSL_set_read_ahead(ssl.get(), 1);
    Bytes buf(kBuf);
    bool sent_early = false;
    for (int i = 0; i < 20 && SSL_is_init_finished(ssl.get()) != 1; ++i) {
        if (c.handshake_done() && !sent_early) {
            EXPECT_EQ(*c.write(early), early.size());
            sent_early = true;
        }
        for (std::size_t n; (n = c.pop_bytes(buf)) > 0;) {
            BIO_write(rbio, buf.data(), static_cast<int>(n));
        }
        (void)SSL_do_handshake(ssl.get());
        for (int n; (n = BIO_read(wbio, buf.data(), static_cast<int>(buf.size()))) > 0;) {
            EXPECT_EQ(c.on_bytes({buf.data(), static_cast<std::size_t>(n)}),
                      static_cast<std::size_t>(n));
        }
        Bytes none(16);
        (void)c.read(none);
    }
    if (SSL_is_init_finished(ssl.get()) != 1 || !c.handshake_done()) {
        return nullptr;
    }
    // Read-ahead took the client's early record out of the BIO (the front door's socket BIO
    // leaves nothing behind in the kernel either): it sits in the SSL's own buffer.
    EXPECT_EQ(BIO_ctrl_pending(rbio), 0u);
    return ssl;
}

// Pins: an SSL whose handshake the HTTPS front door completed (ALPN hopgate/1 chosen from
// http/1.1 + hopgate/1) is adopted by a tunnel engine: the record read ahead with the handshake
// comes out of read(), and data flows both ways over the new memory BIOs.
TEST(TlsStreamEngine, AdoptsAHandshakeDoneElsewhereWithReadAheadData) {
    auto https = make_server_context(server_identity().cert_pem, server_identity().key_pem,
                                     Protocol::kTls, {"http/1.1", kAlpnHopgate});
    auto c = TlsStreamEngine::client(tls_client(), "tunnel.example.com");
    const Bytes early = {'h', 'e', 'l', 'l', 'o'};
    SslPtr ssl = handshake_elsewhere(https, *c, early);
    ASSERT_TRUE(ssl) << c->error();
    EXPECT_EQ(c->alpn(), kAlpnHopgate);
    auto s = TlsStreamEngine::adopt_server(tls_server(), std::move(ssl));
    ASSERT_FALSE(s->failed()) << s->error();
    EXPECT_TRUE(s->handshake_done());
    EXPECT_EQ(s->alpn(), kAlpnHopgate);
    Bytes buf(kBuf);
    auto r = s->read(buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*r)), early);
    const Bytes reply = {'w', 'o', 'r', 'l', 'd'};
    EXPECT_EQ(*s->write(reply), reply.size());
    for (std::size_t n; (n = s->pop_bytes(buf)) > 0;) {
        EXPECT_EQ(c->on_bytes({buf.data(), n}), n);
    }
    auto rc = c->read(buf);
    ASSERT_TRUE(rc);
    EXPECT_EQ(Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*rc)), reply);
}

// Pins: nothing to adopt (null, or a handshake not finished) is a failed engine, not a crash.
TEST(TlsStreamEngine, AdoptRefusesAnUnfinishedHandshake) {
    EXPECT_TRUE(TlsStreamEngine::adopt_server(tls_server(), nullptr)->failed());
    SslPtr fresh(SSL_new(tls_server()->native()));
    SSL_set_accept_state(fresh.get());
    auto e = TlsStreamEngine::adopt_server(tls_server(), std::move(fresh));
    EXPECT_TRUE(e->failed());
    Bytes buf(16);
    EXPECT_FALSE(e->read(buf));
}

}  // namespace
}  // namespace hopgate::tls::test
