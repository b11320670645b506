#include "http/authority.hpp"

#include <array>
#include <cstdio>

namespace hopgate::http {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char c) {
    if (is_digit(c)) {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return c - 'A' + 10;
}
char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Whitespace, C0 controls, DEL and non-ASCII are refused anywhere in the input before any
// structural parsing, so no later branch has to think about them.
bool is_forbidden_byte(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u >= 0x7f;
}

// RFC 3986 unreserved; '%' (pct-encoded) and sub-delims are rejected on purpose.
bool is_regname_char(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

core::Result<std::optional<std::uint16_t>> parse_port(std::string_view p) {
    if (p.empty()) {
        return std::optional<std::uint16_t>{};  // "host:" — RFC 3986 allows an empty port
    }
    std::uint32_t v = 0;
    for (char c : p) {
        if (!is_digit(c)) {
            return Errc::kBadPort;
        }
        v = v * 10 + static_cast<std::uint32_t>(c - '0');
        if (v > 65535) {
            return Errc::kBadPort;
        }
    }
    return std::optional<std::uint16_t>{static_cast<std::uint16_t>(v)};
}

// Dotted quad, each part 0..255 without leading zeros (leading zeros mean octal to some
// resolvers; refusing them removes the ambiguity).
bool parse_ipv4(std::string_view s, std::array<std::uint8_t, 4>& out) {
    std::size_t part = 0;
    std::size_t i = 0;
    while (true) {
        if (part == 4 || i >= s.size() || !is_digit(s[i])) {
            return false;
        }
        std::uint32_t v = 0;
        const std::size_t start = i;
        while (i < s.size() && is_digit(s[i])) {
            v = v * 10 + static_cast<std::uint32_t>(s[i] - '0');
            if (v > 255) {
                return false;
            }
            ++i;
        }
        if (i - start > 1 && s[start] == '0') {
            return false;
        }
        out[part++] = static_cast<std::uint8_t>(v);
        if (i == s.size()) {
            return part == 4;
        }
        if (s[i] != '.') {
            return false;
        }
        ++i;
    }
}

// RFC 4291 §2.2 text forms, including "::" and a trailing embedded IPv4.
bool parse_ipv6(std::string_view s, std::array<std::uint16_t, 8>& out) {
    out.fill(0);
    std::array<std::uint16_t, 8> groups{};
    std::size_t n = 0;
    std::optional<std::size_t> gap;  // index in `groups` where "::" sits
    std::size_t i = 0;
    if (s.starts_with("::")) {
        gap = 0;
        i = 2;
        if (i == s.size()) {
            out = groups;
            return true;
        }
    } else if (s.starts_with(":")) {
        return false;
    }
    while (i < s.size()) {
        if (n == 8) {
            return false;
        }
        // Embedded IPv4 in the last 32 bits.
        const std::size_t rest_end = s.find(':', i);
        const std::string_view piece =
            s.substr(i, rest_end == std::string_view::npos ? std::string_view::npos : rest_end - i);
        if (rest_end == std::string_view::npos && piece.find('.') != std::string_view::npos) {
            std::array<std::uint8_t, 4> v4{};
            if (n > 6 || !parse_ipv4(piece, v4)) {
                return false;
            }
            groups[n++] = static_cast<std::uint16_t>((v4[0] << 8) | v4[1]);
            groups[n++] = static_cast<std::uint16_t>((v4[2] << 8) | v4[3]);
            i = s.size();
            break;
        }
        if (piece.empty() || piece.size() > 4) {
            return false;
        }
        std::uint32_t v = 0;
        for (char c : piece) {
            if (!is_hex(c)) {
                return false;
            }
            v = (v << 4) | static_cast<std::uint32_t>(hex_value(c));
        }
        groups[n++] = static_cast<std::uint16_t>(v);
        i += piece.size();
        if (i == s.size()) {
            break;
        }
        // s[i] == ':'
        if (i + 1 < s.size() && s[i + 1] == ':') {
            if (gap) {
                return false;  // two "::"
            }
            gap = n;
            i += 2;
            if (i == s.size()) {
                break;
            }
        } else {
            ++i;
            if (i == s.size()) {
                return false;  // trailing single ':'
            }
        }
    }
    if (gap) {
        if (n == 8) {
            return false;  // "::" must stand for at least one group
        }
        const std::size_t fill = 8 - n;
        for (std::size_t k = 0; k < *gap; ++k) {
            out[k] = groups[k];
        }
        for (std::size_t k = *gap; k < n; ++k) {
            out[k + fill] = groups[k];
        }
        return true;
    }
    if (n != 8) {
        return false;
    }
    out = groups;
    return true;
}

// RFC 5952 §4: lower-case hex, no leading zeros, the longest run (>= 2) of zero groups as "::"
// (first one on a tie).
std::string format_ipv6(const std::array<std::uint16_t, 8>& g) {
    std::size_t best_start = 8, best_len = 0;
    for (std::size_t k = 0; k < 8;) {
        if (g[k] != 0) {
            ++k;
            continue;
        }
        std::size_t j = k;
        while (j < 8 && g[j] == 0) {
            ++j;
        }
        if (j - k > best_len) {
            best_start = k;
            best_len = j - k;
        }
        k = j;
    }
    if (best_len < 2) {
        best_start = 8;
    }
    std::string out;
    char buf[8];
    for (std::size_t k = 0; k < 8; ++k) {
        if (k == best_start) {
            out += "::";
            k += best_len - 1;
            continue;
        }
        if (!out.empty() && out.back() != ':') {
            out += ':';
        }
        std::snprintf(buf, sizeof buf, "%x", static_cast<unsigned>(g[k]));
        out += buf;
    }
    return out;
}

core::Result<Authority> parse_bracketed(std::string_view in) {
    const std::size_t close = in.find(']');
    if (close == std::string_view::npos) {
        return Errc::kUnterminatedBracket;
    }
    const std::string_view lit = in.substr(1, close - 1);
    const std::string_view after = in.substr(close + 1);
    if (lit.find('%') != std::string_view::npos) {
        return Errc::kZoneId;
    }
    if (lit.find_first_of("[]") != std::string_view::npos) {
        return Errc::kUnterminatedBracket;
    }
    Authority a;
    a.kind = HostKind::kIpv6;
    if (!after.empty()) {
        if (after[0] != ':') {
            return after.find(']') != std::string_view::npos ? Errc::kUnterminatedBracket
                                                             : Errc::kBadPort;
        }
        auto port = parse_port(after.substr(1));
        if (!port) {
            return port.error();
        }
        a.port = *port;
    }
    if (lit.empty()) {
        return Errc::kBadIpv6;
    }
    std::array<std::uint16_t, 8> groups{};
    if (!parse_ipv6(lit, groups)) {
        return Errc::kBadIpv6;  // also IPvFuture ("v1.x"), which nothing routes
    }
    a.host = format_ipv6(groups);
    return a;
}

}  // namespace

core::Result<Authority> parse_authority(std::string_view in) {
    if (in.empty()) {
        return Errc::kAuthorityEmpty;
    }
    if (in.size() > kMaxAuthorityLength) {
        return Errc::kAuthorityTooLong;
    }
    for (char c : in) {
        if (is_forbidden_byte(c)) {
            return Errc::kBadChar;
        }
    }
    if (in.find('@') != std::string_view::npos) {
        return Errc::kUserinfo;
    }
    if (in.front() == '[') {
        return parse_bracketed(in);
    }
    if (in.find_first_of("[]") != std::string_view::npos) {
        return Errc::kUnterminatedBracket;
    }

    Authority a;
    std::string_view host = in;
    if (const std::size_t colon = in.find(':'); colon != std::string_view::npos) {
        host = in.substr(0, colon);
        // A second ':' means an IPv6 literal without brackets, or garbage: either way the port
        // holds a non-digit.
        auto port = parse_port(in.substr(colon + 1));
        if (!port) {
            return port.error();
        }
        a.port = *port;
    }
    if (host.empty()) {
        return Errc::kAuthorityEmpty;
    }
    if (host.size() > kMaxHostLength) {
        return Errc::kHostTooLong;
    }
    for (char c : host) {
        if (!is_regname_char(c)) {
            return Errc::kBadChar;  // '%' (percent-encoding) and sub-delims land here
        }
    }
    if (host.back() == '.') {
        host.remove_suffix(1);  // FQDN form: "example.com." is "example.com"
    }
    if (host.empty() || host.front() == '.' || host.back() == '.' ||
        host.find("..") != std::string_view::npos) {
        return Errc::kEmptyLabel;
    }

    bool digits_and_dots = true;
    std::size_t label = 0;
    for (char c : host) {
        if (c == '.') {
            label = 0;
            continue;
        }
        if (++label > kMaxLabelLength) {
            return Errc::kHostTooLong;
        }
        digits_and_dots = digits_and_dots && is_digit(c);
    }
    if (digits_and_dots) {
        // Looks like an address, so it must be one: "1.2.3.999" or "127.1" are refused rather
        // than routed as names that differ from what a resolver would make of them.
        std::array<std::uint8_t, 4> v4{};
        if (!parse_ipv4(host, v4)) {
            return Errc::kBadIpv4;
        }
        a.kind = HostKind::kIpv4;
        a.host = std::string(host);
        return a;
    }
    a.kind = HostKind::kRegName;
    a.host.reserve(host.size());
    for (char c : host) {
        a.host += to_lower(c);
    }
    return a;
}

std::string route_key(const Authority& a) { return a.host; }

core::Result<RequestAuthority> request_authority(std::span<const std::string_view> hosts,
                                                 std::string_view target, bool http11) {
    if (hosts.size() > 1) {
        return Errc::kHostRepeated;
    }
    // Absolute-form (RFC 9112 §3.2.2): the scheme decides the default port.
    std::uint16_t default_port = 0;
    std::string_view rest;
    for (const auto& [scheme, port] : {std::pair<std::string_view, std::uint16_t>{"http://", 80},
                                       std::pair<std::string_view, std::uint16_t>{"https://", 443}}) {
        if (target.size() >= scheme.size()) {
            bool same = true;
            for (std::size_t i = 0; i < scheme.size(); ++i) {
                same = same && to_lower(target[i]) == scheme[i];
            }
            if (same) {
                default_port = port;
                rest = target.substr(scheme.size());
            }
        }
    }
    RequestAuthority out;
    if (default_port == 0) {
        if (hosts.empty()) {
            return Errc::kHostMissing;
        }
        auto a = parse_authority(hosts.front());
        if (!a) {
            return a.error();
        }
        out.authority = std::move(*a);
        return out;
    }
    if (hosts.empty() && http11) {
        return Errc::kHostMissing;
    }
    const std::size_t end = rest.find_first_of("/?#");
    auto a = parse_authority(rest.substr(0, end));
    if (!a) {
        return a.error();
    }
    if (!hosts.empty()) {
        auto h = parse_authority(hosts.front());
        if (!h || h->host != a->host ||
            h->port.value_or(default_port) != a->port.value_or(default_port)) {
            return Errc::kHostMismatch;
        }
    }
    out.authority = std::move(*a);
    std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    path = path.substr(0, path.find('#'));  // a fragment is never part of a request
    out.origin_target.reserve(path.size() + 1);
    if (path.empty() || path.front() != '/') {
        out.origin_target.push_back('/');
    }
    out.origin_target.append(path);
    return out;
}

std::string to_string(const Authority& a) {
    std::string out;
    if (a.kind == HostKind::kIpv6) {
        out = "[" + a.host + "]";
    } else {
        out = a.host;
    }
    if (a.port) {
        out += ':';
        out += std::to_string(*a.port);
    }
    return out;
}

}  // namespace hopgate::http
