#include "acme/order_flow.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "acme/crypto.hpp"
#include "acme/error.hpp"
#include "tls/certs.hpp"

namespace hopgate::acme {
namespace {

using json = nlohmann::json;
constexpr const char* kJose = "application/jose+json";

bool is_problem(const HttpResponse& r) {
    return r.content_type.rfind("application/problem+json", 0) == 0;
}

// Tokens end up in URL paths and file names: RFC 8555 §8.1 says base64url, at least 128 bits.
bool valid_token(std::string_view t) {
    return t.size() >= 16 && t.size() <= 256 && std::all_of(t.begin(), t.end(), [](char c) {
               return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
           });
}

}  // namespace

OrderFlow::OrderFlow(OrderConfig cfg, EVP_PKEY* account_key)
    : cfg_(std::move(cfg)), key_(tls::up_ref(account_key)) {}

Action OrderFlow::start() {
    step_ = Step::kDirectory;
    if (cfg_.domains.empty() ||
        !std::all_of(cfg_.domains.begin(), cfg_.domains.end(), valid_dns_name)) {
        return fail(Errc::kInvalidArgument, "invalid domain list");
    }
    Action a;
    a.kind = Action::Kind::kSend;
    a.request = {"GET", cfg_.directory_url, "", "", "application/json"};
    return a;
}

Action OrderFlow::fail(std::error_code ec, std::string msg) {
    step_ = Step::kEnded;
    Action a;
    a.kind = Action::Kind::kFailed;
    a.error = ec;
    a.message = std::move(msg);
    return a;
}

Action OrderFlow::fail_problem(const HttpResponse& r, const char* what) {
    std::string msg = std::string(what) + ": HTTP " + std::to_string(r.status);
    if (auto p = parse_problem(r.body)) {
        msg += " " + p->summary();
        return fail(Errc::kProblem, msg);
    }
    return fail(Errc::kHttp, msg);
}

Action OrderFlow::send_signed(Step step, std::string url, std::string payload, bool use_jwk) {
    pending_step_ = step;
    pending_url_ = std::move(url);
    pending_payload_ = std::move(payload);
    pending_jwk_ = use_jwk;
    bad_nonce_ = 0;
    return resign();
}

Action OrderFlow::resign() {
    if (nonce_.empty()) {
        step_ = Step::kNonce;
        Action a;
        a.kind = Action::Kind::kSend;
        a.request = {"HEAD", dir_.new_nonce, "", "", ""};
        return a;
    }
    auto jws = jws_sign(key_.get(), pending_jwk_ ? std::string_view() : cfg_.account_url, nonce_,
                        pending_url_, pending_payload_);
    nonce_.clear();  // single use
    if (!jws) {
        return fail(jws.error(), "signing the request failed");
    }
    step_ = pending_step_;
    Action a;
    a.kind = Action::Kind::kSend;
    a.request = {"POST", pending_url_, std::move(*jws), kJose,
                 step_ == Step::kCertificate ? "application/pem-certificate-chain" : ""};
    return a;
}

std::chrono::seconds OrderFlow::poll_delay(const HttpResponse& r,
                                           std::chrono::system_clock::time_point now) const {
    if (auto d = parse_retry_after(r.retry_after, now, cfg_.max_retry_after)) {
        return std::max(*d, std::chrono::seconds(1));
    }
    return cfg_.default_poll;
}

Action OrderFlow::on_response(const HttpResponse& r, std::chrono::system_clock::time_point now) {
    if (step_ == Step::kEnded) {
        return fail(Errc::kOrderFailed, "response after the flow ended");
    }
    if (!r.replay_nonce.empty() && r.replay_nonce.size() <= 512) {
        nonce_ = r.replay_nonce;
    }
    if (r.body.size() > kMaxDocument) {
        return fail(Errc::kTooLarge, "CA response larger than 1 MiB");
    }
    const bool signed_step = step_ != Step::kDirectory && step_ != Step::kNonce;
    if (signed_step && r.status >= 400 && is_problem(r)) {
        auto p = parse_problem(r.body);
        if (p && p->is("badNonce") && bad_nonce_ < cfg_.max_bad_nonce) {
            ++bad_nonce_;
            ++bad_nonce_total_;
            return resign();
        }
        if (p && p->is("accountDoesNotExist") && !pending_jwk_ && !account_retried_) {
            // The cached account is gone (a CA reset): register again and start a new order.
            account_retried_ = true;
            cfg_.account_url.clear();
            return send_signed(Step::kAccount, dir_.new_account,
                               cfg_.email.empty() ? std::string(R"({"termsOfServiceAgreed":true})")
                                                  : json{{"termsOfServiceAgreed", true},
                                                         {"contact", {"mailto:" + cfg_.email}}}
                                                        .dump(),
                               true);
        }
    }
    return handle(r, now);
}

Action OrderFlow::handle(const HttpResponse& r, std::chrono::system_clock::time_point now) {
    switch (step_) {
        case Step::kDirectory: {
            if (r.status != 200) {
                return fail_problem(r, "directory");
            }
            auto d = parse_directory(r.body);
            if (!d) {
                return fail(d.error(), "directory: malformed document");
            }
            dir_ = std::move(*d);
            if (cfg_.account_url.empty()) {
                json payload{{"termsOfServiceAgreed", true}};
                if (!cfg_.email.empty()) {
                    payload["contact"] = json::array({"mailto:" + cfg_.email});
                }
                return send_signed(Step::kAccount, dir_.new_account, payload.dump(), true);
            }
            return send_signed(Step::kNewOrder, dir_.new_order, [&] {
                json ids = json::array();
                for (const auto& d2 : cfg_.domains) {
                    ids.push_back({{"type", "dns"}, {"value", d2}});
                }
                return json{{"identifiers", ids}}.dump();
            }());
        }
        case Step::kNonce:
            if (nonce_.empty()) {
                return fail(Errc::kHttp, "newNonce: no Replay-Nonce header (HTTP " +
                                             std::to_string(r.status) + ")");
            }
            return resign();
        case Step::kAccount: {
            if (r.status != 200 && r.status != 201) {
                return fail_problem(r, "newAccount");
            }
            auto acc = parse_account(r.body);
            if (!acc || r.location.empty()) {
                return fail(Errc::kParse, "newAccount: malformed account or no Location");
            }
            if (acc->status != "valid") {
                return fail(Errc::kOrderFailed, "account status is " + acc->status);
            }
            cfg_.account_url = r.location;
            json ids = json::array();
            for (const auto& d : cfg_.domains) {
                ids.push_back({{"type", "dns"}, {"value", d}});
            }
            return send_signed(Step::kNewOrder, dir_.new_order, json{{"identifiers", ids}}.dump());
        }
        case Step::kNewOrder: {
            if (r.status != 201 && r.status != 200) {
                return fail_problem(r, "newOrder");
            }
            auto o = parse_order(r.body);
            if (!o || r.location.empty()) {
                return fail(Errc::kParse, "newOrder: malformed order or no Location");
            }
            order_ = std::move(*o);
            order_url_ = r.location;
            if (order_.status == "invalid") {
                return fail(Errc::kOrderFailed, "order is invalid");
            }
            if (order_.authorizations.empty() || order_.authorizations.size() > 100) {
                return fail(Errc::kParse, "newOrder: bad authorization list");
            }
            authz_index_ = 0;
            return next_authz();
        }
        case Step::kAuthz:
        case Step::kAuthzPoll: {
            if (r.status != 200) {
                return fail_problem(r, "authorization");
            }
            auto a = parse_authorization(r.body);
            if (!a) {
                return fail(a.error(), "authorization: malformed document");
            }
            if (step_ == Step::kAuthz) {
                return after_authz(*a);
            }
            if (a->status == "valid") {
                ++authz_index_;
                return next_authz();
            }
            if (a->status == "pending") {
                if (++polls_ > cfg_.max_polls) {
                    return fail(Errc::kChallengeFailed,
                                current_.domain + ": authorization still pending after polling");
                }
                Action w;
                w.kind = Action::Kind::kWait;
                w.delay = poll_delay(r, now);
                return w;
            }
            std::string why = current_.domain + ": " + current_.type + " validation failed";
            for (const auto& c : a->challenges) {
                if (c.url == current_challenge_url_ && c.error) {
                    why += " (" + c.error->summary() + ")";
                }
            }
            return fail(Errc::kChallengeFailed, why);
        }
        case Step::kChallenge: {
            if (r.status != 200) {
                return fail_problem(r, "challenge");
            }
            polls_ = 0;
            Action w;
            w.kind = Action::Kind::kWait;
            w.delay = poll_delay(r, now);
            return w;
        }
        case Step::kFinalize:
        case Step::kOrderPoll: {
            if (r.status != 200) {
                return fail_problem(r, step_ == Step::kFinalize ? "finalize" : "order");
            }
            auto o = parse_order(r.body);
            if (!o) {
                return fail(o.error(), "order: malformed document");
            }
            order_ = std::move(*o);
            if (order_.status == "valid") {
                if (order_.certificate.empty()) {
                    return fail(Errc::kParse, "order valid without a certificate URL");
                }
                return send_signed(Step::kCertificate, order_.certificate, "");
            }
            if (order_.status == "processing" || order_.status == "ready" ||
                order_.status == "pending") {
                if (++polls_ > cfg_.max_polls) {
                    return fail(Errc::kOrderFailed,
                                "order still " + order_.status + " after polling");
                }
                step_ = Step::kOrderPoll;
                Action w;
                w.kind = Action::Kind::kWait;
                w.delay = poll_delay(r, now);
                return w;
            }
            return fail(Errc::kOrderFailed,
                        "order " + order_.status +
                            (order_.error ? " (" + order_.error->summary() + ")" : std::string()));
        }
        case Step::kCertificate: {
            if (r.status != 200) {
                return fail_problem(r, "certificate");
            }
            std::string why;
            const std::string key_pem = private_key_pem(cert_key_.get());
            auto ck = tls::CertifiedKey::from_pem(r.body, key_pem, &why);
            if (!ck) {
                return fail(Errc::kParse, "certificate: " + why);
            }
            step_ = Step::kEnded;
            Action a;
            a.kind = Action::Kind::kDone;
            a.cert_chain_pem = r.body;
            a.key_pem = key_pem;
            return a;
        }
        case Step::kEnded:
            break;
    }
    return fail(Errc::kOrderFailed, "unexpected response");
}

Action OrderFlow::next_authz() {
    if (authz_index_ >= order_.authorizations.size()) {
        return finalize();
    }
    return send_signed(Step::kAuthz, order_.authorizations[authz_index_], "");
}

Action OrderFlow::after_authz(const Authorization& a) {
    if (a.status == "valid") {
        ++authz_index_;
        return next_authz();
    }
    if (a.status != "pending") {
        return fail(Errc::kChallengeFailed, a.identifier + ": authorization is " + a.status);
    }
    for (const auto& type : cfg_.challenge_types) {
        for (const auto& c : a.challenges) {
            if (c.type != type) {
                continue;
            }
            if (!valid_token(c.token)) {
                return fail(Errc::kParse, a.identifier + ": malformed challenge token");
            }
            current_ = {a.identifier, c.type, c.token, key_authorization(c.token, key_.get())};
            current_challenge_url_ = c.url;
            step_ = Step::kChallenge;
            provisioned_.push_back(current_);
            Action act;
            act.kind = Action::Kind::kProvision;
            act.challenge = current_;
            return act;
        }
    }
    return fail(Errc::kNoChallenge, a.identifier + ": the CA offers none of our challenge types");
}

Action OrderFlow::on_provisioned() {
    if (step_ != Step::kChallenge) {
        return fail(Errc::kOrderFailed, "provisioned in the wrong state");
    }
    return send_signed(Step::kChallenge, current_challenge_url_, "{}");
}

Action OrderFlow::on_wait_done() {
    if (step_ == Step::kChallenge || step_ == Step::kAuthzPoll) {
        return send_signed(Step::kAuthzPoll, order_.authorizations[authz_index_], "");
    }
    if (step_ == Step::kOrderPoll) {
        return send_signed(Step::kOrderPoll, order_url_, "");
    }
    return fail(Errc::kOrderFailed, "wait ended in the wrong state");
}

Action OrderFlow::finalize() {
    auto k = generate_p256();
    if (!k) {
        return fail(k.error(), "certificate key generation failed");
    }
    cert_key_ = std::move(*k);
    auto csr = make_csr(cfg_.domains, cert_key_.get());
    if (!csr) {
        return fail(csr.error(), "CSR construction failed");
    }
    polls_ = 0;
    return send_signed(Step::kFinalize, order_.finalize, json{{"csr", base64url(*csr)}}.dump());
}

}  // namespace hopgate::acme
