// The HTTPS context's TLS-ALPN-01 behaviour (tls::CertStore challenge certificates and the
// acme-tls/1 ALPN handling in tls/context.cpp), with in-memory handshakes.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "acme/crypto.hpp"
#include "tls/context.hpp"

namespace hopgate::acme {
namespace {

struct Outcome {
    bool ok = false;
    std::string alpn;
    tls::X509Ptr peer;
};

// One handshake between a fresh client SSL (offering `protos`, SNI `name`) and `server`.
Outcome handshake(const tls::ContextPtr& server, const std::string& name,
                  const std::vector<std::string>& protos) {
    tls::SslCtxPtr cctx(SSL_CTX_new(TLS_client_method()));
    std::string wire;
    for (const auto& p : protos) {
        wire += static_cast<char>(p.size());
        wire += p;
    }
    SSL_CTX_set_alpn_protos(cctx.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
    tls::SslPtr c(SSL_new(cctx.get()));
    tls::SslPtr s(SSL_new(server->native()));
    BIO* cb = nullptr;
    BIO* sb = nullptr;
    BIO_new_bio_pair(&cb, 0, &sb, 0);
    SSL_set_bio(c.get(), cb, cb);
    SSL_set_bio(s.get(), sb, sb);
    SSL_set_tlsext_host_name(c.get(), name.c_str());
    SSL_set_connect_state(c.get());
    SSL_set_accept_state(s.get());
    Outcome out;
    for (int i = 0; i < 20; ++i) {
        const int rc = SSL_do_handshake(c.get());
        const int rs = SSL_do_handshake(s.get());
        if (rc == 1 && rs == 1) {
            out.ok = true;
            break;
        }
        const int ec = SSL_get_error(c.get(), rc);
        const int es = SSL_get_error(s.get(), rs);
        if ((rc != 1 && ec != SSL_ERROR_WANT_READ) || (rs != 1 && es != SSL_ERROR_WANT_READ)) {
            break;
        }
    }
    const unsigned char* a = nullptr;
    unsigned n = 0;
    SSL_get0_alpn_selected(c.get(), &a, &n);
    out.alpn.assign(reinterpret_cast<const char*>(a), n);
    out.peer.reset(SSL_get1_peer_certificate(c.get()));
    return out;
}

std::shared_ptr<const tls::CertifiedKey> certified(const tls::PemPair& p) {
    return *tls::CertifiedKey::from_pem(p.cert_pem, p.key_pem);
}

// acme-tls/1 gets the challenge certificate; everyone else the normal one and never acme-tls/1.
TEST(TlsAlpn01, ServerAnswersOnlyValidations) {
    auto store = std::make_shared<tls::CertStore>();
    auto normal = certified(tls::generate_self_signed({"a.example"}));
    auto challenge = certified(*make_tls_alpn_cert("a.example", "tok.thumb"));
    store->set_default(normal);
    store->set_challenge("a.example", challenge);
    auto ctx =
        tls::make_server_context(store, tls::Protocol::kTls, {"http/1.1", tls::kAlpnAcmeTls});

    auto v = handshake(ctx, "a.example", {"acme-tls/1"});
    ASSERT_TRUE(v.ok);
    EXPECT_EQ(v.alpn, "acme-tls/1");
    EXPECT_EQ(X509_cmp(v.peer.get(), challenge->leaf()), 0);

    auto h = handshake(ctx, "a.example", {"http/1.1"});
    ASSERT_TRUE(h.ok);
    EXPECT_EQ(h.alpn, "http/1.1");
    EXPECT_EQ(X509_cmp(h.peer.get(), normal->leaf()), 0);

    // A validation for a name without a challenge certificate fails the handshake.
    EXPECT_FALSE(handshake(ctx, "b.example", {"acme-tls/1"}).ok);
    // Withdrawn: same.
    store->remove_challenge("a.example");
    EXPECT_FALSE(handshake(ctx, "a.example", {"acme-tls/1"}).ok);

    // A context without acme-tls/1 in its list never negotiates it.
    auto plain = tls::make_server_context(store, tls::Protocol::kTls, {"http/1.1"});
    store->set_challenge("a.example", challenge);
    auto p = handshake(plain, "a.example", {"acme-tls/1"});
    EXPECT_FALSE(p.ok && p.alpn == "acme-tls/1");
}

}  // namespace
}  // namespace hopgate::acme
