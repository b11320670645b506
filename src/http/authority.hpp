// RFC 3986 / RFC 9110 authority parsing for the Host header and absolute-form request targets.
//
// The proxy routes on route_key(parse_authority(host)), so two spellings of the same host
// ("Example.COM.:443" and "example.com") route the same way, and IPv6 literals work.
// Pure functions; no allocation beyond the returned strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "http/error.hpp"

namespace hopgate::http {

inline constexpr std::size_t kMaxAuthorityLength = 1024;  // whole input
inline constexpr std::size_t kMaxHostLength = 255;        // host part, as written
inline constexpr std::size_t kMaxLabelLength = 63;

enum class HostKind : std::uint8_t {
    kRegName,  // a DNS-style name: [a-z0-9-_~] labels separated by '.'
    kIpv4,     // dotted quad
    kIpv6,     // bracketed literal in the input
};

struct Authority {
    // Normalised host: reg-names lower-cased without a trailing dot; IPv4 as four decimal
    // numbers; IPv6 in RFC 5952 canonical text (lower-case, longest zero run as "::"),
    // without brackets.
    std::string host;
    HostKind kind = HostKind::kRegName;
    // Absent when the input has no ':' or an empty port ("host:").
    std::optional<std::uint16_t> port;
    friend bool operator==(const Authority&, const Authority&) = default;
};

// Parses `host [ ":" port ]` as it appears in a Host header or an absolute-form target.
// Errors (http::Errc): kAuthorityEmpty, kAuthorityTooLong (> 1024 bytes), kHostTooLong (host >
// 255 bytes or a label > 63), kUserinfo ('@'), kBadChar (whitespace, controls, bytes >= 0x80, '%'
// percent-encoding, or anything outside ALPHA DIGIT '-' '.' '_' '~' in a reg-name; sub-delims
// are refused because no routable DNS name has them), kEmptyLabel, kBadPort (non-digits or
// > 65535), kBadIpv4 (digits and dots only but not a valid dotted quad; leading zeros refused),
// kBadIpv6 (including IPvFuture "[v1.x]"), kZoneId ("[fe80::1%25eth0]"), kUnterminatedBracket.
core::Result<Authority> parse_authority(std::string_view input);

// What the proxy routes on: the normalised host without port or brackets. Equal to
// `a.host`; a function so callers do not depend on that.
std::string route_key(const Authority& a);

// The authority as text again: host (brackets restored for IPv6) plus ":port" if present.
std::string to_string(const Authority& a);

// The authority a request is routed on, checked per RFC 9112 §3.2.
struct RequestAuthority {
    // The Host field's authority, or the absolute-form target's one (normalised; the port as
    // the visitor wrote it). The local service gets to_string(authority) as its Host.
    Authority authority;
    // For an absolute-form target ("http://host/p?q"): its path and query in origin-form
    // ("/p?q"; "/" when the path is empty), which is what the local service gets. Empty for any
    // other target form (forward the target unchanged).
    std::string origin_target;
    friend bool operator==(const RequestAuthority&, const RequestAuthority&) = default;
};

// Checks and resolves a request's authority. `hosts` holds the value of every Host field in the
// request, in order; `target` is the request-target; `http11` is true for HTTP/1.1 and later.
// An absolute-form target ("http://" or "https://", any case) routes on its own authority, and a
// Host field, when present, must name the same host and port (an absent port meaning the
// scheme's default); any other target routes on the Host field.
// Errors (http::Errc): kHostRepeated (several Host fields, even equal ones), kHostMissing (no
// Host on HTTP/1.1, or none to route an origin-form HTTP/1.0 request), kHostMismatch (Host
// disagrees with the absolute-form authority, or does not parse), or the parse_authority error
// of the authority routed on.
core::Result<RequestAuthority> request_authority(std::span<const std::string_view> hosts,
                                                 std::string_view target, bool http11);

}  // namespace hopgate::http
