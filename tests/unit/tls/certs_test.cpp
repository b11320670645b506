// Certificates, PEM loading, CertStore selection, and swapping a server certificate at run
// time through the store.
#include "tls/certs.hpp"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/x509v3.h>

#include <random>

#include "tls/context.hpp"
#include "tls/error.hpp"
#include "tls_test_util.hpp"

namespace hopgate::tls::test {
namespace {

// Pins: generate_self_signed yields a parseable P-256 ECDSA cert with DNS and IP SANs, a
// matching key, and about one year of validity.
TEST(Certs, SelfSignedHasSansKeyAndValidity) {
    const PemPair& id = server_identity();
    std::string why;
    auto ck = CertifiedKey::from_pem(id.cert_pem, id.key_pem, &why);
    ASSERT_TRUE(ck.ok()) << why;
    X509* leaf = (*ck)->leaf();
    auto names = (*ck)->dns_names();
    EXPECT_EQ(names, (std::vector<std::string>{"tunnel.example.com", "*.tunnel.example.com"}));
    EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
    EXPECT_EQ(X509_check_ip_asc(leaf, "::1", 0), 1);
    EXPECT_NE(X509_check_ip_asc(leaf, "127.0.0.2", 0), 1);
    EXPECT_EQ(X509_check_host(leaf, "x.tunnel.example.com", 0, 0, nullptr), 1);
    EXPECT_EQ(EVP_PKEY_get_base_id((*ck)->key()), EVP_PKEY_EC);
    char group[64] = {};
    std::size_t glen = 0;
    ASSERT_EQ(EVP_PKEY_get_group_name((*ck)->key(), group, sizeof group, &glen), 1);
    EXPECT_STREQ(group, "prime256v1");
    int days = 0;
    int secs = 0;
    ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
    EXPECT_GE(days, 364);
    EXPECT_LE(days, 366);
    EXPECT_EQ(X509_verify(leaf, (*ck)->key()), 1) << "self-signed";
}

// Pins: names outside the allowed alphabet (which could inject SAN syntax) are refused.
TEST(Certs, InvalidNamesThrow) {
    EXPECT_THROW(generate_self_signed({}), Error);
    EXPECT_THROW(generate_self_signed({"a.example.com,DNS:evil.com"}), Error);
    EXPECT_THROW(generate_self_signed({"bad name"}), Error);
}

// Pins: PEM loading errors are values: garbage -> kBadPem, other key -> kKeyMismatch,
// missing file -> kIo; files round-trip.
TEST(Certs, LoadErrors) {
    const PemPair& a = server_identity();
    const PemPair& b = other_identity();
    std::string why;
    EXPECT_EQ(CertifiedKey::from_pem("garbage", a.key_pem, &why).error(),
              make_error_code(Errc::kBadPem));
    EXPECT_EQ(CertifiedKey::from_pem(a.cert_pem, "garbage").error(),
              make_error_code(Errc::kBadPem));
    EXPECT_EQ(CertifiedKey::from_pem(a.cert_pem, b.key_pem, &why).error(),
              make_error_code(Errc::kKeyMismatch));
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(CertifiedKey::from_files("/nonexistent/c.pem", "/nonexistent/k.pem").error(),
              make_error_code(Errc::kIo));
    TempPem cert(a.cert_pem);
    TempPem key(a.key_pem);
    EXPECT_TRUE(CertifiedKey::from_files(cert.path(), key.path()).ok());
    // Leaf + chain: the second certificate becomes the chain.
    auto chained = CertifiedKey::from_pem(a.cert_pem + b.cert_pem, a.key_pem);
    ASSERT_TRUE(chained.ok());
    EXPECT_EQ(sk_X509_num((*chained)->chain()), 1);
    EXPECT_THROW(make_server_context("x", "y", Protocol::kTls), Error);
    EXPECT_THROW(make_client_context(ClientTrust{"/nonexistent/ca.pem", false}, Protocol::kTls),
                 Error);
}

// Pins: a stored certificate is reused only while it is valid past the margin and covers every
// name (wildcards and IP literals matched as a client would); otherwise the reason says why.
TEST(Certs, UnfitForNamesAndValidity) {
    const PemPair& id = server_identity();
    auto ck = CertifiedKey::from_pem(id.cert_pem, id.key_pem);
    ASSERT_TRUE(ck.ok());
    const std::chrono::seconds week = std::chrono::hours(24 * 7);
    EXPECT_EQ(unfit_for(**ck, {"tunnel.example.com", "a.tunnel.example.com", "127.0.0.1", "::1"},
                        week),
              "");
    EXPECT_EQ(unfit_for(**ck, {"tunnel.example.com", "other.example.com"}, week),
              "does not cover other.example.com");
    EXPECT_EQ(unfit_for(**ck, {"127.0.0.2"}, week), "does not cover 127.0.0.2");
    EXPECT_EQ(unfit_for(**ck, {"*.tunnel.example.com"}, week), "");
    EXPECT_EQ(unfit_for(**ck, {"*.other.example.com"}, week), "does not cover *.other.example.com");
    EXPECT_EQ(unfit_for(**ck, {"a.b.tunnel.example.com"}, week),
              "does not cover a.b.tunnel.example.com");  // a wildcard spans one label
    // Valid for about a year: not fit when it must last two.
    EXPECT_NE(unfit_for(**ck, {"tunnel.example.com"}, std::chrono::hours(24 * 730)).find("expir"),
              std::string::npos);
    // A certificate that already expired.
    auto old_pem = generate_self_signed({"old.example.com"}, std::chrono::seconds(-30));
    auto old_ck = CertifiedKey::from_pem(old_pem.cert_pem, old_pem.key_pem);
    ASSERT_TRUE(old_ck.ok());
    EXPECT_EQ(unfit_for(**old_ck, {"old.example.com"}, std::chrono::seconds(0)), "expired");
}

// Pins: CertStore lookup order exact > wildcard (one label) > default, case-insensitive.
TEST(CertStore, SelectionOrder) {
    auto a = *CertifiedKey::from_pem(server_identity().cert_pem, server_identity().key_pem);
    auto b = *CertifiedKey::from_pem(other_identity().cert_pem, other_identity().key_pem);
    CertStore store;
    EXPECT_EQ(store.select("x.example.com"), nullptr);
    store.set("*.example.com", a);
    store.set("Exact.Example.com", b);
    EXPECT_EQ(store.select("exact.example.COM"), b);
    EXPECT_EQ(store.select("other.example.com"), a);
    EXPECT_EQ(store.select("deep.other.example.com"), nullptr);
    EXPECT_EQ(store.select(""), nullptr);
    store.set_default(b);
    EXPECT_EQ(store.select("deep.other.example.com"), b);
    EXPECT_EQ(store.select(""), b);
    EXPECT_TRUE(store.remove("exact.example.com"));
    EXPECT_EQ(store.select("exact.example.com"), a);
    EXPECT_EQ(store.size(), 2u);
}

std::string peer_cert_cn(SSL* ssl) {
    X509* peer = SSL_get0_peer_certificate(ssl);
    if (peer == nullptr) {
        return {};
    }
    char buf[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
    return buf;
}

// Pins: a server context serves the certificate chosen per SNI, and replacing it in the store
// changes what the next handshake presents, without rebuilding the context.
TEST(CertStore, SwapCertificateAtRuntime) {
    static const PemPair one = generate_self_signed({"one.example.com"});
    static const PemPair two = generate_self_signed({"two.example.com"});
    auto store = std::make_shared<CertStore>();
    store->set("app.example.com", *CertifiedKey::from_pem(one.cert_pem, one.key_pem));
    auto srv = make_server_context(store, Protocol::kTls);
    auto insecure = make_client_context(ClientTrust{"", true}, Protocol::kTls);
    auto run = [&](const char* sni) {
        auto c = TlsStreamEngine::client(insecure, sni);
        auto s = TlsStreamEngine::server(srv);
        std::mt19937 rng(1);
        Bytes sink;
        for (int i = 0; i < 10; ++i) {
            pump_stream(*c, *s, rng, 4096, sink);
            pump_stream(*s, *c, rng, 4096, sink);
        }
        return c->handshake_done() ? peer_cert_cn(c->native()) : "failed: " + c->error();
    };
    EXPECT_EQ(run("app.example.com"), "one.example.com");
    store->set("app.example.com", *CertifiedKey::from_pem(two.cert_pem, two.key_pem));
    EXPECT_EQ(run("app.example.com"), "two.example.com");
    // No match and no default: the handshake fails.
    EXPECT_EQ(run("unknown.example.com").rfind("failed", 0), 0u);
}

}  // namespace
}  // namespace hopgate::tls::test
