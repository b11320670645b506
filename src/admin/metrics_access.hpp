// Who may read the control domain's /metrics: sources in HOP_METRICS_ALLOW_CIDRS (default:
// loopback and private ranges), and, when HOP_METRICS_TOKEN is set, only with that Bearer token.
// A plain value type; check() is const and thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "admin/cidr.hpp"

namespace hopgate::admin {

// The default of HOP_METRICS_ALLOW_CIDRS: loopback, RFC 1918 and IPv6 unique local addresses.
inline constexpr std::string_view kDefaultMetricsAllow =
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

enum class MetricsAccess {
    kAllowed,
    kForbidden,     // source address outside the allow-list (or unknown): 403
    kUnauthorized,  // token configured and missing or wrong: 401 with WWW-Authenticate
};

class MetricsGuard {
  public:
    MetricsGuard() = default;
    // `allow` empty = any source. `token` empty = no token needed. Throws std::invalid_argument
    // for a non-empty token shorter than 16 characters (a configuration error).
    MetricsGuard(CidrList allow, std::string_view token);

    // `authorization`: the request's Authorization header ("" if absent). The token is
    // compared in constant time (via SHA-256 digests).
    MetricsAccess check(const std::optional<IpAddr>& remote, std::string_view authorization) const;

  private:
    CidrList allow_;
    std::string token_hash_;  // empty: no token
};

}  // namespace hopgate::admin
