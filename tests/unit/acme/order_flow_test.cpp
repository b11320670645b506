#include "acme/order_flow.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "acme/crypto.hpp"
#include "acme/error.hpp"
#include "tls/certs.hpp"

namespace hopgate::acme {
namespace {

using json = nlohmann::json;
using Kind = Action::Kind;

const auto kNow = std::chrono::system_clock::from_time_t(1700000000);
constexpr const char* kToken = "tok_0123456789abcdefghij";

HttpResponse res(int status, std::string body, std::string location = "",
                 std::string ctype = "application/json") {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.location = std::move(location);
    r.content_type = std::move(ctype);
    static int n = 0;
    r.replay_nonce = "nonce" + std::to_string(++n);
    return r;
}

// The directory comes without a Replay-Nonce, so the flow must fetch one first.
HttpResponse directory() {
    auto r = res(
        200,
        R"({"newNonce":"https://ca/nonce","newAccount":"https://ca/acct","newOrder":"https://ca/order"})");
    r.replay_nonce.clear();
    return r;
}

// Decodes the payload of a JWS request body.
json payload_of(const HttpRequest& r) {
    auto doc = json::parse(r.body);
    auto p = base64url_decode(doc["payload"].get<std::string>());
    return p->empty() ? json() : json::parse(*p);
}

class OrderFlowTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto k = generate_p256();
        key_ = std::move(*k);
        cfg_.directory_url = "https://ca/dir";
        cfg_.domains = {"a.example"};
    }
    // Walks directory -> nonce -> account -> order -> authz -> provision; returns the flow at
    // the point where the challenge was provisioned.
    Action to_provision(OrderFlow& f) {
        Action a = f.start();
        EXPECT_EQ(a.request.url, "https://ca/dir");
        a = f.on_response(directory(), kNow);
        EXPECT_EQ(a.request.method, "HEAD");  // no nonce yet
        a = f.on_response(res(200, ""), kNow);
        EXPECT_EQ(a.request.url, "https://ca/acct");
        EXPECT_TRUE(jws_verify(a.request.body, key_.get()));
        EXPECT_EQ(payload_of(a.request)["termsOfServiceAgreed"], true);
        a = f.on_response(res(201, R"({"status":"valid"})", "https://ca/acct/1"), kNow);
        EXPECT_EQ(a.request.url, "https://ca/order");
        EXPECT_EQ(payload_of(a.request)["identifiers"][0]["value"], "a.example");
        a = f.on_response(res(201, R"({"status":"pending","authorizations":["https://ca/authz/1"],
            "finalize":"https://ca/fin"})",
                              "https://ca/order/1"),
                          kNow);
        EXPECT_EQ(a.request.url, "https://ca/authz/1");
        a = f.on_response(
            res(200,
                std::string(R"({"status":"pending","identifier":{"type":"dns","value":"a.example"},
            "challenges":[{"type":"dns-01","url":"https://ca/ch/0","token":")") +
                    kToken + R"("},
            {"type":"http-01","url":"https://ca/ch/1","token":")" +
                    kToken + R"("}]})"),
            kNow);
        return a;
    }
    tls::EvpPkeyPtr key_;
    OrderConfig cfg_;
};

// The whole happy path, with kid after the account, badNonce retried, Retry-After honoured.
TEST_F(OrderFlowTest, IssuesCertificate) {
    OrderFlow f(cfg_, key_.get());
    Action a = to_provision(f);
    ASSERT_EQ(a.kind, Kind::kProvision);
    EXPECT_EQ(a.challenge.type, "http-01");
    EXPECT_EQ(a.challenge.key_authz, std::string(kToken) + "." + jwk_thumbprint(key_.get()));
    a = f.on_provisioned();
    EXPECT_EQ(a.request.url, "https://ca/ch/1");
    EXPECT_EQ(payload_of(a.request), json::object());
    // badNonce: the same request again, re-signed with the nonce of the error response.
    a = f.on_response(res(400, R"({"type":"urn:ietf:params:acme:error:badNonce"})", "",
                          "application/problem+json"),
                      kNow);
    EXPECT_EQ(a.request.url, "https://ca/ch/1");
    EXPECT_EQ(f.bad_nonce_retries(), 1);
    auto r = res(200, R"({"type":"http-01","url":"https://ca/ch/1","status":"processing"})");
    r.retry_after = "4";
    a = f.on_response(r, kNow);
    ASSERT_EQ(a.kind, Kind::kWait);
    EXPECT_EQ(a.delay, std::chrono::seconds(4));
    a = f.on_wait_done();
    EXPECT_EQ(a.request.url, "https://ca/authz/1");
    a = f.on_response(
        res(200, R"({"status":"valid","identifier":{"type":"dns","value":"a.example"}})"), kNow);
    EXPECT_EQ(a.request.url, "https://ca/fin");
    EXPECT_TRUE(payload_of(a.request).contains("csr"));
    auto hdr =
        json::parse(*base64url_decode(json::parse(a.request.body)["protected"].get<std::string>()));
    EXPECT_EQ(hdr["kid"], "https://ca/acct/1");
    a = f.on_response(res(200, R"({"status":"processing","finalize":"https://ca/fin"})"), kNow);
    ASSERT_EQ(a.kind, Kind::kWait);
    a = f.on_wait_done();
    EXPECT_EQ(a.request.url, "https://ca/order/1");
    a = f.on_response(res(200, R"({"status":"valid","finalize":"https://ca/fin",
        "certificate":"https://ca/cert/1"})"),
                      kNow);
    EXPECT_EQ(a.request.url, "https://ca/cert/1");
    EXPECT_EQ(a.request.accept, "application/pem-certificate-chain");
    // The CA would sign the CSR; here any certificate for the flow's key will do: the flow
    // checks that the chain matches the key it generated, so a foreign one must be refused.
    auto foreign = tls::generate_self_signed({"a.example"});
    a = f.on_response(res(200, foreign.cert_pem, "", "application/pem-certificate-chain"), kNow);
    EXPECT_EQ(a.kind, Kind::kFailed);
    EXPECT_EQ(a.error, make_error_code(Errc::kParse));
    EXPECT_EQ(f.account_url(), "https://ca/acct/1");
    EXPECT_EQ(f.provisioned().size(), 1u);
}

// An invalid authorization fails with the CA's reason in the message.
TEST_F(OrderFlowTest, ChallengeFailureIsReported) {
    OrderFlow f(cfg_, key_.get());
    Action a = to_provision(f);
    a = f.on_provisioned();
    a = f.on_response(
        res(200, R"({"type":"http-01","url":"https://ca/ch/1","status":"processing"})"), kNow);
    a = f.on_wait_done();
    a = f.on_response(
        res(200, R"({"status":"invalid","identifier":{"type":"dns","value":"a.example"},
        "challenges":[{"type":"http-01","url":"https://ca/ch/1","status":"invalid",
        "error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused"}}]})"),
        kNow);
    ASSERT_EQ(a.kind, Kind::kFailed);
    EXPECT_EQ(a.error, make_error_code(Errc::kChallengeFailed));
    EXPECT_NE(a.message.find("connection: refused"), std::string::npos) << a.message;
}

// A known account is reused with kid; the CA having forgotten it triggers one re-registration.
TEST_F(OrderFlowTest, ReusesAccountAndRecoversFromUnknownAccount) {
    cfg_.account_url = "https://ca/acct/old";
    OrderFlow f(cfg_, key_.get());
    Action a = f.start();
    a = f.on_response(directory(), kNow);
    a = f.on_response(res(200, ""), kNow);
    EXPECT_EQ(a.request.url, "https://ca/order");
    a = f.on_response(res(400, R"({"type":"urn:ietf:params:acme:error:accountDoesNotExist"})", "",
                          "application/problem+json"),
                      kNow);
    EXPECT_EQ(a.request.url, "https://ca/acct");
    a = f.on_response(res(200, R"({"status":"valid"})", "https://ca/acct/2"), kNow);
    EXPECT_EQ(a.request.url, "https://ca/order");
    EXPECT_EQ(f.account_url(), "https://ca/acct/2");
}

// Malformed or hostile CA answers end the flow with an error, never a crash or a loop.
TEST_F(OrderFlowTest, MalformedResponsesFail) {
    for (const std::string& body : {std::string("{"), std::string("[]"), std::string("null"),
                                    std::string(R"({"newNonce":1})")}) {
        OrderFlow f(cfg_, key_.get());
        (void)f.start();
        EXPECT_EQ(f.on_response(res(200, body), kNow).kind, Kind::kFailed);
    }
    OrderFlow f(cfg_, key_.get());
    (void)f.start();
    (void)f.on_response(directory(), kNow);
    auto r = res(200, "");
    r.replay_nonce.clear();
    auto a = f.on_response(r, kNow);
    EXPECT_EQ(a.kind, Kind::kFailed);
    // badNonce forever: bounded.
    OrderFlow g(cfg_, key_.get());
    (void)g.start();
    (void)g.on_response(directory(), kNow);
    a = g.on_response(res(200, ""), kNow);
    int n = 0;
    while (a.kind == Kind::kSend && n < 100) {
        a = g.on_response(res(400, R"({"type":"urn:ietf:params:acme:error:badNonce"})", "",
                              "application/problem+json"),
                          kNow);
        ++n;
    }
    EXPECT_EQ(a.kind, Kind::kFailed);
    EXPECT_LE(n, cfg_.max_bad_nonce + 1);
}

// Hostile challenge tokens (path characters) are refused before anything is served.
TEST_F(OrderFlowTest, RejectsBadToken) {
    OrderFlow f(cfg_, key_.get());
    Action a = f.start();
    a = f.on_response(directory(), kNow);
    a = f.on_response(res(200, ""), kNow);
    a = f.on_response(res(201, R"({"status":"valid"})", "https://ca/acct/1"), kNow);
    a = f.on_response(res(201, R"({"status":"pending","authorizations":["https://ca/authz/1"],
        "finalize":"https://ca/fin"})",
                          "https://ca/order/1"),
                      kNow);
    a = f.on_response(
        res(200, R"({"status":"pending","identifier":{"type":"dns","value":"a.example"},
        "challenges":[{"type":"http-01","url":"https://ca/ch/1","token":"../../etc/passwd_xxxxxxxx"}]})"),
        kNow);
    EXPECT_EQ(a.kind, Kind::kFailed);
}

}  // namespace
}  // namespace hopgate::acme
