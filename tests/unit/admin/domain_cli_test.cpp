// `hopgate-server domain ...`: commands, output, exit codes, over a registry fake.
#include "admin/domain_cli.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "fake_registry.hpp"
#include "registry/error.hpp"
#include "registry/key.hpp"

namespace hopgate::admin {
namespace {

struct Run {
    int code;
    std::string out;
    std::string err;
};

Run run(registry::Registry& reg, std::vector<std::string> args,
        std::span<const ReservedName> reserved = {}) {
    std::ostringstream out, err;
    const int code = run_domain_cli(args, reg, out, err, reserved);
    return {code, out.str(), err.str()};
}

std::string key_from(const std::string& out) {
    const auto p = out.find("client_api_key: ");
    return p == std::string::npos ? "" : out.substr(p + 16, 64);
}

// add / status / rotate / remove round trip with exit code 0 and the key printed once.
TEST(DomainCli, Lifecycle) {
    testing::FakeRegistry reg;
    auto add = run(reg, {"add", "App.Example.com", "--memo", "team a"});
    ASSERT_EQ(add.code, 0) << add.err;
    EXPECT_NE(add.out.find("registered app.example.com"), std::string::npos);
    const std::string key = key_from(add.out);
    EXPECT_TRUE(registry::is_well_formed_key(key));
    EXPECT_TRUE(reg.validate("app.example.com", key).ok());

    auto st = run(reg, {"status", "app.example.com"});
    EXPECT_EQ(st.code, 0);
    EXPECT_NE(st.out.find("memo:       team a"), std::string::npos);
    EXPECT_EQ(st.out.find(key), std::string::npos);

    auto rot = run(reg, {"rotate", "app.example.com"});
    EXPECT_EQ(rot.code, 0);
    const std::string key2 = key_from(rot.out);
    EXPECT_NE(key2, key);
    EXPECT_TRUE(reg.validate("app.example.com", key2).ok());

    auto rm = run(reg, {"remove", "app.example.com"});
    EXPECT_EQ(rm.code, 0);
    EXPECT_EQ(rm.out, "removed app.example.com\n");
    EXPECT_FALSE(*reg.exists("app.example.com"));
}

// Failures are exit 1 with the registry's reason on stderr.
TEST(DomainCli, OperationFailures) {
    testing::FakeRegistry reg;
    ASSERT_EQ(run(reg, {"add", "a.example.com"}).code, 0);
    auto dup = run(reg, {"add", "a.example.com"});
    EXPECT_EQ(dup.code, 1);
    EXPECT_EQ(dup.err, "error: domain already registered\n");
    EXPECT_EQ(run(reg, {"remove", "nope.example.com"}).code, 1);
    EXPECT_EQ(run(reg, {"status", "nope.example.com"}).err, "error: domain not registered\n");
    auto bad = run(reg, {"add", "localhost"});
    EXPECT_EQ(bad.code, 1);
    EXPECT_EQ(bad.err, "error: invalid domain: must contain a dot\n");
    reg.fail_with = registry::Errc::kDbUnavailable;
    auto down = run(reg, {"list"});
    EXPECT_EQ(down.code, 1);
    EXPECT_EQ(down.err, "error: database unavailable\n");
}

// add refuses the control domain and the proxy domains (exit 1, the setting named on stderr)
// in any spelling; other commands and other names are unaffected.
TEST(DomainCli, ReservedNamesRefused) {
    testing::FakeRegistry reg;
    const std::vector<ReservedName> reserved = {{"hop.example.com", "HOP_SERVER_DOMAIN"},
                                                {"www.example.com", "HOP_SERVER_PROXY_DOMAINS"}};
    const auto run_r = [&](std::vector<std::string> args) { return run(reg, args, reserved); };
    auto ctl = run_r({"add", "Hop.Example.com."});
    EXPECT_EQ(ctl.code, 1);
    EXPECT_EQ(ctl.out, "");
    EXPECT_EQ(ctl.err,
              "error: 'hop.example.com' is reserved by HOP_SERVER_DOMAIN (the server's control "
              "domain) and cannot be registered as a tenant domain\n");
    auto proxy = run_r({"add", "www.example.com", "--json"});
    EXPECT_EQ(proxy.code, 1);
    EXPECT_NE(proxy.err.find("HOP_SERVER_PROXY_DOMAINS"), std::string::npos);
    EXPECT_FALSE(*reg.exists("hop.example.com"));
    EXPECT_FALSE(*reg.exists("www.example.com"));
    EXPECT_EQ(run_r({"add", "app.example.com"}).code, 0);
    ASSERT_TRUE(reg.register_domain("hop.example.com", ""));  // from before the upgrade
    EXPECT_EQ(run_r({"remove", "hop.example.com"}).code, 0);
}

// Usage errors are exit 2 and print the usage; help is exit 0.
TEST(DomainCli, Usage) {
    testing::FakeRegistry reg;
    for (const auto& args :
         std::vector<std::vector<std::string>>{{},
                                               {"frobnicate"},
                                               {"add"},
                                               {"add", "a.example.com", "b.example.com"},
                                               {"add", "a.example.com", "--memo"},
                                               {"remove", "a.example.com", "--memo", "x"},
                                               {"list", "extra"},
                                               {"list", "--limit", "0"},
                                               {"list", "--limit", "x"},
                                               {"status", "a.example.com", "--bogus"},
                                               {"rotate", "--after", "a", "b.example.com"}}) {
        auto r = run(reg, args);
        EXPECT_EQ(r.code, 2) << (args.empty() ? "" : args[0]);
        EXPECT_NE(r.err.find("error:"), std::string::npos);
    }
    EXPECT_EQ(reg.calls.load(), 0);
    auto help = run(reg, {"help"});
    EXPECT_EQ(help.code, 0);
    EXPECT_EQ(help.out, domain_cli_usage());
}

// list prints every page by default, one page with --limit, and JSON with --json.
TEST(DomainCli, ListAndJson) {
    testing::FakeRegistry reg;
    for (int i = 0; i < 250; ++i) {
        ASSERT_TRUE(reg.register_domain("n" + std::to_string(1000 + i) + ".example.com", "").ok());
    }
    auto all = run(reg, {"list"});
    EXPECT_EQ(all.code, 0);
    EXPECT_NE(all.out.find("250 of 250 domain(s)\n"), std::string::npos);
    auto page = run(reg, {"list", "--limit", "10", "--after", "n1100.example.com"});
    EXPECT_NE(page.out.find("n1101.example.com"), std::string::npos);
    EXPECT_NE(page.out.find("10 of 250 domain(s); next page: --after n1110.example.com"),
              std::string::npos);
    auto js = run(reg, {"--json", "list", "--limit", "3"});
    auto j = nlohmann::json::parse(js.out);
    EXPECT_EQ(j["domains"].size(), 3u);
    EXPECT_EQ(j["total"], 250);
    EXPECT_EQ(j["next_after"], "n1002.example.com");
    auto add = nlohmann::json::parse(run(reg, {"add", "j.example.com", "--json"}).out);
    EXPECT_TRUE(registry::is_well_formed_key(add["client_api_key"].get<std::string>()));
    EXPECT_EQ(add["domain"], "j.example.com");
    auto st = nlohmann::json::parse(run(reg, {"status", "j.example.com", "--json"}).out);
    EXPECT_FALSE(st.contains("client_api_key"));
}

}  // namespace
}  // namespace hopgate::admin
