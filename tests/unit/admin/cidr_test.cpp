// IP and CIDR parsing for HOP_ADMIN_ALLOW_CIDRS and HOP_ACME_EXPECT_IPS.
#include "admin/cidr.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace hopgate::admin {
namespace {

IpAddr ip(std::string_view s) {
    auto r = parse_ip(s);
    EXPECT_TRUE(r.has_value()) << s;
    return r.value_or(IpAddr{});
}

// Both families parse; v4-mapped IPv6 becomes IPv4; brackets and spaces are tolerated.
TEST(ParseIp, Forms) {
    EXPECT_TRUE(ip("192.0.2.1").v4);
    EXPECT_FALSE(ip("2001:db8::1").v4);
    EXPECT_EQ(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
    EXPECT_EQ(ip("[2001:db8::1]"), ip("2001:db8::1"));
    EXPECT_EQ(ip(" 10.0.0.1 "), ip("10.0.0.1"));
    EXPECT_EQ(to_string(ip("2001:0db8:0:0::1")), "2001:db8::1");
    EXPECT_EQ(to_string(ip("::ffff:10.1.2.3")), "10.1.2.3");
    for (const char* bad : {"", "10.1", "256.0.0.1", "1.2.3.4.5", "01.2.3.4x", "fe80::1%eth0",
                            "2001:db8::1:80:", "1.2.3.4:80", "[::1", "example.com", "::g"}) {
        EXPECT_FALSE(parse_ip(bad).has_value()) << bad;
    }
    EXPECT_FALSE(parse_ip(std::string("1.2.3.4\0", 8)).has_value());
    EXPECT_FALSE(parse_ip(std::string(100, '1')).has_value());
}

// Prefix matching, both families, with the edges of each prefix.
// Per-source limits: one key per IPv4 address (mapped IPv6 included), one per IPv6 /64;
// unparsable text keys as itself.
TEST(SourceKey, Ipv4AddressIpv6Slash64) {
    EXPECT_EQ(source_key("192.0.2.1"), source_key("::ffff:192.0.2.1"));
    EXPECT_EQ(source_key("192.0.2.1"), source_key(ip("192.0.2.1")));
    EXPECT_NE(source_key("192.0.2.1"), source_key("192.0.2.2"));
    EXPECT_EQ(source_key("192.0.2.1").size(), 5u);
    EXPECT_EQ(source_key("2001:db8:1:2::1"), source_key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    EXPECT_NE(source_key("2001:db8:1:2::1"), source_key("2001:db8:1:3::1"));
    EXPECT_EQ(source_key("2001:db8:1:2::1").size(), 9u);
    // An IPv6 address whose /64 looks like an IPv4 address is still another key.
    EXPECT_NE(source_key("::c000:201"), source_key("192.0.2.1"));
    EXPECT_NE(source_key("c000:201::"), source_key("192.0.2.1"));
    EXPECT_EQ(source_key("fe80::1%2"), "?fe80::1%2");
    EXPECT_NE(source_key("fe80::1%2"), source_key("fe80::1%3"));
}

TEST(ParseCidr, Contains) {
    auto c = parse_cidr("10.0.0.0/8");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->contains(ip("10.255.1.2")));
    EXPECT_FALSE(c->contains(ip("11.0.0.0")));
    EXPECT_FALSE(c->contains(ip("::ffff:11.0.0.1")));
    EXPECT_TRUE(c->contains(ip("::ffff:10.0.0.1")));
    EXPECT_FALSE(c->contains(ip("2001:db8::1")));
    auto odd = parse_cidr("192.168.4.0/22");
    ASSERT_TRUE(odd);
    EXPECT_TRUE(odd->contains(ip("192.168.7.255")));
    EXPECT_FALSE(odd->contains(ip("192.168.8.0")));
    EXPECT_FALSE(odd->contains(ip("192.168.3.255")));
    auto v6 = parse_cidr("2001:db8:abcd::/48");
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->contains(ip("2001:db8:abcd:ffff::1")));
    EXPECT_FALSE(v6->contains(ip("2001:db8:abce::1")));
    auto host = parse_cidr("::1");
    ASSERT_TRUE(host);
    EXPECT_EQ(host->prefix, 128u);
    EXPECT_TRUE(host->contains(ip("::1")));
    EXPECT_FALSE(host->contains(ip("::2")));
    auto all4 = parse_cidr("0.0.0.0/0");
    ASSERT_TRUE(all4);
    EXPECT_TRUE(all4->contains(ip("203.0.113.9")));
    EXPECT_FALSE(all4->contains(ip("::1")));
    auto all6 = parse_cidr("::/0");
    ASSERT_TRUE(all6);
    EXPECT_TRUE(all6->contains(ip("2001:db8::5")));
    EXPECT_EQ(parse_cidr("10.1.2.3")->prefix, 32u);
    EXPECT_TRUE(parse_cidr("10.1.2.3/32")->contains(ip("10.1.2.3")));
}

// Malformed prefixes and host bits below the prefix are refused.
TEST(ParseCidr, Rejects) {
    for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8",
                            "10.0.0.0/08", "10.0.0.0/8/8", "10.0.0.1/8", "2001:db8::1/32",
                            "10.0.0.0/a", "/8", "10.0.0.0/1000", "10.0.0.0 /8"}) {
        EXPECT_FALSE(parse_cidr(bad).has_value()) << bad;
    }
}

// Lists split on commas and whitespace; a bad entry is a configuration error naming it.
TEST(CidrList, ParseAndMatch) {
    auto list = CidrList::parse(" 10.0.0.0/8, 192.168.1.0/24  2001:db8::/32,,");
    EXPECT_EQ(list.entries().size(), 3u);
    EXPECT_TRUE(list.contains(ip("10.9.9.9")));
    EXPECT_TRUE(list.contains(ip("192.168.1.77")));
    EXPECT_TRUE(list.contains(ip("2001:db8:1::1")));
    EXPECT_FALSE(list.contains(ip("192.168.2.1")));
    EXPECT_TRUE(CidrList::parse("").empty());
    EXPECT_TRUE(CidrList::parse(" , ").empty());
    try {
        CidrList::parse("10.0.0.0/8, 10.0.0.0/40");
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("10.0.0.0/40"), std::string::npos);
    }
    EXPECT_EQ(parse_ip_list("203.0.113.5, 2001:db8::5").size(), 2u);
    EXPECT_THROW(parse_ip_list("203.0.113.5, nope"), std::invalid_argument);
}

}  // namespace
}  // namespace hopgate::admin
