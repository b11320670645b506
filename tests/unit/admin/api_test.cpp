// Admin API handlers, request -> response, over a registry fake: routes, status codes, auth,
// allow-list, hooks, and hostile input (never a 500 for a client mistake).
#include "admin/api.hpp"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <vector>

#include "fake_registry.hpp"
#include "registry/error.hpp"
#include "registry/key.hpp"

namespace hopgate::admin {
namespace {

using nlohmann::json;
constexpr const char* kToken = "admin-token-0123456789abcdef";

struct RecordingTunnels : TunnelDirectory {
    std::vector<std::string> dropped;
    std::vector<std::string> asked;                    // live_tunnels() calls
    std::map<std::string, std::vector<LiveTunnel>> live;
    bool busy = false;                                 // live_tunnels() cannot answer
    void disconnect_domain(std::string_view d, bool) override { dropped.emplace_back(d); }
    std::optional<std::vector<LiveTunnel>> live_tunnels(std::string_view d) override {
        asked.emplace_back(d);
        if (busy) {
            return std::nullopt;
        }
        auto it = live.find(std::string(d));
        return it == live.end() ? std::vector<LiveTunnel>{} : it->second;
    }
};

class AdminApiTest : public ::testing::Test {
  protected:
    AdminApiTest() : api_(reg_, &tunnels_, options()) {}
    static AdminOptions options() {
        AdminOptions o;
        o.api_key = kToken;
        o.auth_limiter.max_failures = 1000000;  // the limiter has its own test
        return o;
    }

    Response call(const std::string& method, const std::string& target,
                  const std::string& body = "",
                  const std::string& auth = std::string("Bearer ") + kToken,
                  const std::string& ct = "application/json") {
        Request r;
        r.method = method;
        r.target = target;
        r.body = body;
        r.authorization = auth;
        r.content_type = ct;
        r.remote = parse_ip("127.0.0.1");
        return api_.handle(r);
    }
    Response post(const std::string& route, const json& body) {
        return call("POST", "/api/v1/admin/domains/" + route, body.dump());
    }
    static json body_of(const Response& r) {
        auto j = json::parse(r.body, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.body;
        EXPECT_TRUE(j.is_object()) << r.body;
        EXPECT_TRUE(j.contains("success") && j["success"].is_boolean()) << r.body;
        EXPECT_TRUE(j.contains("error")) << r.body;
        EXPECT_EQ(r.content_type, "application/json");
        if (j.value("success", false)) {
            EXPECT_TRUE(j["error"].is_null()) << r.body;
        } else {
            EXPECT_TRUE(j["error"].is_string() && !j["error"].get<std::string>().empty()) << r.body;
        }
        return j;
    }
    std::string header(const Response& r, const std::string& name) {
        for (const auto& [k, v] : r.headers) {
            if (k == name) {
                return v;
            }
        }
        return "";
    }
    std::string register_ok(const std::string& domain) {
        auto r = post("register", {{"domain", domain}, {"memo", "m"}});
        EXPECT_EQ(r.status, 201) << r.body;
        return body_of(r).value("client_api_key", "");
    }

    testing::FakeRegistry reg_;
    RecordingTunnels tunnels_;
    AdminApi api_;
};

// Register answers 201 with the normalised domain and a one-time 64-hex key.
TEST_F(AdminApiTest, RegisterCreated) {
    auto r = post("register", {{"domain", " App.Example.com "}, {"memo", "team a"}});
    ASSERT_EQ(r.status, 201) << r.body;
    auto j = body_of(r);
    EXPECT_TRUE(j["success"].get<bool>());
    EXPECT_EQ(j["domain"], "app.example.com");
    EXPECT_EQ(j["memo"], "team a");
    EXPECT_TRUE(registry::is_well_formed_key(j["client_api_key"].get<std::string>()));
    EXPECT_EQ(j["created_at"].get<std::string>().size(), 24u);  // 2025-01-01T00:00:00.000Z
    EXPECT_TRUE(reg_.validate("app.example.com", j["client_api_key"].get<std::string>()).ok());
    // Memo is optional, null is accepted as absent.
    EXPECT_EQ(post("register", {{"domain", "b.example.com"}}).status, 201);
    EXPECT_EQ(post("register", {{"domain", "c.example.com"}, {"memo", nullptr}}).status, 201);
}

// Duplicate 409; invalid domains 400 with the reason; bad field types 400.
TEST_F(AdminApiTest, RegisterErrors) {
    register_ok("dup.example.com");
    auto dup = post("register", {{"domain", "DUP.example.com"}});
    EXPECT_EQ(dup.status, 409);
    EXPECT_EQ(body_of(dup)["error"], "domain already registered");
    auto bad = post("register", {{"domain", "localhost"}});
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(body_of(bad)["error"], "invalid domain: must contain a dot");
    EXPECT_EQ(post("register", {{"domain", "a.com:443"}}).status, 400);
    EXPECT_EQ(post("register", json::object()).status, 400);
    EXPECT_EQ(body_of(post("register", json::object()))["error"], "missing field 'domain'");
    EXPECT_EQ(post("register", {{"domain", 5}}).status, 400);
    EXPECT_EQ(post("register", {{"domain", json::array({"a.com"})}}).status, 400);
    EXPECT_EQ(post("register", {{"domain", "m.example.com"}, {"memo", 7}}).status, 400);
    EXPECT_EQ(
        post("register", {{"domain", "m.example.com"}, {"memo", std::string(2000, 'x')}}).status,
        400);
    EXPECT_EQ(post("register", {{"domain", "m.example.com"}, {"memo", "line\nbreak"}}).status, 400);
}

// Unicode, control characters and SQL metacharacters in domains are 400s, never stored.
TEST_F(AdminApiTest, HostileDomains) {
    const std::vector<std::string> names = {
        "b\xc3\xbc"
        "cher.de",
        "\xe2\x80\xae"
        "moc.evil",
        "a\x01"
        "b.com",
        std::string("a\0b.com", 7),
        "a.com'; DROP TABLE domains;--",
        "a.com\" OR \"1\"=\"1",
        "%00.com",
        "a.com\r\nX-Injected: 1",
        "../../etc/passwd",
        "*.example.com",
        std::string(300, 'a') + ".com"};
    for (const auto& n : names) {
        auto r = post("register", {{"domain", n}});
        EXPECT_EQ(r.status, 400) << n;
        body_of(r);
    }
    EXPECT_EQ(reg_.list({})->total, 0);
    // Raw invalid UTF-8 inside the JSON text is malformed JSON: 400 as well.
    EXPECT_EQ(call("POST", "/api/v1/admin/domains/register", "{\"domain\":\"\xff.com\"}").status,
              400);
    // A memo with SQL and quotes is data.
    auto ok =
        post("register", {{"domain", "sql.example.com"}, {"memo", "'); DROP TABLE domains;--"}});
    EXPECT_EQ(ok.status, 201);
    EXPECT_EQ(body_of(ok)["memo"], "'); DROP TABLE domains;--");
}

// Unregister needs the domain's own key: wrong 403, malformed 400, unknown 404; the hook runs
// only on success.
TEST_F(AdminApiTest, Unregister) {
    const std::string key = register_ok("u.example.com");
    auto wrong =
        post("unregister", {{"domain", "u.example.com"}, {"client_api_key", std::string(64, 'a')}});
    EXPECT_EQ(wrong.status, 403);
    body_of(wrong);
    EXPECT_EQ(post("unregister", {{"domain", "u.example.com"}, {"client_api_key", "short"}}).status,
              400);
    EXPECT_EQ(post("unregister", {{"domain", "u.example.com"}}).status, 400);
    EXPECT_TRUE(tunnels_.dropped.empty());
    auto ok = post("unregister", {{"domain", "U.example.com"}, {"client_api_key", key}});
    EXPECT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(body_of(ok)["domain"], "u.example.com");
    EXPECT_EQ(tunnels_.dropped, std::vector<std::string>{"u.example.com"});
    EXPECT_EQ(post("unregister", {{"domain", "u.example.com"}, {"client_api_key", key}}).status,
              404);
}

// Rotation returns a new key, drops live tunnels, and 404s for unknown domains.
TEST_F(AdminApiTest, Rotate) {
    const std::string old_key = register_ok("r.example.com");
    auto r = post("rotate", {{"domain", "r.example.com"}});
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = body_of(r);
    const std::string new_key = j["client_api_key"];
    EXPECT_NE(new_key, old_key);
    EXPECT_TRUE(reg_.validate("r.example.com", new_key).ok());
    EXPECT_EQ(tunnels_.dropped, std::vector<std::string>{"r.example.com"});
    EXPECT_EQ(post("rotate", {{"domain", "nope.example.com"}}).status, 404);
    EXPECT_EQ(tunnels_.dropped.size(), 1u);
}

// exists / status by query parameter, percent-decoded; unknown status is 404.
TEST_F(AdminApiTest, ExistsAndStatus) {
    register_ok("q.example.com");
    auto e = call("GET", "/api/v1/admin/domains/exists?domain=Q.Example.com");
    ASSERT_EQ(e.status, 200);
    EXPECT_EQ(body_of(e)["exists"], true);
    auto e2 = call("GET", "/api/v1/admin/domains/exists?x=1&domain=%20other.example.com%20");
    EXPECT_EQ(body_of(e2)["exists"], false);
    EXPECT_EQ(body_of(e2)["domain"], "other.example.com");
    auto s = call("GET", "/api/v1/admin/domains/status?domain=q.example.com");
    ASSERT_EQ(s.status, 200);
    auto j = body_of(s);
    EXPECT_EQ(j["domain"], "q.example.com");
    EXPECT_EQ(j["memo"], "m");
    EXPECT_FALSE(j.contains("client_api_key"));
    EXPECT_EQ(j["id"].get<std::string>().size(), 36u);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/status?domain=ghost.example.com").status, 404);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/status").status, 400);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/exists?domain=%zz").status, 400);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/exists?domain=%4").status, 400);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/exists?domain=a%00.com").status, 400);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/exists?domain=a%27--.com").status, 400);
}

// GET /domains/tunnels lists the directory's live tunnels of a registered domain, with an RFC
// 3339 "since"; unregistered domains are 404 (the directory is not asked), a busy gateway 503.
TEST_F(AdminApiTest, LiveTunnels) {
    register_ok("t.example.com");
    register_ok("idle.example.com");
    tunnels_.live["t.example.com"] = {
        {.transport = "dtls", .peer = "192.0.2.7:40000", .since_unix_ms = 1'796'000'000'123,
         .streams_open = 3, .rtt_ms = 12.5},
        {.transport = "tls", .peer = "[2001:db8::1]:5000", .since_unix_ms = 0,
         .streams_open = 0, .rtt_ms = 0}};
    auto r = call("GET", "/api/v1/admin/domains/tunnels?domain=T.Example.com");
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = body_of(r);
    EXPECT_EQ(j["domain"], "t.example.com");
    ASSERT_EQ(j["tunnels"].size(), 2u);
    EXPECT_EQ(j["tunnels"][0]["transport"], "dtls");
    EXPECT_EQ(j["tunnels"][0]["peer"], "192.0.2.7:40000");
    EXPECT_EQ(j["tunnels"][0]["since"], "2026-11-30T00:53:20.123Z");
    EXPECT_EQ(j["tunnels"][0]["streams_open"], 3);
    EXPECT_DOUBLE_EQ(j["tunnels"][0]["rtt_ms"].get<double>(), 12.5);
    EXPECT_EQ(j["tunnels"][1]["transport"], "tls");
    EXPECT_EQ(j["tunnels"][1]["since"], "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(tunnels_.asked.back(), "t.example.com");

    auto idle = call("GET", "/api/v1/admin/domains/tunnels?domain=idle.example.com");
    ASSERT_EQ(idle.status, 200);
    EXPECT_TRUE(body_of(idle)["tunnels"].empty());

    const auto asked = tunnels_.asked.size();
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/tunnels?domain=ghost.example.com").status, 404);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/tunnels").status, 400);
    EXPECT_EQ(call("POST", "/api/v1/admin/domains/tunnels?domain=t.example.com").status, 405);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/tunnels?domain=t.example.com", "", "").status,
              401);
    EXPECT_EQ(tunnels_.asked.size(), asked);

    tunnels_.busy = true;
    auto busy = call("GET", "/api/v1/admin/domains/tunnels?domain=t.example.com");
    EXPECT_EQ(busy.status, 503);
    EXPECT_FALSE(header(busy, "Retry-After").empty());
}

// The list pages with limit/after and reports total and next_after.
TEST_F(AdminApiTest, ListPaged) {
    for (int i = 0; i < 5; ++i) {
        register_ok("l" + std::to_string(i) + ".example.com");
    }
    auto p1 = call("GET", "/api/v1/admin/domains?limit=2");
    ASSERT_EQ(p1.status, 200) << p1.body;
    auto j1 = body_of(p1);
    EXPECT_EQ(j1["domains"].size(), 2u);
    EXPECT_EQ(j1["total"], 5);
    EXPECT_EQ(j1["next_after"], "l1.example.com");
    auto p3 = call("GET", "/api/v1/admin/domains/?limit=2&after=l3.example.com");
    auto j3 = body_of(p3);
    EXPECT_EQ(j3["domains"].size(), 1u);
    EXPECT_TRUE(j3["next_after"].is_null());
    EXPECT_EQ(j3["domains"][0]["domain"], "l4.example.com");
    EXPECT_EQ(body_of(call("GET", "/api/v1/admin/domains"))["domains"].size(), 5u);
    for (const char* bad : {"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=99999999999",
                            "limit=", "after=A%20B", "after=x'--"}) {
        auto r = call("GET", std::string("/api/v1/admin/domains?") + bad);
        EXPECT_EQ(r.status, 400) << bad;
        body_of(r);
    }
}

// Missing, malformed and wrong tokens are 401 with WWW-Authenticate, before any routing.
TEST_F(AdminApiTest, Authentication) {
    for (const std::string& auth : std::vector<std::string>{
             "", "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ",
             "Bearer wrong-token-0123456789abcdef", "bearer admin-token",
             std::string("Bearer ") + kToken + "x", "Token " + std::string(kToken)}) {
        for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
                 {"POST", "/api/v1/admin/domains/register"},
                 {"GET", "/api/v1/admin/domains"},
                 {"GET", "/api/v1/admin/no-such-route"},
                 {"DELETE", "/api/v1/admin/domains"}}) {
            auto r = call(method, target, "{\"domain\":\"a.example.com\"}", auth);
            EXPECT_EQ(r.status, 401) << auth << " " << target;
            EXPECT_EQ(header(r, "WWW-Authenticate"), "Bearer realm=\"hopgate-admin\"");
            body_of(r);
        }
    }
    EXPECT_EQ(reg_.calls.load(), 0);
    // Scheme is case-insensitive, surrounding spaces are ignored.
    EXPECT_EQ(
        call("GET", "/api/v1/admin/domains", "", std::string("bEaReR   ") + kToken + "  ").status,
        200);
}

// Wrong methods are 405 with Allow; unknown routes 404; only /api/v1/admin/ is handled.
TEST_F(AdminApiTest, MethodsAndRoutes) {
    auto r = call("GET", "/api/v1/admin/domains/register");
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(header(r, "Allow"), "POST");
    body_of(r);
    EXPECT_EQ(header(call("POST", "/api/v1/admin/domains/exists", "{}"), "Allow"), "GET");
    for (const char* m : {"PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", ""}) {
        EXPECT_EQ(call(m, "/api/v1/admin/domains/rotate", "{}").status, 405) << m;
    }
    EXPECT_EQ(call("GET", "/api/v1/admin/domainsX").status, 404);
    EXPECT_EQ(call("GET", "/api/v1/admin/domains/exists/extra").status, 404);
    EXPECT_EQ(call("GET", "/api/v1/admin/").status, 404);
    EXPECT_EQ(call("GET", "/other").status, 404);
    EXPECT_TRUE(AdminApi::is_admin_target("/api/v1/admin/domains"));
    EXPECT_FALSE(AdminApi::is_admin_target("/api/v1/administrator"));
    EXPECT_FALSE(AdminApi::is_admin_target("/"));
}

// Content type, size, JSON shape: 415, 413, 400 — and never a registry call.
TEST_F(AdminApiTest, BodyChecks) {
    const std::string target = "/api/v1/admin/domains/register";
    const std::string good = "{\"domain\":\"b.example.com\"}";
    EXPECT_EQ(call("POST", target, good, std::string("Bearer ") + kToken, "").status, 415);
    EXPECT_EQ(call("POST", target, good, std::string("Bearer ") + kToken, "text/plain").status,
              415);
    EXPECT_EQ(
        call("POST", target, good, std::string("Bearer ") + kToken, "application/jsonx").status,
        415);
    EXPECT_EQ(call("POST", target, std::string(64 * 1024 + 1, ' ')).status, 413);
    EXPECT_EQ(call("POST", target, std::string(10 * 1024 * 1024, '[')).status, 413);
    for (const std::string& bad :
         {std::string(""), std::string("not json"), std::string("{\"domain\":"), std::string("[]"),
          std::string("\"a.example.com\""), std::string("null"), std::string("123"),
          std::string("{\"domain\":\"a.com\"} trailing"),
          std::string(1000, '[') + std::string(1000, ']'),
          std::string("{\"a\":") + std::string(17, '[') + std::string(17, ']') + "}",
          std::string("{\"domain\":\"a\\u0000.com\"}"), std::string("\xef\xbb\xbf{}"),
          std::string("{'domain':'a.com'}")}) {
        auto r = call("POST", target, bad);
        EXPECT_EQ(r.status, 400) << bad.substr(0, 40);
        body_of(r);
    }
    EXPECT_EQ(reg_.calls.load(), 0);
    EXPECT_EQ(call("POST", target, good, std::string("Bearer ") + kToken,
                   "Application/JSON; charset=utf-8")
                  .status,
              201);
    // Exactly at the limit is fine (then it is the JSON that decides).
    std::string padded = good + std::string(64 * 1024 - good.size(), ' ');
    EXPECT_EQ(call("POST", target, padded).status, 409);
    EXPECT_EQ(api_.payload_too_large().status, 413);
}

// A database outage is 503 with Retry-After; unexpected database errors are 500, the only ones.
TEST_F(AdminApiTest, DatabaseOutage) {
    reg_.fail_with = registry::Errc::kDbUnavailable;
    for (const auto& r : {post("register", {{"domain", "o.example.com"}}),
                          call("GET", "/api/v1/admin/domains/exists?domain=o.example.com"),
                          call("GET", "/api/v1/admin/domains")}) {
        EXPECT_EQ(r.status, 503);
        EXPECT_EQ(header(r, "Retry-After"), "5");
        body_of(r);
    }
    reg_.fail_with = registry::Errc::kOverloaded;
    EXPECT_EQ(post("rotate", {{"domain", "o.example.com"}}).status, 503);
    reg_.fail_with = registry::Errc::kDbError;
    EXPECT_EQ(post("rotate", {{"domain", "o.example.com"}}).status, 500);
    EXPECT_TRUE(tunnels_.dropped.empty());
}

// Empty admin key disables the API (404 everywhere); short keys are a configuration error.
TEST(AdminApiConfig, DisabledAndKeyLength) {
    testing::FakeRegistry reg;
    AdminApi off(reg, nullptr, AdminOptions{});
    EXPECT_FALSE(off.enabled());
    Request r{"GET", "/api/v1/admin/domains", "Bearer ", "", "", std::nullopt};
    auto resp = off.handle(r);
    EXPECT_EQ(resp.status, 404);
    EXPECT_NE(resp.body.find("disabled"), std::string::npos);
    EXPECT_EQ(reg.calls.load(), 0);
    AdminOptions weak;
    weak.api_key = "short";
    EXPECT_THROW(AdminApi(reg, nullptr, weak), std::invalid_argument);
}

// Wrong tokens from one source are limited: 429 with Retry-After, even for the right token, until
// the block expires; other sources are unaffected.
TEST(AdminApiConfig, WrongTokensRateLimited) {
    testing::FakeRegistry reg;
    core::Instant now{std::chrono::hours(1)};
    AdminOptions o;
    o.api_key = kToken;
    o.auth_limiter.max_failures = 3;
    o.clock = [&] { return now; };
    AdminApi api(reg, nullptr, o);
    Request bad{"GET", "/api/v1/admin/domains", "Bearer wrong-wrong-wrong-wrong", "",
                "",    parse_ip("192.0.2.1")};
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(api.handle(bad).status, 401);
    }
    Request good = bad;
    good.authorization = std::string("Bearer ") + kToken;
    auto limited = api.handle(good);
    EXPECT_EQ(limited.status, 429);
    ASSERT_EQ(limited.headers.size(), 1u);
    EXPECT_EQ(limited.headers[0], (std::pair<std::string, std::string>{"Retry-After", "300"}));
    good.remote = parse_ip("192.0.2.2");
    EXPECT_EQ(api.handle(good).status, 200);
    now += std::chrono::seconds(301);
    good.remote = parse_ip("192.0.2.1");
    EXPECT_EQ(api.handle(good).status, 200);
    EXPECT_EQ(reg.calls.load(), 2);
}

// The control domain and the proxy domains cannot be registered, in any spelling (409 naming
// the setting); the other routes still work on them, so an old registration can be removed.
TEST(AdminApiConfig, ReservedNamesRefused) {
    testing::FakeRegistry reg;
    AdminOptions o;
    o.api_key = kToken;
    o.reserved = {{"hop.example.com", "HOP_SERVER_DOMAIN"},
                  {"www.example.com", "HOP_SERVER_PROXY_DOMAINS"}};
    AdminApi api(reg, nullptr, o);
    const auto post = [&](const std::string& route, const json& body) {
        Request r{"POST", "/api/v1/admin/domains/" + route, std::string("Bearer ") + kToken,
                  "application/json", body.dump(), parse_ip("127.0.0.1")};
        return api.handle(r);
    };
    for (const char* spelling : {"hop.example.com", "HOP.Example.COM.", " hop.example.com"}) {
        auto r = post("register", {{"domain", spelling}});
        EXPECT_EQ(r.status, 409) << spelling;
        const auto j = json::parse(r.body);
        EXPECT_FALSE(j["success"].get<bool>());
        EXPECT_EQ(j["error"],
                  "'hop.example.com' is reserved by HOP_SERVER_DOMAIN (the server's control "
                  "domain) and cannot be registered as a tenant domain");
    }
    auto proxy = post("register", {{"domain", "WWW.example.com"}});
    EXPECT_EQ(proxy.status, 409);
    EXPECT_NE(proxy.body.find("HOP_SERVER_PROXY_DOMAINS"), std::string::npos);
    EXPECT_FALSE(*reg.exists("hop.example.com"));
    EXPECT_FALSE(*reg.exists("www.example.com"));
    EXPECT_EQ(post("register", {{"domain", "app.example.com"}}).status, 201);

    // Registered before the name became reserved: rotate and unregister still work.
    auto old = reg.register_domain("hop.example.com", "");
    ASSERT_TRUE(old);
    EXPECT_EQ(post("rotate", {{"domain", "hop.example.com"}}).status, 200);
}

// With an allow-list only listed sources get in (403 otherwise, and when the source is unknown).
TEST(AdminApiConfig, AllowList) {
    testing::FakeRegistry reg;
    AdminOptions o;
    o.api_key = kToken;
    o.allow = CidrList::parse("10.0.0.0/8, 2001:db8::/32");
    AdminApi api(reg, nullptr, o);
    Request r{"GET",       "/api/v1/admin/domains", std::string("Bearer ") + kToken, "", "",
              std::nullopt};
    EXPECT_EQ(api.handle(r).status, 403);
    r.remote = parse_ip("192.0.2.1");
    EXPECT_EQ(api.handle(r).status, 403);
    r.remote = parse_ip("10.1.2.3");
    EXPECT_EQ(api.handle(r).status, 200);
    r.remote = parse_ip("::ffff:10.1.2.3");
    EXPECT_EQ(api.handle(r).status, 200);
    r.remote = parse_ip("2001:db8::9");
    EXPECT_EQ(api.handle(r).status, 200);
    r.authorization.clear();
    r.remote = parse_ip("192.0.2.1");
    EXPECT_EQ(api.handle(r).status, 403);  // the allow-list answers before authentication
}

// Thousands of random requests (methods, paths, headers, bodies): every answer is well-formed
// JSON with success/error, and none is a 500.
TEST_F(AdminApiTest, RandomRequestsNeverServerError) {
    std::mt19937 rng(12345);
    const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE", "get", ""};
    const std::vector<std::string> paths = {"/api/v1/admin/domains",
                                            "/api/v1/admin/domains/register",
                                            "/api/v1/admin/domains/unregister",
                                            "/api/v1/admin/domains/rotate",
                                            "/api/v1/admin/domains/exists",
                                            "/api/v1/admin/domains/status",
                                            "/api/v1/admin/x",
                                            "/api/v1/admin/domains//register"};
    const std::vector<std::string> queries = {"",
                                              "?domain=a.example.com",
                                              "?domain=%",
                                              "?limit=5",
                                              "?after=%ff",
                                              "?domain=" + std::string(500, 'a'),
                                              "?&&==&domain"};
    const std::vector<std::string> pieces = {"{",           "}",
                                             "[",           "]",
                                             "\"domain\"",  ":",
                                             ",",           "\"a.example.com\"",
                                             "\"memo\"",    "null",
                                             "1e999",       "\"client_api_key\"",
                                             "\"\\u0000\"", "\xff",
                                             "\"\\ud800\"", "true",
                                             " ",           std::string(64, 'a'),
                                             "-0",          "\"x\\\"y\""};
    std::set<int> statuses;
    for (int i = 0; i < 5000; ++i) {
        std::string body;
        const int n = static_cast<int>(rng() % 12);
        for (int k = 0; k < n; ++k) {
            body += pieces[rng() % pieces.size()];
        }
        if (rng() % 4 == 0) {
            body = "{\"domain\":\"" + pieces[rng() % pieces.size()] + "\",\"client_api_key\":\"" +
                   std::string(64, 'b') + "\"}";
        }
        auto r = call(methods[rng() % methods.size()],
                      paths[rng() % paths.size()] + queries[rng() % queries.size()], body,
                      rng() % 10 == 0 ? "Bearer nope" : std::string("Bearer ") + kToken,
                      rng() % 10 == 0 ? "text/html" : "application/json");
        ASSERT_NE(r.status, 500) << body;
        statuses.insert(r.status);
        body_of(r);
    }
    EXPECT_TRUE(statuses.count(400) && statuses.count(401) && statuses.count(404) &&
                statuses.count(405));
}

}  // namespace
}  // namespace hopgate::admin
