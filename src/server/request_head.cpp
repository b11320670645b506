#include "server/request_head.hpp"

#include "http/authority.hpp"
#include "http/forwarding.hpp"

namespace hopgate::server {

namespace http = boost::beast::http;

std::optional<std::string> route_host_value(std::string_view host, std::string_view target) {
    // Absolute-form targets carry the authority themselves (RFC 9112 §3.2.2).
    for (std::string_view scheme : {"http://", "https://"}) {
        if (target.size() > scheme.size() && hopgate::http::iequals(target.substr(0, scheme.size()), scheme)) {
            const std::string_view rest = target.substr(scheme.size());
            host = rest.substr(0, rest.find_first_of("/?#"));
        }
    }
    auto a = hopgate::http::parse_authority(host);
    if (!a) {
        return std::nullopt;
    }
    return hopgate::http::route_key(*a);
}

proto::StreamMeta request_head(const http::request<http::buffer_body>& req,
                               const hopgate::http::RequestAuthority& route,
                               const RequestOrigin& origin, const std::string& request_id) {
    proto::StreamMeta m;
    const bool upgrade = hopgate::http::is_upgrade(req.base());
    m.kind = upgrade ? proto::StreamKind::kUpgrade : proto::StreamKind::kHttp;
    m.head = proto::HeadType::kRequest;
    m.method = std::string(req.method_string());
    // Local services are origin servers: they get origin-form, never our routing input.
    m.target = route.origin_target.empty() ? std::string(req.target()) : route.origin_target;
    m.request_id = request_id;
    m.headers = hopgate::http::from_beast(req.base());
    const std::string authority = hopgate::http::to_string(route.authority);
    hopgate::http::RequestForwarding fwd;
    fwd.client_ip = origin.peer_ip;
    fwd.proto = "https";
    fwd.request_id = request_id;
    fwd.host = authority;
    fwd.trusted_peer = origin.trusted_proxy;
    // Drops the hop-by-hop headers itself (keeping Upgrade when `upgrade`: same test).
    hopgate::http::rewrite_request_headers(m.headers, fwd);
    return m;
}

std::string choose_request_id(std::string_view incoming, std::string fresh) {
    if (incoming.size() < 8 || incoming.size() > 64) {
        return fresh;
    }
    for (const char c : incoming) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '.' || c == '_' || c == '-';
        if (!ok) {
            return fresh;
        }
    }
    return std::string(incoming);
}

void fill_response_headers(http::response<http::buffer_body>& res,
                           std::vector<proto::Header> headers, bool upgrade,
                           const std::string& hsts, const std::string& request_id) {
    hopgate::http::ResponseForwarding fwd;
    if (!hsts.empty()) {
        fwd.hsts = hsts;
    }
    fwd.upgrade = upgrade;
    hopgate::http::rewrite_response_headers(headers, fwd);  // drops the hop-by-hop headers too
    hopgate::http::to_beast(headers, res.base());
    if (!request_id.empty()) {
        res.set("X-Request-Id", request_id);
    }
}

}  // namespace hopgate::server
