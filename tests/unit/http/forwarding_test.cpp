#include "http/forwarding.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace hopgate::proto {
// Readable gtest output for header lists.
void PrintTo(const Header& h, std::ostream* os) { *os << h.name << ": " << h.value; }
}  // namespace hopgate::proto

namespace hopgate::http {
namespace {

namespace bh = boost::beast::http;

std::vector<std::string> names(const Headers& h) {
    std::vector<std::string> out;
    for (const auto& x : h) {
        out.push_back(x.name);
    }
    return out;
}

std::size_t count(const Headers& h, std::string_view name) {
    std::size_t n = 0;
    for (const auto& x : h) {
        n += iequals(x.name, name) ? 1 : 0;
    }
    return n;
}

const RequestForwarding kFwd{"203.0.113.7", "https", "req-1"};

// Every fixed hop-by-hop header goes, in any case; end-to-end headers stay in order.
TEST(Forwarding, RemovesFixedHopByHop) {
    Headers h = {{"Host", "a.example"},
                 {"connection", "keep-alive"},
                 {"Keep-Alive", "timeout=5"},
                 {"Proxy-Connection", "close"},
                 {"TE", "trailers"},
                 {"Trailer", "X-Sum"},
                 {"Transfer-Encoding", "chunked"},
                 {"UPGRADE", "h2c"},
                 {"Accept", "*/*"},
                 {"Cookie", "a=1"}};
    remove_hop_by_hop(h, false);
    EXPECT_EQ(names(h), (std::vector<std::string>{"Host", "Accept", "Cookie"}));
}

// Headers named in any Connection header are removed too (but never Host).
TEST(Forwarding, RemovesConnectionNamedHeaders) {
    Headers h = {{"Host", "a.example"},  {"Connection", "close, X-Secret ,x-other"},
                 {"Connection", "Host"}, {"X-Secret", "1"},
                 {"x-OTHER", "2"},       {"X-Secret", "3"},
                 {"X-Kept", "4"}};
    remove_hop_by_hop(h, false);
    EXPECT_EQ(names(h), (std::vector<std::string>{"Host", "X-Kept"}));
}

// An upgrade keeps Upgrade and gets exactly one "Connection: upgrade".
TEST(Forwarding, KeepsUpgradeForUpgradeRequest) {
    Headers h = {{"Host", "a.example"},
                 {"Connection", "keep-alive, Upgrade"},
                 {"Upgrade", "websocket"},
                 {"Sec-WebSocket-Key", "k"}};
    ASSERT_TRUE(is_upgrade(h));
    rewrite_request_headers(h, kFwd);
    EXPECT_EQ(count(h, "Connection"), 1u);
    EXPECT_EQ(*find_header(h, "Connection"), "upgrade");
    EXPECT_EQ(*find_header(h, "Upgrade"), "websocket");
    EXPECT_EQ(*find_header(h, "Sec-WebSocket-Key"), "k");
}

// Without the Connection token, an Upgrade header alone is not an upgrade and is stripped.
TEST(Forwarding, UpgradeNeedsBothHeaders) {
    EXPECT_FALSE(is_upgrade(Headers{{"Upgrade", "websocket"}}));
    EXPECT_FALSE(is_upgrade(Headers{{"Connection", "upgrade"}}));
    EXPECT_FALSE(is_upgrade(Headers{{"Connection", "upgrade"}, {"Upgrade", "  "}}));
    EXPECT_FALSE(is_upgrade(Headers{{"Connection", "upgraded"}, {"Upgrade", "websocket"}}));
    EXPECT_TRUE(is_upgrade(
        Headers{{"connection", "close"}, {"CONNECTION", " UpGrade "}, {"upgrade", "websocket"}}));
    Headers h = {{"Upgrade", "websocket"}, {"Host", "a"}};
    rewrite_request_headers(h, kFwd);
    EXPECT_FALSE(find_header(h, "Upgrade"));
    EXPECT_FALSE(find_header(h, "Connection"));
}

// is_upgrade on Beast requests agrees with the proto-header version.
TEST(Forwarding, IsUpgradeBeast) {
    bh::request<bh::string_body> req{bh::verb::get, "/ws", 11};
    EXPECT_FALSE(is_upgrade(req));
    req.set(bh::field::connection, "keep-alive, Upgrade");
    EXPECT_FALSE(is_upgrade(req));
    req.set(bh::field::upgrade, "websocket");
    EXPECT_TRUE(is_upgrade(req));
    EXPECT_TRUE(is_upgrade(req.base()));
}

// From a trusted proxy, XFF is appended to the existing value; several XFF headers merge into
// the first, in order.
TEST(Forwarding, XForwardedForAppendsForTrustedPeer) {
    Headers h = {{"Host", "a"},
                 {"X-Forwarded-For", "198.51.100.1"},
                 {"Accept", "*/*"},
                 {"x-forwarded-for", " 10.0.0.1, 10.0.0.2 "}};
    RequestForwarding trusted = kFwd;
    trusted.trusted_peer = true;
    rewrite_request_headers(h, trusted);
    EXPECT_EQ(count(h, "X-Forwarded-For"), 1u);
    EXPECT_EQ(h[1].name, "X-Forwarded-For");
    EXPECT_EQ(h[1].value, "198.51.100.1, 10.0.0.1, 10.0.0.2, 203.0.113.7");
    EXPECT_EQ(h[2].name, "Accept");

    Headers fresh = {{"Host", "a"}};
    rewrite_request_headers(fresh, kFwd);
    EXPECT_EQ(*find_header(fresh, "X-Forwarded-For"), "203.0.113.7");
}

// From any other peer, every client-address header is dropped: XFF, Forwarded and X-Real-IP
// carry the peer address alone, and the other claims are gone whatever their case.
TEST(Forwarding, UntrustedPeerClaimsDropped) {
    Headers h = {{"Host", "a.example"},
                 {"X-Forwarded-For", "10.9.9.9"},
                 {"x-forwarded-for", "10.8.8.8"},
                 {"Forwarded", "for=10.9.9.9;proto=http"},
                 {"X-Real-IP", "10.9.9.9"},
                 {"True-Client-IP", "10.9.9.9"},
                 {"CF-Connecting-IP", "10.9.9.9"},
                 {"x-client-ip", "10.9.9.9"},
                 {"X-Cluster-Client-IP", "10.9.9.9"},
                 {"X-Forwarded-Port", "80"},
                 {"X-Forwarded-Ssl", "off"},
                 {"X-Forwarded-Proto", "http"},
                 {"X-Forwarded-Host", "evil.example"},
                 {"Accept", "*/*"}};
    rewrite_request_headers(h, kFwd);
    for (auto name : client_address_headers()) {
        const bool ours = iequals(name, "x-forwarded-for") || iequals(name, "forwarded") ||
                          iequals(name, "x-real-ip") || iequals(name, "x-forwarded-proto") ||
                          iequals(name, "x-forwarded-host");
        EXPECT_EQ(count(h, name), ours ? 1u : 0u) << name;
    }
    EXPECT_EQ(*find_header(h, "X-Forwarded-For"), "203.0.113.7");
    EXPECT_EQ(*find_header(h, "Forwarded"), "for=203.0.113.7;proto=https;host=a.example");
    EXPECT_EQ(*find_header(h, "X-Real-IP"), "203.0.113.7");
    EXPECT_EQ(*find_header(h, "X-Forwarded-Proto"), "https");
    EXPECT_EQ(*find_header(h, "X-Forwarded-Host"), "a.example");
    EXPECT_EQ(*find_header(h, "Accept"), "*/*");
}

// A trusted proxy's chains are kept and extended (Forwarded elements merged in order, ours
// last), its X-Real-IP and other client-address headers kept; Proto and Host stay ours.
TEST(Forwarding, TrustedPeerChainsExtended) {
    Headers h = {{"Host", "a.example"},
                 {"Forwarded", "for=192.0.2.60;proto=http"},
                 {"X-Forwarded-For", "192.0.2.60"},
                 {"forwarded", "for=\"[2001:db8::9]\""},
                 {"X-Real-IP", "192.0.2.60"},
                 {"X-Real-IP", "192.0.2.61"},
                 {"CF-Connecting-IP", "192.0.2.60"},
                 {"X-Forwarded-Host", "other.example"}};
    RequestForwarding trusted = kFwd;
    trusted.trusted_peer = true;
    rewrite_request_headers(h, trusted);
    EXPECT_EQ(count(h, "Forwarded"), 1u);
    EXPECT_EQ(*find_header(h, "Forwarded"),
              "for=192.0.2.60;proto=http, for=\"[2001:db8::9]\", "
              "for=203.0.113.7;proto=https;host=a.example");
    EXPECT_EQ(*find_header(h, "X-Forwarded-For"), "192.0.2.60, 203.0.113.7");
    EXPECT_EQ(count(h, "X-Real-IP"), 1u);
    EXPECT_EQ(*find_header(h, "X-Real-IP"), "192.0.2.60");
    EXPECT_EQ(*find_header(h, "CF-Connecting-IP"), "192.0.2.60");
    EXPECT_EQ(*find_header(h, "X-Forwarded-Host"), "a.example");

    Headers none = {{"Host", "a.example"}};
    rewrite_request_headers(none, trusted);
    EXPECT_EQ(*find_header(none, "X-Real-IP"), "203.0.113.7");  // nothing to keep: the peer
}

// RFC 7239 syntax: an IPv6 node is bracketed and quoted, a host with a port quoted, tokens bare.
TEST(Forwarding, ForwardedElementSyntax) {
    Headers h = {{"Host", "a.example"}};
    RequestForwarding v6{"2001:db8::1", "https", "req-1", "[2001:db8::2]:8443"};
    rewrite_request_headers(h, v6);
    EXPECT_EQ(*find_header(h, "Forwarded"),
              "for=\"[2001:db8::1]\";proto=https;host=\"[2001:db8::2]:8443\"");
    EXPECT_EQ(*find_header(h, "X-Forwarded-For"), "2001:db8::1");
    EXPECT_EQ(*find_header(h, "X-Real-IP"), "2001:db8::1");
    EXPECT_EQ(forwarded_value("app.example"), "app.example");
    EXPECT_EQ(forwarded_value("app.example:8443"), "\"app.example:8443\"");
    EXPECT_EQ(forwarded_value("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(forwarded_value(""), "\"\"");
}

// The routed authority replaces every Host the visitor sent and is X-Forwarded-Host; a request
// without Host gets one first. Without fwd.host the visitor's Host stays.
TEST(Forwarding, HostIsTheRoutedAuthority) {
    RequestForwarding routed = kFwd;
    routed.host = "app.example:8443";
    Headers h = {{"Accept", "*/*"}, {"host", "evil.example"}, {"Host", "evil2.example"}};
    rewrite_request_headers(h, routed);
    EXPECT_EQ(count(h, "Host"), 1u);
    EXPECT_EQ(h[1].value, "app.example:8443");
    EXPECT_EQ(*find_header(h, "X-Forwarded-Host"), "app.example:8443");
    EXPECT_EQ(*find_header(h, "Forwarded"),
              "for=203.0.113.7;proto=https;host=\"app.example:8443\"");
    Headers none = {{"Accept", "*/*"}};
    rewrite_request_headers(none, routed);
    EXPECT_EQ(none[0].name, "Host");
    EXPECT_EQ(none[0].value, "app.example:8443");
}

// Proto, Host and request id are set (visitor values replaced); X-Real-IP is the peer; Host kept
// when no routed authority is given.
TEST(Forwarding, SetsForwardingHeaders) {
    Headers h = {{"Host", "App.Example:8443"}, {"X-Forwarded-Proto", "gopher"},
                 {"X-Forwarded-Host", "evil"}, {"X-Request-Id", "spoofed"},
                 {"X-Request-Id", "spoofed2"}, {"X-Real-IP", "192.0.2.9"}};
    rewrite_request_headers(h, kFwd);
    EXPECT_EQ(*find_header(h, "Host"), "App.Example:8443");
    EXPECT_EQ(*find_header(h, "X-Forwarded-Proto"), "https");
    EXPECT_EQ(*find_header(h, "X-Forwarded-Host"), "App.Example:8443");
    EXPECT_EQ(*find_header(h, "X-Request-Id"), "req-1");
    EXPECT_EQ(count(h, "X-Request-Id"), 1u);
    EXPECT_EQ(*find_header(h, "X-Real-IP"), "203.0.113.7");
    EXPECT_EQ(count(h, "X-Real-IP"), 1u);

    Headers g = {{"Host", "a"}};
    rewrite_request_headers(g, kFwd);
    EXPECT_EQ(*find_header(g, "X-Real-IP"), "203.0.113.7");
    EXPECT_EQ(*find_header(g, "X-Forwarded-Host"), "a");
}

// Response: hop-by-hop removed, security headers added unless present, HSTS only when configured.
TEST(Forwarding, ResponseHeaders) {
    Headers h = {{"Content-Type", "text/html"},
                 {"Transfer-Encoding", "chunked"},
                 {"Connection", "close, X-Internal"},
                 {"X-Internal", "1"},
                 {"Referrer-Policy", "no-referrer"},
                 {"Set-Cookie", "a=1"},
                 {"Set-Cookie", "b=2"}};
    rewrite_response_headers(h, {});
    EXPECT_FALSE(find_header(h, "Transfer-Encoding"));
    EXPECT_FALSE(find_header(h, "X-Internal"));
    EXPECT_EQ(*find_header(h, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(*find_header(h, "Referrer-Policy"), "no-referrer");
    EXPECT_EQ(count(h, "Set-Cookie"), 2u);
    EXPECT_FALSE(find_header(h, "Strict-Transport-Security"));

    Headers g;
    rewrite_response_headers(g, {.hsts = "max-age=31536000", .upgrade = false});
    EXPECT_EQ(*find_header(g, "Strict-Transport-Security"), "max-age=31536000");
    EXPECT_EQ(*find_header(g, "Referrer-Policy"), "strict-origin-when-cross-origin");
}

// A 101 response keeps its Upgrade and Connection: upgrade.
TEST(Forwarding, SwitchingProtocolsResponse) {
    Headers h = {
        {"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", "x"}};
    rewrite_response_headers(h, {.hsts = std::nullopt, .upgrade = true});
    EXPECT_TRUE(is_upgrade(h));
    EXPECT_EQ(count(h, "Connection"), 1u);
}

// Limits and syntax checks give distinct errors.
TEST(Forwarding, CheckHeaders) {
    EXPECT_TRUE(check_headers({{"Host", "a"}, {"X", "tab\tok"}}).ok());
    Headers many(101, {"X-A", "1"});
    EXPECT_EQ(check_headers(many).error(), make_error_code(Errc::kTooManyHeaders));
    EXPECT_TRUE(check_headers(many, {.max_count = 101, .max_total_bytes = 1000}).ok());
    Headers big = {{"X-Big", std::string(40000, 'a')}};
    EXPECT_EQ(check_headers(big).error(), make_error_code(Errc::kHeadersTooLarge));
    EXPECT_EQ(check_headers({{"", "v"}}).error(), make_error_code(Errc::kBadHeaderName));
    EXPECT_EQ(check_headers({{"Bad Name", "v"}}).error(), make_error_code(Errc::kBadHeaderName));
    EXPECT_EQ(check_headers({{"X:y", "v"}}).error(), make_error_code(Errc::kBadHeaderName));
    EXPECT_EQ(check_headers({{"X", "a\r\nInjected: 1"}}).error(),
              make_error_code(Errc::kBadHeaderValue));
    EXPECT_EQ(check_headers({{"X", std::string("a\0b", 3)}}).error(),
              make_error_code(Errc::kBadHeaderValue));
}

// Beast <-> proto conversion keeps order, duplicates and the name spelling. Beast itself files a
// repeated name right after its last occurrence, so same-named fields end up adjacent.
TEST(Forwarding, BeastRoundTrip) {
    const Headers in = {{"Host", "a.example"},
                        {"Set-Cookie", "a=1"},
                        {"x-custom", "v"},
                        {"set-cookie", "b=2"},
                        {"Accept", "*/*"}};
    bh::fields f;
    to_beast(in, f);
    const Headers want = {{"Host", "a.example"},
                          {"Set-Cookie", "a=1"},
                          {"set-cookie", "b=2"},
                          {"x-custom", "v"},
                          {"Accept", "*/*"}};
    EXPECT_EQ(from_beast(f), want);
    bh::fields back;
    to_beast(want, back);
    EXPECT_EQ(from_beast(back), want);
}

// has_token splits lists and ignores case and whitespace.
TEST(Forwarding, HasToken) {
    const Headers h = {{"Connection", "keep-alive,  Upgrade "}, {"TE", "trailers"}};
    EXPECT_TRUE(has_token(h, "connection", "upgrade"));
    EXPECT_TRUE(has_token(h, "connection", "KEEP-ALIVE"));
    EXPECT_FALSE(has_token(h, "connection", "close"));
    EXPECT_TRUE(has_token(h, "te", "trailers"));
}

}  // namespace
}  // namespace hopgate::http
