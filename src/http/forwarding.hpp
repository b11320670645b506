// Header rewriting for the proxy, on the header list that travels in a stream's OPEN metadata
// (proto::StreamMeta::headers), plus conversions to and from Boost.Beast field containers.
//
// Pure functions over values; call them on the connection's strand like anything else there.
// Header names compare case-insensitively; order and duplicates are preserved except where a
// function says it replaces or merges a header.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "http/error.hpp"
#include "proto/meta.hpp"

namespace hopgate::http {

using Headers = std::vector<proto::Header>;

struct HeaderLimits {
    std::size_t max_count = 100;              // header fields (proto allows up to 256)
    std::size_t max_total_bytes = 32 * 1024;  // sum of name and value sizes
};

// Checks a header list against `limits` and RFC 9110 syntax: names are non-empty tchar tokens,
// values hold no CR, LF, NUL or other control character except tab. Errors: kTooManyHeaders,
// kHeadersTooLarge, kBadHeaderName, kBadHeaderValue. Run it on every list that comes from a peer
// (visitor or tunnel client) before rewriting it.
core::Status check_headers(const Headers& headers, const HeaderLimits& limits = {});

// RFC 9110 §5.6.2: `c` may appear in a token (a header name, a method, a coding).
bool is_tchar(char c);
// `s` without leading and trailing spaces and tabs (RFC 9110 OWS).
std::string_view trim_ows(std::string_view s);

// Case-insensitive ASCII comparison of header names / tokens.
bool iequals(std::string_view a, std::string_view b);

// The value of the first header named `name`, if any.
std::optional<std::string_view> find_header(const Headers& headers, std::string_view name);

// True if the comma-separated token list in any `name` header contains `token`
// (case-insensitive, optional whitespace around tokens), e.g. has_token(h, "Connection",
// "upgrade").
bool has_token(const Headers& headers, std::string_view name, std::string_view token);

// An upgrade request (RFC 9110 §7.8): a Connection header listing "upgrade" and a non-empty
// Upgrade header. Works for a 101 response head too.
bool is_upgrade(const Headers& headers);
bool is_upgrade(const boost::beast::http::fields& fields);
bool is_upgrade(const boost::beast::http::request_header<>& request);

// Removes hop-by-hop headers: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade, and every header named in a Connection header. With
// `keep_upgrade` (an upgrade request or a 101 response) the Upgrade header is kept and a single
// "Connection: upgrade" is appended, so the other side still sees the upgrade.
void remove_hop_by_hop(Headers& headers, bool keep_upgrade);

struct RequestForwarding {
    // Default member initializers let g++ 12's -Wmissing-field-initializers accept brace
    // initialisation that omits the later members.
    std::string_view client_ip{};   // the TCP peer's address, no port, IPv6 without brackets
    std::string_view proto{};       // "https" or "http": the scheme the visitor used
    std::string_view request_id{};  // the id logged for this request; also in StreamMeta
    // The authority the request was routed on (to_string(RequestAuthority::authority)): it
    // becomes Host and X-Forwarded-Host. Empty keeps the visitor's Host.
    std::string_view host{};
    // The peer is a proxy in front of us (HOP_SERVER_TRUSTED_PROXIES): its client-address
    // headers are kept and its X-Forwarded-For / Forwarded chains extended.
    bool trusted_peer = false;
};

// Headers through which a visitor could claim a client address, scheme or host that the local
// service might believe (X-Forwarded-*, Forwarded, X-Real-IP, True-Client-IP, CF-Connecting-IP,
// X-Client-IP, ...; lower-case). rewrite_request_headers drops all of them when the peer is not
// a trusted proxy.
std::span<const std::string_view> client_address_headers();

// RFC 7239 node or value: a token as is, anything else (an IPv6 node "[2001:db8::1]", a host
// with a port) as a quoted-string.
std::string forwarded_value(std::string_view v);

// Rewrites a visitor's request headers for the local service:
//   - hop-by-hop headers removed (the upgrade kept if is_upgrade(headers));
//   - unless fwd.trusted_peer, every client_address_headers() header removed first: what the
//     local service sees about the client then comes from this proxy alone;
//   - Host set to fwd.host (one header, where the first Host was, else first) when non-empty;
//   - X-Forwarded-For: the kept values (all XFF headers, in order) comma-joined, then client_ip;
//     one header, placed where the first XFF was (or appended);
//   - Forwarded (RFC 7239): the kept elements likewise, then
//     `for=<client_ip>;proto=<proto>;host=<Host>` (IPv6 as for="[v6]", host quoted when it has
//     a port);
//   - X-Forwarded-Proto set to `proto` and X-Forwarded-Host to the Host value (these describe
//     our edge); no Host, no X-Forwarded-Host;
//   - X-Real-IP set to client_ip, except that a trusted peer's own X-Real-IP is kept;
//   - X-Request-Id set to request_id (replacing a visitor-supplied one).
// Call check_headers() first; this function does not enforce limits.
void rewrite_request_headers(Headers& headers, const RequestForwarding& fwd);

struct ResponseForwarding {
    std::optional<std::string> hsts;  // Strict-Transport-Security value to set if absent
    bool upgrade = false;             // the response is a 101 to an upgrade request
};

// Rewrites the local service's response headers for the visitor: hop-by-hop removed (upgrade kept
// for a 101), X-Content-Type-Options: nosniff and Referrer-Policy:
// strict-origin-when-cross-origin added unless present, Strict-Transport-Security added from
// `fwd.hsts` unless present.
void rewrite_response_headers(Headers& headers, const ResponseForwarding& fwd);

// Beast <-> proto conversions, preserving order, duplicates and the name spelling. Note that
// beast::http::fields (and so its parser) files a repeated name right after the last field of that
// name: interleaved duplicates ("A, B, A") come out grouped ("A, A, B"). Nothing in HTTP semantics
// depends on the interleaving (RFC 9110 §5.3).
Headers from_beast(const boost::beast::http::fields& fields);
// Appends every header to `fields` (insert, not set: duplicates stay duplicates).
void to_beast(const Headers& headers, boost::beast::http::fields& fields);

}  // namespace hopgate::http
