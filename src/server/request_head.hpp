// Translation between visitor HTTP messages (Beast) and tunnel stream heads (proto::StreamMeta),
// applying the proxy's header rules (hop-by-hop removal, X-Forwarded-*, security headers).
#pragma once

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "http/authority.hpp"
#include "proto/meta.hpp"

namespace hopgate::server {

// The routing key of a request: its Host (or absolute-form authority) lower-cased, port and
// trailing dot removed, IPv6 without brackets. nullopt when missing or malformed.
template <class Body>
std::optional<std::string> route_host(
    const boost::beast::http::request<Body, boost::beast::http::fields>& req);

std::optional<std::string> route_host_value(std::string_view host_header,
                                            std::string_view target);

// The checked authority of a visitor request (http::request_authority over its Host fields,
// target and version): several Host fields, a missing Host on HTTP/1.1 or a Host that disagrees
// with an absolute-form target are errors (the visitor gets a 400 page).
template <class Body>
core::Result<hopgate::http::RequestAuthority> route_request(
    const boost::beast::http::request<Body, boost::beast::http::fields>& req);

// Where a request came from, for the forwarding headers (http::RequestForwarding).
struct RequestOrigin {
    std::string_view peer_ip;    // the TCP peer's address as text (IPv4-mapped IPv6 is unmapped)
    bool trusted_proxy = false;  // the peer is in HOP_SERVER_TRUSTED_PROXIES
};

// The request head that goes into the tunnel: the target in origin-form, Host set to the routed
// authority, and the forwarding headers of http::rewrite_request_headers.
proto::StreamMeta request_head(
    const boost::beast::http::request<boost::beast::http::buffer_body>& req,
    const hopgate::http::RequestAuthority& route, const RequestOrigin& origin,
    const std::string& request_id);

// Fills the visitor response headers from the tunnel's response head (its `headers`, consumed;
// `upgrade`: a 101 answer); X-Request-Id is set to `request_id` (replacing the local service's).
void fill_response_headers(boost::beast::http::response<boost::beast::http::buffer_body>& res,
                           std::vector<proto::Header> headers, bool upgrade,
                           const std::string& hsts, const std::string& request_id);

// The id of a request: the visitor's X-Request-Id when it is sane (8 to 64 characters of
// [A-Za-z0-9._-], so it can neither break a log line nor a header), else a new random one
// (`fresh`). Honouring it lets a caller correlate its own logs with ours and the local service's.
std::string choose_request_id(std::string_view incoming, std::string fresh);

template <class Body>
std::optional<std::string> route_host(
    const boost::beast::http::request<Body, boost::beast::http::fields>& req) {
    auto it = req.find(boost::beast::http::field::host);
    std::string_view host;
    if (it != req.end()) {
        host = std::string_view(it->value().data(), it->value().size());
    }
    const auto target = req.target();
    return route_host_value(host, std::string_view(target.data(), target.size()));
}

template <class Body>
core::Result<hopgate::http::RequestAuthority> route_request(
    const boost::beast::http::request<Body, boost::beast::http::fields>& req) {
    // Two views are enough to tell "one" from "several"; the parser bounds the field count.
    std::string_view hosts[2];
    std::size_t n = 0;
    auto range = req.equal_range(boost::beast::http::field::host);
    for (auto it = range.first; it != range.second && n < 2; ++it) {
        hosts[n++] = std::string_view(it->value().data(), it->value().size());
    }
    const auto target = req.target();
    return hopgate::http::request_authority(std::span<const std::string_view>(hosts, n),
                                            std::string_view(target.data(), target.size()),
                                            req.version() >= 11);
}

}  // namespace hopgate::server
