// libFuzzer target: the admin API handler fed arbitrary request bodies and query strings.
// Links: hg_admin (which brings hg_registry and hg_core); include path for nlohmann_json
// (nlohmann_json::nlohmann_json).
//
// The first input byte picks the route and a few header variants; the rest is the body (POST)
// or the query string (GET). Properties: no crash or sanitizer report; every response is a JSON
// object with a boolean "success" and an "error" field; a client mistake is never a 500.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "admin/api.hpp"
#include "registry/memory_registry.hpp"

namespace {

constexpr const char* kToken = "fuzz-admin-token-0123456789";

struct Harness {
    hopgate::registry::MemoryRegistry registry;
    hopgate::admin::AdminApi api{registry, nullptr, [] {
                                     hopgate::admin::AdminOptions o;
                                     o.api_key = kToken;
                                     return o;
                                 }()};
    Harness() { (void)registry.register_domain("known.example.com", "seed"); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Harness h;  // state persists between inputs on purpose: duplicates, rotations...
    if (size == 0) {
        return 0;
    }
    static const char* const kRoutes[] = {"register", "unregister", "rotate",
                                          "exists",   "status",     ""};
    const std::uint8_t sel = data[0];
    const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::string route = kRoutes[sel % 6];
    const bool is_get = route == "exists" || route == "status" || route.empty();

    hopgate::admin::Request req;
    req.method = (sel & 0x40) ? "PUT" : (is_get ? "GET" : "POST");
    req.target = route.empty() ? "/api/v1/admin/domains" : "/api/v1/admin/domains/" + route;
    if (is_get) {
        req.target += "?" + rest;
    } else {
        req.body = rest;
    }
    req.authorization = (sel & 0x80) ? "Bearer wrong" : std::string("Bearer ") + kToken;
    req.content_type = (sel & 0x20) ? "text/plain" : "application/json";
    req.remote = hopgate::admin::parse_ip("127.0.0.1");

    const auto resp = h.api.handle(req);
    if (resp.status == 500 || resp.status < 200 || resp.status > 599) {
        std::abort();
    }
    const auto j = nlohmann::json::parse(resp.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("success") ||
        !j["success"].is_boolean() || !j.contains("error")) {
        std::abort();
    }
    return 0;
}
