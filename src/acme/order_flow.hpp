// One certificate order as a sans-I/O state machine (RFC 8555 §7): directory, nonce, account
// (created with a `jwk` JWS, or reused through its URL as `kid`), new order, authorizations,
// challenge response, polling, finalize with a CSR for a fresh P-256 key, certificate download.
//
// The flow never touches sockets or clocks. The driver asks for the next Action and performs it:
// send an HTTP request and feed back the response, wait the given delay, or provision a
// challenge response (HTTP-01 token or TLS-ALPN-01 certificate) and report when it is served.
// badNonce problems re-sign and resend the same request (bounded). Every poll loop is bounded by
// `max_polls`; every Retry-After is clamped to `max_retry_after`.
//
// Not thread-safe; one driver owns it.
#pragma once

#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "acme/messages.hpp"
#include "tls/ossl.hpp"

namespace hopgate::acme {

struct HttpRequest {
    std::string method;  // GET, HEAD, POST
    std::string url;
    std::string body;
    std::string content_type;  // "application/jose+json" for POSTs
    std::string accept;
};

struct HttpResponse {
    int status = 0;
    std::string content_type;
    std::string location;
    std::string replay_nonce;
    std::string retry_after;
    std::string body;
};

// A challenge the driver must answer before the flow tells the CA to validate it.
struct ChallengeTask {
    std::string domain;
    std::string type;  // "http-01" or "tls-alpn-01"
    std::string token;
    std::string key_authz;
};

struct OrderConfig {
    std::string directory_url;
    std::string account_url;  // empty: register (or look up) the account for the key
    std::string email;        // optional contact
    std::vector<std::string> domains;
    std::vector<std::string> challenge_types = {"http-01", "tls-alpn-01"};  // preference order
    int max_polls = 60;
    int max_bad_nonce = 5;
    std::chrono::seconds default_poll{1};
    std::chrono::seconds max_retry_after{30};
};

struct Action {
    enum class Kind { kSend, kWait, kProvision, kDone, kFailed };
    Kind kind = Kind::kFailed;
    HttpRequest request;           // kSend
    std::chrono::seconds delay{};  // kWait
    ChallengeTask challenge;       // kProvision
    std::string cert_chain_pem;    // kDone: leaf first
    std::string key_pem;           // kDone: the certificate's private key (PKCS#8)
    std::error_code error;         // kFailed
    std::string message;           // kFailed: one line for operators
};

class OrderFlow {
  public:
    // `account_key` must be a P-256 key; the flow keeps its own reference.
    OrderFlow(OrderConfig cfg, EVP_PKEY* account_key);

    Action start();
    Action on_response(const HttpResponse& r, std::chrono::system_clock::time_point now);
    Action on_wait_done();
    Action on_provisioned();

    // The account URL (given, or learnt from newAccount); persist it with the key.
    const std::string& account_url() const { return cfg_.account_url; }
    // The ARI endpoint when the directory offers one.
    const std::string& renewal_info_url() const { return dir_.renewal_info; }
    // Every challenge provisioned so far; the driver removes them when the flow ends.
    const std::vector<ChallengeTask>& provisioned() const { return provisioned_; }
    int bad_nonce_retries() const { return bad_nonce_total_; }

  private:
    enum class Step {
        kDirectory,
        kNonce,
        kAccount,
        kNewOrder,
        kAuthz,
        kChallenge,
        kAuthzPoll,
        kFinalize,
        kOrderPoll,
        kCertificate,
        kEnded,
    };

    Action send_signed(Step step, std::string url, std::string payload, bool use_jwk = false);
    Action resign();
    Action fail(std::error_code ec, std::string msg);
    Action fail_problem(const HttpResponse& r, const char* what);
    Action next_authz();
    Action after_authz(const Authorization& a);
    Action finalize();
    Action handle(const HttpResponse& r, std::chrono::system_clock::time_point now);
    std::chrono::seconds poll_delay(const HttpResponse& r,
                                    std::chrono::system_clock::time_point now) const;

    OrderConfig cfg_;
    tls::EvpPkeyPtr key_;
    Directory dir_;
    Step step_ = Step::kDirectory;
    Step pending_step_ = Step::kDirectory;
    std::string pending_url_;
    std::string pending_payload_;
    bool pending_jwk_ = false;
    std::string nonce_;
    int bad_nonce_ = 0;
    int bad_nonce_total_ = 0;
    int polls_ = 0;
    bool account_retried_ = false;
    std::string order_url_;
    Order order_;
    std::size_t authz_index_ = 0;
    ChallengeTask current_;
    std::string current_challenge_url_;
    std::vector<ChallengeTask> provisioned_;
    tls::EvpPkeyPtr cert_key_;
};

}  // namespace hopgate::acme
