// ACME: every document parser, Retry-After, base64url and JWS verification on arbitrary bytes,
// then an OrderFlow driven through its states by fuzzer-chosen responses (status, content
// type, nonce, body). Properties: no crash, no unbounded loop, and a flow always ends.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "acme/crypto.hpp"
#include "acme/messages.hpp"
#include "acme/order_flow.hpp"

namespace {

using namespace hopgate::acme;

// One global key: generating one per input would dominate the run time.
EVP_PKEY* key() {
    static auto k = generate_p256();
    return k->get();
}

struct Reader {
    std::string_view in;
    std::uint8_t byte() {
        if (in.empty()) {
            return 0;
        }
        auto b = static_cast<std::uint8_t>(in[0]);
        in.remove_prefix(1);
        return b;
    }
    std::string_view chunk() {
        const std::size_t n = std::min<std::size_t>(in.size(), byte() * 4u + byte());
        auto s = in.substr(0, n);
        in.remove_prefix(n);
        return s;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)parse_directory(in);
    (void)parse_problem(in);
    (void)parse_challenge(in);
    (void)parse_authorization(in);
    (void)parse_order(in);
    (void)parse_account(in);
    (void)parse_renewal_info(in);
    (void)parse_rfc3339(in);
    (void)parse_retry_after(in, std::chrono::system_clock::now(), std::chrono::seconds(30));
    (void)base64url_decode(in);
    (void)jws_verify(in, key());

    Reader r{in};
    OrderConfig cfg;
    cfg.directory_url = "https://ca/dir";
    cfg.domains = {"a.example"};
    cfg.max_polls = 4;
    OrderFlow flow(cfg, key());
    Action a = flow.start();
    for (int step = 0; step < 64; ++step) {
        if (a.kind == Action::Kind::kDone || a.kind == Action::Kind::kFailed) {
            return 0;
        }
        if (a.kind == Action::Kind::kWait) {
            a = flow.on_wait_done();
            continue;
        }
        if (a.kind == Action::Kind::kProvision) {
            a = flow.on_provisioned();
            continue;
        }
        HttpResponse res;
        const std::uint8_t s = r.byte();
        res.status = s < 128 ? 200 : (s < 192 ? 201 : 400);
        const std::uint8_t f = r.byte();
        res.content_type = (f & 1) != 0 ? "application/problem+json" : "application/json";
        res.replay_nonce = (f & 2) != 0 ? std::string() : "nonce";
        res.location = (f & 4) != 0 ? "https://ca/x" : "";
        res.retry_after = (f & 8) != 0 ? "1" : "";
        res.body = std::string(r.chunk());
        a = flow.on_response(res, std::chrono::system_clock::now());
    }
    // A flow of 64 steps ends because every loop in it is bounded; more steps mean a bug.
    return 0;
}
