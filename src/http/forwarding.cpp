#include "http/forwarding.hpp"

#include <algorithm>
#include <array>

namespace hopgate::http {
namespace {

namespace bh = boost::beast::http;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Calls f(token) for each non-empty element of a comma-separated list.
template <class F>
void for_each_token(std::string_view list, F&& f) {
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        const std::string_view tok = trim_ows(list.substr(0, comma));
        if (!tok.empty()) {
            f(tok);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        list.remove_prefix(comma + 1);
    }
}

constexpr std::array<std::string_view, 7> kHopByHop = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
};

void erase_named(Headers& h, std::string_view name) {
    std::erase_if(h, [&](const proto::Header& x) { return iequals(x.name, name); });
}

void set_header(Headers& h, std::string_view name, std::string_view value) {
    auto it = std::find_if(h.begin(), h.end(),
                           [&](const proto::Header& x) { return iequals(x.name, name); });
    if (it == h.end()) {
        h.push_back({std::string(name), std::string(value)});
        return;
    }
    it->value.assign(value);
    // Drop later duplicates so the value is unambiguous.
    auto next = std::next(it);
    h.erase(std::remove_if(next, h.end(),
                           [&](const proto::Header& x) { return iequals(x.name, name); }),
            h.end());
}

void add_if_absent(Headers& h, std::string_view name, std::string_view value) {
    if (!find_header(h, name)) {
        h.push_back({std::string(name), std::string(value)});
    }
}

}  // namespace

// RFC 9110 §5.6.2 tchar.
bool is_tchar(char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
            return true;
        default:
            return false;
    }
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

core::Status check_headers(const Headers& headers, const HeaderLimits& limits) {
    if (headers.size() > limits.max_count) {
        return Errc::kTooManyHeaders;
    }
    std::size_t total = 0;
    for (const auto& h : headers) {
        total += h.name.size() + h.value.size();
        if (total > limits.max_total_bytes) {
            return Errc::kHeadersTooLarge;
        }
        if (h.name.empty() || !std::all_of(h.name.begin(), h.name.end(), is_tchar)) {
            return Errc::kBadHeaderName;
        }
        for (char c : h.value) {
            const auto u = static_cast<unsigned char>(c);
            if ((u < 0x20 && c != '\t') || u == 0x7f) {
                return Errc::kBadHeaderValue;
            }
        }
    }
    return {};
}

std::optional<std::string_view> find_header(const Headers& headers, std::string_view name) {
    for (const auto& h : headers) {
        if (iequals(h.name, name)) {
            return std::string_view(h.value);
        }
    }
    return std::nullopt;
}

bool has_token(const Headers& headers, std::string_view name, std::string_view token) {
    bool found = false;
    for (const auto& h : headers) {
        if (iequals(h.name, name)) {
            for_each_token(h.value,
                           [&](std::string_view t) { found = found || iequals(t, token); });
        }
    }
    return found;
}

bool is_upgrade(const Headers& headers) {
    const auto up = find_header(headers, "Upgrade");
    return up && !trim_ows(*up).empty() && has_token(headers, "Connection", "upgrade");
}

bool is_upgrade(const bh::fields& fields) {
    const auto up = fields.find(bh::field::upgrade);
    if (up == fields.end() || trim_ows(up->value()).empty()) {
        return false;
    }
    bool found = false;
    auto range = fields.equal_range(bh::field::connection);
    for (auto it = range.first; it != range.second; ++it) {
        for_each_token(it->value(),
                       [&](std::string_view t) { found = found || iequals(t, "upgrade"); });
    }
    return found;
}

bool is_upgrade(const bh::request_header<>& request) {
    return is_upgrade(static_cast<const bh::fields&>(request));
}

void remove_hop_by_hop(Headers& headers, bool keep_upgrade) {
    // Names listed in Connection are collected before Connection itself goes.
    std::vector<std::string> named;
    for (const auto& h : headers) {
        if (iequals(h.name, "connection")) {
            for_each_token(h.value, [&](std::string_view t) { named.emplace_back(t); });
        }
    }
    std::erase_if(headers, [&](const proto::Header& h) {
        if (keep_upgrade && iequals(h.name, "upgrade")) {
            return false;
        }
        for (auto n : kHopByHop) {
            if (iequals(h.name, n)) {
                return true;
            }
        }
        for (const auto& n : named) {
            // "Connection: close, Host" must not cost the local service its Host header; a peer
            // cannot use Connection to strip what the proxy relies on.
            if (iequals(h.name, n) && !iequals(n, "host")) {
                return true;
            }
        }
        return false;
    });
    if (keep_upgrade) {
        headers.push_back({"Connection", "upgrade"});
    }
}

std::span<const std::string_view> client_address_headers() {
    // Each is read by some framework or proxy as the client's address, scheme or host.
    static constexpr std::array<std::string_view, 23> kNames = {
        "forwarded",           "x-forwarded-for",      "x-forwarded-host",
        "x-forwarded-proto",   "x-forwarded-port",     "x-forwarded-server",
        "x-forwarded-scheme",  "x-forwarded-ssl",      "x-url-scheme",
        "front-end-https",     "x-real-ip",            "true-client-ip",
        "cf-connecting-ip",    "x-client-ip",          "client-ip",
        "x-cluster-client-ip", "fastly-client-ip",     "x-original-forwarded-for",
        "x-originating-ip",    "x-remote-ip",          "x-remote-addr",
        "x-proxyuser-ip",      "x-envoy-external-address",
    };
    return kNames;
}

std::string forwarded_value(std::string_view v) {
    if (!v.empty() && std::all_of(v.begin(), v.end(), is_tchar)) {
        return std::string(v);
    }
    std::string out = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    out += '"';
    return out;
}

namespace {

// Joins every `name` header's value (in order) and then `append` into one header where the first
// one was (or at the end).
void merge_and_append(Headers& headers, std::string_view name, std::string_view append) {
    std::string joined;
    std::ptrdiff_t first = -1;
    for (std::size_t i = 0; i < headers.size(); ++i) {
        if (!iequals(headers[i].name, name)) {
            continue;
        }
        if (first < 0) {
            first = static_cast<std::ptrdiff_t>(i);
        }
        const std::string_view v = trim_ows(headers[i].value);
        if (!v.empty()) {
            if (!joined.empty()) {
                joined += ", ";
            }
            joined += v;
        }
    }
    if (!append.empty()) {
        if (!joined.empty()) {
            joined += ", ";
        }
        joined += append;
    }
    if (first >= 0) {
        headers[static_cast<std::size_t>(first)].value = joined;
        std::size_t seen = 0;
        std::erase_if(headers,
                      [&](const proto::Header& h) { return iequals(h.name, name) && seen++ > 0; });
    } else if (!joined.empty()) {
        headers.push_back({std::string(name), joined});
    }
}

}  // namespace

void rewrite_request_headers(Headers& headers, const RequestForwarding& fwd) {
    remove_hop_by_hop(headers, is_upgrade(headers));
    if (!fwd.trusted_peer) {
        const auto names = client_address_headers();
        std::erase_if(headers, [&](const proto::Header& h) {
            return std::any_of(names.begin(), names.end(),
                               [&](std::string_view n) { return iequals(h.name, n); });
        });
    }
    if (!fwd.host.empty()) {
        if (find_header(headers, "Host")) {
            set_header(headers, "Host", fwd.host);
        } else {
            headers.insert(headers.begin(), {"Host", std::string(fwd.host)});
        }
    }
    const std::optional<std::string> host =
        find_header(headers, "Host") ? std::optional<std::string>(*find_header(headers, "Host"))
                                     : std::nullopt;

    merge_and_append(headers, "X-Forwarded-For", fwd.client_ip);

    std::string element;
    if (!fwd.client_ip.empty()) {
        // RFC 7239 §6: an IPv6 node is bracketed (and so quoted).
        element = "for=" + forwarded_value(fwd.client_ip.find(':') == std::string_view::npos
                                               ? std::string(fwd.client_ip)
                                               : "[" + std::string(fwd.client_ip) + "]");
    }
    if (!fwd.proto.empty()) {
        element += (element.empty() ? "proto=" : ";proto=") + forwarded_value(fwd.proto);
    }
    if (host && !host->empty()) {
        element += (element.empty() ? "host=" : ";host=") + forwarded_value(*host);
    }
    merge_and_append(headers, "Forwarded", element);

    set_header(headers, "X-Forwarded-Proto", fwd.proto);
    if (host) {
        set_header(headers, "X-Forwarded-Host", *host);
    } else {
        erase_named(headers, "X-Forwarded-Host");
    }
    if (!fwd.client_ip.empty()) {
        if (fwd.trusted_peer && find_header(headers, "X-Real-IP")) {
            const std::string kept(*find_header(headers, "X-Real-IP"));
            set_header(headers, "X-Real-IP", kept);  // one value, the proxy's
        } else {
            set_header(headers, "X-Real-IP", fwd.client_ip);
        }
    }
    if (!fwd.request_id.empty()) {
        set_header(headers, "X-Request-Id", fwd.request_id);
    }
}

void rewrite_response_headers(Headers& headers, const ResponseForwarding& fwd) {
    remove_hop_by_hop(headers, fwd.upgrade);
    add_if_absent(headers, "X-Content-Type-Options", "nosniff");
    add_if_absent(headers, "Referrer-Policy", "strict-origin-when-cross-origin");
    if (fwd.hsts && !fwd.hsts->empty()) {
        add_if_absent(headers, "Strict-Transport-Security", *fwd.hsts);
    }
}

Headers from_beast(const bh::fields& fields) {
    Headers out;
    // Room for the forwarding headers added next (X-Forwarded-*, X-Real-IP, X-Request-Id).
    out.reserve(static_cast<std::size_t>(std::distance(fields.begin(), fields.end())) + 6);
    for (const auto& f : fields) {
        out.push_back({std::string(f.name_string()), std::string(f.value())});
    }
    return out;
}

void to_beast(const Headers& headers, bh::fields& fields) {
    for (const auto& h : headers) {
        fields.insert(h.name, h.value);
    }
}

}  // namespace hopgate::http
