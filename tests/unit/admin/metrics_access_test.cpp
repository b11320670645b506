// The /metrics guard: allow-list (default loopback and private ranges) and optional token.
#include "admin/metrics_access.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace hopgate::admin {
namespace {

constexpr const char* kToken = "metrics-token-0123456789";

// The default list admits loopback and private sources, IPv4 and IPv6, and nothing public.
TEST(MetricsGuard, DefaultAllowList) {
    MetricsGuard g(CidrList::parse(kDefaultMetricsAllow), "");
    for (const char* ok : {"127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.16.0.1",
                           "172.31.255.255", "192.168.1.1", "fd00::1", "::ffff:10.0.0.1"}) {
        EXPECT_EQ(g.check(parse_ip(ok), ""), MetricsAccess::kAllowed) << ok;
    }
    for (const char* no : {"8.8.8.8", "172.32.0.1", "192.169.0.1", "2001:db8::1", "fe80::1"}) {
        EXPECT_EQ(g.check(parse_ip(no), ""), MetricsAccess::kForbidden) << no;
    }
    EXPECT_EQ(g.check(std::nullopt, ""), MetricsAccess::kForbidden);  // unknown source
}

// An empty list admits every source; a token is then the only gate.
TEST(MetricsGuard, EmptyListAllowsAll) {
    EXPECT_EQ(MetricsGuard(CidrList{}, "").check(parse_ip("203.0.113.1"), ""),
              MetricsAccess::kAllowed);
    MetricsGuard g(CidrList{}, kToken);
    EXPECT_EQ(g.check(parse_ip("203.0.113.1"), ""), MetricsAccess::kUnauthorized);
    EXPECT_EQ(g.check(parse_ip("203.0.113.1"), std::string("Bearer ") + kToken),
              MetricsAccess::kAllowed);
}

// With a token: missing, wrong scheme or wrong token -> 401; the right one (any scheme case,
// surrounding blanks) -> allowed; an address outside the list stays 403 even with the token.
TEST(MetricsGuard, Token) {
    MetricsGuard g(CidrList::parse("127.0.0.0/8"), kToken);
    const auto local = parse_ip("127.0.0.1");
    EXPECT_EQ(g.check(local, ""), MetricsAccess::kUnauthorized);
    EXPECT_EQ(g.check(local, kToken), MetricsAccess::kUnauthorized);
    EXPECT_EQ(g.check(local, std::string("Basic ") + kToken), MetricsAccess::kUnauthorized);
    EXPECT_EQ(g.check(local, "Bearer metrics-token-0123456780"), MetricsAccess::kUnauthorized);
    EXPECT_EQ(g.check(local, std::string("Bearer ") + kToken + "x"),
              MetricsAccess::kUnauthorized);
    EXPECT_EQ(g.check(local, std::string("Bearer ") + kToken), MetricsAccess::kAllowed);
    EXPECT_EQ(g.check(local, std::string(" bearer  ") + kToken + " "), MetricsAccess::kAllowed);
    EXPECT_EQ(g.check(parse_ip("192.0.2.1"), std::string("Bearer ") + kToken),
              MetricsAccess::kForbidden);
}

// A short token is a configuration error.
TEST(MetricsGuard, ShortTokenRefused) {
    EXPECT_THROW(MetricsGuard(CidrList{}, "short"), std::invalid_argument);
}

}  // namespace
}  // namespace hopgate::admin
