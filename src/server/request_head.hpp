// Translation between visitor HTTP messages (Beast) and tunnel stream heads (proto::StreamMeta),
// applying the proxy's header rules (hop-by-hop removal, X-Forwarded-*, security headers).
#pragma once

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <optional>
#include <string>
#include <vector>

#include "proto/meta.hpp"

namespace hopgate::server {

// The routing key of a request: its Host (or absolute-form authority) lower-cased, port and
// trailing dot removed, IPv6 without brackets. nullopt when missing or malformed.
template <class Body>
std::optional<std::string> route_host(
    const boost::beast::http::request<Body, boost::beast::http::fields>& req);

std::optional<std::string> route_host_value(std::string_view host_header,
                                            std::string_view target);

// The request head that goes into the tunnel.
proto::StreamMeta request_head(
    const boost::beast::http::request<boost::beast::http::buffer_body>& req,
    const std::string& remote_ip, const std::string& host, const std::string& request_id);

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

}  // namespace hopgate::server
