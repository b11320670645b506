#include "acme/crypto.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <nlohmann/json.hpp>

namespace hopgate::acme {
namespace {

// RFC 4648 §10 vectors, base64url alphabet, no padding.
TEST(Base64Url, Rfc4648Vectors) {
    EXPECT_EQ(base64url(""), "");
    EXPECT_EQ(base64url("f"), "Zg");
    EXPECT_EQ(base64url("fo"), "Zm8");
    EXPECT_EQ(base64url("foo"), "Zm9v");
    EXPECT_EQ(base64url("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64url(std::string("\xfb\xff", 2)), "-_8");
    EXPECT_EQ(*base64url_decode("-_8"), std::string("\xfb\xff", 2));
    EXPECT_EQ(*base64url_decode("Zm9vYmE="), "fooba");
    EXPECT_FALSE(base64url_decode("Zm9v+"));
    EXPECT_FALSE(base64url_decode("Z"));
}

// A fixed P-256 key (RFC 7515 Appendix A.3) gives the JWK members of the RFC.
constexpr const char* kRfc7515Key =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpsQnnGQmL+YBIff\n"
    "H1136cspYG6+0iY7X1fCE9+E9LKhRANCAAR/zc4ncPbEXUGDy+5v20t7WAczNXvp\n"
    "7xO6z248e9FURcfxRM0bvZt+hyzf7bnuufSzaV1uqQskrYpGIyiFiOWt\n"
    "-----END PRIVATE KEY-----\n";

// The canonical JWK (RFC 7638 member order) of the RFC 7515 A.3 key, and its thumbprint.
TEST(Jwk, CanonicalFormAndThumbprint) {
    auto key = p256_from_pem(kRfc7515Key);
    ASSERT_TRUE(key);
    const std::string jwk = jwk_json(key->get());
    EXPECT_EQ(jwk, R"({"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
                   R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})");
    unsigned char d[32];
    SHA256(reinterpret_cast<const unsigned char*>(jwk.data()), jwk.size(), d);
    EXPECT_EQ(jwk_thumbprint(key->get()), base64url(std::string(reinterpret_cast<char*>(d), 32)));
    EXPECT_EQ(jwk_thumbprint(key->get()), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
    EXPECT_EQ(key_authorization("tok", key->get()), "tok." + jwk_thumbprint(key->get()));
}

// ES256 flattened JWS: header members, raw 64-byte signature that OpenSSL verifies.
TEST(Jws, SignsVerifiableEs256) {
    auto key = generate_p256();
    ASSERT_TRUE(key);
    auto jws = jws_sign(key->get(), "", "n0nce", "https://ca/new-acct", R"({"a":1})");
    ASSERT_TRUE(jws);
    EXPECT_TRUE(jws_verify(*jws, key->get()));
    auto doc = nlohmann::json::parse(*jws);
    auto hdr = nlohmann::json::parse(*base64url_decode(doc["protected"].get<std::string>()));
    EXPECT_EQ(hdr["alg"], "ES256");
    EXPECT_EQ(hdr["nonce"], "n0nce");
    EXPECT_EQ(hdr["url"], "https://ca/new-acct");
    EXPECT_EQ(hdr["jwk"]["kty"], "EC");
    EXPECT_FALSE(hdr.contains("kid"));
    EXPECT_EQ(base64url_decode(doc["signature"].get<std::string>())->size(), 64u);
    auto kid = jws_sign(key->get(), "https://ca/acct/1", "n", "https://ca/order", "");
    auto hdr2 = nlohmann::json::parse(
        *base64url_decode(nlohmann::json::parse(*kid)["protected"].get<std::string>()));
    EXPECT_EQ(hdr2["kid"], "https://ca/acct/1");
    EXPECT_FALSE(hdr2.contains("jwk"));
    EXPECT_EQ(nlohmann::json::parse(*kid)["payload"], "");
    // Another key, or a flipped payload, does not verify.
    auto other = generate_p256();
    EXPECT_FALSE(jws_verify(*jws, other->get()));
    std::string bad = *jws;
    bad[bad.find("payload") + 12] ^= 1;
    EXPECT_FALSE(jws_verify(bad, key->get()));
}

// The CSR carries every domain as a dNSName SAN, the first as CN, and a valid signature.
TEST(Csr, SansAndSignature) {
    auto key = generate_p256();
    auto der = make_csr({"a.example", "b.example"}, key->get());
    ASSERT_TRUE(der);
    const auto* p = reinterpret_cast<const unsigned char*>(der->data());
    X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size()));
    ASSERT_NE(req, nullptr);
    EXPECT_EQ(X509_REQ_verify(req, key->get()), 1);
    STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
    auto* names =
        static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
    ASSERT_NE(names, nullptr);
    ASSERT_EQ(sk_GENERAL_NAME_num(names), 2);
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    EXPECT_FALSE(make_csr({"bad name"}, key->get()));
    EXPECT_FALSE(make_csr({}, key->get()));
}

// RFC 8737 §3: critical id-pe-acmeIdentifier = OCTET STRING(SHA-256(key authorization)).
TEST(TlsAlpn, ChallengeCertificateExtension) {
    auto pair = make_tls_alpn_cert("a.example", "tok.thumb");
    ASSERT_TRUE(pair);
    auto certs = tls::load_certificates_pem(pair->cert_pem);
    ASSERT_TRUE(certs);
    X509* x = (*certs)[0].get();
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    const int idx = X509_get_ext_by_OBJ(x, oid, -1);
    ASN1_OBJECT_free(oid);
    ASSERT_GE(idx, 0);
    X509_EXTENSION* ext = X509_get_ext(x, idx);
    EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1);
    const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(ext);
    ASSERT_EQ(ASN1_STRING_length(v), 34);
    const unsigned char* d = ASN1_STRING_get0_data(v);
    EXPECT_EQ(d[0], 0x04);
    EXPECT_EQ(d[1], 0x20);
    unsigned char want[32];
    SHA256(reinterpret_cast<const unsigned char*>("tok.thumb"), 9, want);
    EXPECT_EQ(std::memcmp(d + 2, want, 32), 0);
    EXPECT_TRUE(tls::CertifiedKey::from_pem(pair->cert_pem, pair->key_pem));
}

// Names we request certificates for.
TEST(DnsName, Validation) {
    EXPECT_TRUE(valid_dns_name("a.example.com"));
    EXPECT_TRUE(valid_dns_name("x-1.test"));
    EXPECT_FALSE(valid_dns_name(""));
    EXPECT_FALSE(valid_dns_name("a..b"));
    EXPECT_FALSE(valid_dns_name("-a.b"));
    EXPECT_FALSE(valid_dns_name("a-.b"));
    EXPECT_FALSE(valid_dns_name("127.0.0.1"));
    EXPECT_FALSE(valid_dns_name("a/b"));
    EXPECT_FALSE(valid_dns_name(std::string(64, 'a') + ".b"));
}

}  // namespace
}  // namespace hopgate::acme
