#include "http/authority.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hopgate::http {
namespace {

struct Good {
    std::string_view in;
    std::string_view host;
    HostKind kind;
    std::optional<std::uint16_t> port;
};

// Golden accepted inputs and their normalised form.
TEST(Authority, GoldenAccepted) {
    const Good cases[] = {
        {"example.com", "example.com", HostKind::kRegName, std::nullopt},
        {"EXAMPLE.com.", "example.com", HostKind::kRegName, std::nullopt},
        {"Example.COM.:443", "example.com", HostKind::kRegName, 443},
        {"a.b:0", "a.b", HostKind::kRegName, 0},
        {"a.b:65535", "a.b", HostKind::kRegName, 65535},
        {"a.b:", "a.b", HostKind::kRegName, std::nullopt},
        {"a.b:0080", "a.b", HostKind::kRegName, 80},
        {"localhost", "localhost", HostKind::kRegName, std::nullopt},
        {"my_host-1.example~x", "my_host-1.example~x", HostKind::kRegName, std::nullopt},
        {"127.0.0.1:8080", "127.0.0.1", HostKind::kIpv4, 8080},
        {"0.0.0.0", "0.0.0.0", HostKind::kIpv4, std::nullopt},
        {"255.255.255.255.", "255.255.255.255", HostKind::kIpv4, std::nullopt},
        {"1.2.3.4a", "1.2.3.4a", HostKind::kRegName, std::nullopt},
        {"[::1]:8443", "::1", HostKind::kIpv6, 8443},
        {"[::1]", "::1", HostKind::kIpv6, std::nullopt},
        {"[::1]:", "::1", HostKind::kIpv6, std::nullopt},
        {"[::]", "::", HostKind::kIpv6, std::nullopt},
        {"[2001:DB8:0:0:0:0:0:1]", "2001:db8::1", HostKind::kIpv6, std::nullopt},
        {"[2001:0db8:0000:0000:0001:0000:0000:0001]", "2001:db8::1:0:0:1", HostKind::kIpv6,
         std::nullopt},
        {"[2001:db8:0:1:1:1:1:1]", "2001:db8:0:1:1:1:1:1", HostKind::kIpv6, std::nullopt},
        {"[1::]", "1::", HostKind::kIpv6, std::nullopt},
        {"[::ffff:192.0.2.1]:80", "::ffff:c000:201", HostKind::kIpv6, 80},
        {"[1:2:3:4:5:6:7:8]", "1:2:3:4:5:6:7:8", HostKind::kIpv6, std::nullopt},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.in));
        auto r = parse_authority(c.in);
        ASSERT_TRUE(r.ok()) << r.error().message();
        EXPECT_EQ(r->host, c.host);
        EXPECT_EQ(r->kind, c.kind);
        EXPECT_EQ(r->port, c.port);
    }
}

struct Bad {
    std::string_view in;
    Errc err;
};

// Golden rejected inputs and the reason given.
TEST(Authority, GoldenRejected) {
    const Bad cases[] = {
        {"", Errc::kAuthorityEmpty},
        {":80", Errc::kAuthorityEmpty},
        {".", Errc::kEmptyLabel},
        {"a..b", Errc::kEmptyLabel},
        {".a.b", Errc::kEmptyLabel},
        {"a.b..", Errc::kEmptyLabel},
        {"user@host", Errc::kUserinfo},
        {"user:pw@host:80", Errc::kUserinfo},
        {"a.b:65536", Errc::kBadPort},
        {"a.b:99999999999999999999", Errc::kBadPort},
        {"a.b:-1", Errc::kBadPort},
        {"a.b:8o", Errc::kBadPort},
        {"a.b:80:81", Errc::kBadPort},
        {"::1", Errc::kBadPort},
        {"[::1", Errc::kUnterminatedBracket},
        {"::1]", Errc::kUnterminatedBracket},
        {"a]b", Errc::kUnterminatedBracket},
        {"[[::1]]", Errc::kUnterminatedBracket},
        {"[::1]]", Errc::kUnterminatedBracket},
        {"[::1]x", Errc::kBadPort},
        {"[::1]:x", Errc::kBadPort},
        {"[fe80::1%25eth0]", Errc::kZoneId},
        {"[fe80::1%eth0]:80", Errc::kZoneId},
        {"[]", Errc::kBadIpv6},
        {"[v1.fe]", Errc::kBadIpv6},
        {"[1:2:3:4:5:6:7:8:9]", Errc::kBadIpv6},
        {"[1:2:3:4:5:6:7]", Errc::kBadIpv6},
        {"[1::2::3]", Errc::kBadIpv6},
        {"[:1:2:3:4:5:6:7]", Errc::kBadIpv6},
        {"[1:2:3:4:5:6:7:]", Errc::kBadIpv6},
        {"[1:2:3:4::5:6:7:8]", Errc::kBadIpv6},
        {"[12345::]", Errc::kBadIpv6},
        {"[::g]", Errc::kBadIpv6},
        {"[::1.2.3.256]", Errc::kBadIpv6},
        {"[example.com]", Errc::kBadIpv6},
        {"1.2.3.256", Errc::kBadIpv4},
        {"1.2.3", Errc::kBadIpv4},
        {"127.1", Errc::kBadIpv4},
        {"01.2.3.4", Errc::kBadIpv4},
        {"1.2.3.4.5", Errc::kBadIpv4},
        {"exa mple.com", Errc::kBadChar},
        {" example.com", Errc::kBadChar},
        {"example.com\t", Errc::kBadChar},
        {"example.com\r\nX: y", Errc::kBadChar},
        {std::string_view("exa\0mple.com", 12), Errc::kBadChar},
        {"exa\x7fmple.com", Errc::kBadChar},
        {"ex\x01.com", Errc::kBadChar},
        {"caf\xc3\xa9.com", Errc::kBadChar},
        {"ex%41mple.com", Errc::kBadChar},
        {"[::1%]", Errc::kZoneId},
        {"a,b.com", Errc::kBadChar},
        {"a/b.com", Errc::kBadChar},
        {"a'b.com", Errc::kBadChar},
        {"<script>.com", Errc::kBadChar},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(testing::PrintToString(std::string(c.in)));
        auto r = parse_authority(c.in);
        ASSERT_FALSE(r.ok()) << r->host;
        EXPECT_EQ(r.error(), make_error_code(c.err)) << r.error().message();
    }
}

// Length limits: 255-byte host and 63-byte labels pass, one more fails; total > 1024 fails.
TEST(Authority, LengthLimits) {
    std::string label63(63, 'a');
    EXPECT_TRUE(parse_authority(label63 + ".com").ok());
    EXPECT_EQ(parse_authority(std::string(64, 'a') + ".com").error(),
              make_error_code(Errc::kHostTooLong));

    std::string host255;
    while (host255.size() + 4 <= 255) {
        host255 += "abc.";
    }
    host255.resize(255, 'x');
    ASSERT_EQ(host255.size(), 255u);
    EXPECT_TRUE(parse_authority(host255).ok());
    EXPECT_TRUE(parse_authority(host255 + ":443").ok());
    EXPECT_EQ(parse_authority(host255 + "x").error(), make_error_code(Errc::kHostTooLong));
    EXPECT_EQ(parse_authority(std::string(1025, 'a')).error(),
              make_error_code(Errc::kAuthorityTooLong));
    EXPECT_EQ(parse_authority("a.b:" + std::string(1021, '0')).error(),
              make_error_code(Errc::kAuthorityTooLong));
}

// route_key drops port and brackets and agrees across spellings of the same host.
TEST(Authority, RouteKey) {
    EXPECT_EQ(route_key(*parse_authority("Example.COM.:443")), "example.com");
    EXPECT_EQ(route_key(*parse_authority("example.com")), "example.com");
    EXPECT_EQ(route_key(*parse_authority("[::1]:8443")), "::1");
    EXPECT_EQ(route_key(*parse_authority("[0:0:0:0:0:0:0:1]")), "::1");
    EXPECT_EQ(route_key(*parse_authority("[2001:DB8::0001]")), "2001:db8::1");
    EXPECT_EQ(route_key(*parse_authority("10.0.0.1:1")), "10.0.0.1");
}

// to_string restores brackets and port, and round-trips through the parser.
TEST(Authority, ToStringRoundTrip) {
    for (std::string_view in :
         {"[::1]:8443", "example.com", "a.b:0", "1.2.3.4:80", "[2001:db8::]"}) {
        auto a = parse_authority(in);
        ASSERT_TRUE(a.ok());
        EXPECT_EQ(to_string(*a), in);
        auto b = parse_authority(to_string(*a));
        ASSERT_TRUE(b.ok());
        EXPECT_EQ(*a, *b);
    }
}

// RFC 5952: the longest zero run is compressed (first on a tie); single zero groups are not.
TEST(Authority, Ipv6Canonical) {
    EXPECT_EQ(parse_authority("[1:0:0:2:0:0:0:3]")->host, "1:0:0:2::3");
    EXPECT_EQ(parse_authority("[1:0:0:2:3:0:0:4]")->host, "1::2:3:0:0:4");
    EXPECT_EQ(parse_authority("[1:0:2:3:4:5:6:7]")->host, "1:0:2:3:4:5:6:7");
    EXPECT_EQ(parse_authority("[0:0:0:0:0:0:0:0]")->host, "::");
}

// Every prefix of every golden input either parses or fails cleanly (no crash, no assert).
TEST(Authority, PrefixesNeverCrash) {
    for (std::string_view in : {"[2001:db8::ffff:1.2.3.4]:65535", "Example.COM.:443",
                                "[fe80::1%25eth0]:1", "user@host:80"}) {
        for (std::size_t n = 0; n <= in.size(); ++n) {
            auto r = parse_authority(in.substr(0, n));
            if (r.ok()) {
                EXPECT_FALSE(r->host.empty());
            } else {
                EXPECT_EQ(&r.error().category(), &http_category());
            }
        }
    }
}

// request_authority: results and errors over Host fields, target and version (RFC 9112 §3.2).
core::Result<RequestAuthority> req_auth(std::vector<std::string_view> hosts,
                                        std::string_view target, bool http11 = true) {
    return request_authority(hosts, target, http11);
}

// Origin-form routes on the single Host; no Host, or several (even identical), is refused.
TEST(RequestAuthority, OriginForm) {
    auto r = req_auth({"App.Example.:8443"}, "/x?y");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->authority.host, "app.example");
    EXPECT_EQ(r->authority.port, std::optional<std::uint16_t>(8443));
    EXPECT_EQ(to_string(r->authority), "app.example:8443");
    EXPECT_EQ(r->origin_target, "");
    EXPECT_EQ(req_auth({}, "/x").error(), Errc::kHostMissing);
    EXPECT_EQ(req_auth({}, "/x", false).error(), Errc::kHostMissing);
    EXPECT_EQ(req_auth({"a.example", "a.example"}, "/x").error(), Errc::kHostRepeated);
    EXPECT_EQ(req_auth({"a.example", "b.example"}, "/x").error(), Errc::kHostRepeated);
    EXPECT_EQ(req_auth({""}, "/x").error(), Errc::kAuthorityEmpty);
    EXPECT_EQ(req_auth({"a b"}, "/x").error(), Errc::kBadChar);
}

// Absolute-form routes on the target's authority; a Host must agree with it (host and port,
// an absent port meaning the scheme's default), and the local service gets origin-form.
TEST(RequestAuthority, AbsoluteForm) {
    auto r = req_auth({"app.example"}, "http://App.Example/x?q=1");
    ASSERT_TRUE(r);
    EXPECT_EQ(to_string(r->authority), "app.example");
    EXPECT_EQ(r->origin_target, "/x?q=1");
    // Agreeing spellings.
    EXPECT_TRUE(req_auth({"APP.example."}, "http://app.example/x"));
    EXPECT_TRUE(req_auth({"app.example:80"}, "http://app.example/x"));
    EXPECT_TRUE(req_auth({"app.example"}, "HTTPS://app.example:443/x"));
    EXPECT_TRUE(req_auth({"[::1]:8443"}, "https://[0:0::1]:8443/"));
    // The port as the visitor gave it in the target is kept.
    EXPECT_EQ(to_string(req_auth({"app.example:8443"}, "https://app.example:8443")->authority),
              "app.example:8443");
    // Disagreeing ones.
    EXPECT_EQ(req_auth({"evil.example"}, "http://app.example/x").error(), Errc::kHostMismatch);
    EXPECT_EQ(req_auth({"app.example:8080"}, "http://app.example/x").error(),
              Errc::kHostMismatch);
    EXPECT_EQ(req_auth({"app.example"}, "https://app.example:8443/x").error(),
              Errc::kHostMismatch);
    EXPECT_EQ(req_auth({"app.example"}, "http://app.example:443/x").error(),
              Errc::kHostMismatch);
    EXPECT_EQ(req_auth({""}, "http://app.example/x").error(), Errc::kHostMismatch);
    EXPECT_EQ(req_auth({"a@b"}, "http://app.example/x").error(), Errc::kHostMismatch);
    EXPECT_EQ(req_auth({"app.example", "app.example"}, "http://app.example/x").error(),
              Errc::kHostRepeated);
    // No Host: refused on HTTP/1.1, fine on HTTP/1.0.
    EXPECT_EQ(req_auth({}, "http://app.example/x").error(), Errc::kHostMissing);
    auto old = req_auth({}, "http://app.example/x", false);
    ASSERT_TRUE(old);
    EXPECT_EQ(old->authority.host, "app.example");
    // A bad target authority is its own parse error.
    EXPECT_EQ(req_auth({"u@app.example"}, "http://u@app.example/").error(), Errc::kUserinfo);
    EXPECT_EQ(req_auth({"x"}, "http:///x").error(), Errc::kAuthorityEmpty);
}

// Origin-form of an absolute target: "/" for an empty path, a query kept, a fragment dropped.
TEST(RequestAuthority, OriginTarget) {
    EXPECT_EQ(req_auth({}, "http://a.example", false)->origin_target, "/");
    EXPECT_EQ(req_auth({}, "http://a.example?q", false)->origin_target, "/?q");
    EXPECT_EQ(req_auth({}, "http://a.example/p/q?r=s", false)->origin_target, "/p/q?r=s");
    EXPECT_EQ(req_auth({}, "http://a.example/p#frag", false)->origin_target, "/p");
    EXPECT_EQ(req_auth({}, "http://a.example#frag", false)->origin_target, "/");
    // Not absolute-form: the target is left alone.
    EXPECT_EQ(req_auth({"a.example"}, "*")->origin_target, "");
    EXPECT_EQ(req_auth({"a.example"}, "ftp://b.example/")->origin_target, "");
}

}  // namespace
}  // namespace hopgate::http
