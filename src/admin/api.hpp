// The admin API as plain request -> response functions over the Registry interface.
//
// The gateway parses HTTP (with its body limit set to AdminOptions::max_body; an overflow is
// answered with AdminApi::payload_too_large()), fills a Request, calls handle() and writes the
// Response. handle() calls the registry, which blocks: run it on the registry worker pool
// (AsyncRegistry::async_call), never on a network thread. handle() is thread-safe.
//
// Routes (JSON in and out; every response carries "success" and "error", null on success):
//   POST /api/v1/admin/domains/register   {domain, memo?}            201 {domain, client_api_key,
//   ...} POST /api/v1/admin/domains/unregister {domain, client_api_key}   200 POST
//   /api/v1/admin/domains/rotate     {domain}                   200 {domain, client_api_key} GET
//   /api/v1/admin/domains/exists?domain=                        200 {domain, exists} GET
//   /api/v1/admin/domains/status?domain=                        200 {domain, id, memo, ...} GET
//   /api/v1/admin/domains?limit=&after=                         200 {domains, total, next_after}
// Status codes: 400 malformed JSON / invalid domain (with the reason) / bad parameter, 401 missing
// or wrong bearer token, 429 too many wrong tokens from this source (Retry-After), 403 source
// address not allowed or client_api_key mismatch, 404 unknown domain or route (and every route
// while the API is disabled), 405 wrong method (with Allow), 409 duplicate or reserved name
// (AdminOptions::reserved), 413 body over max_body, 415 POST without application/json, 503
// database unavailable or overloaded (with Retry-After). 500 only for a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "admin/cidr.hpp"
#include "admin/failure_limiter.hpp"
#include "admin/reserved.hpp"
#include "core/time.hpp"

namespace hopgate::registry {
class Registry;
}

namespace hopgate::admin {

struct Request {
    std::string method;         // "GET", "POST", ...
    std::string target;         // origin-form: path and optional query
    std::string authorization;  // the Authorization header, "" if absent
    std::string content_type;   // the Content-Type header, "" if absent
    std::string body;
    std::optional<IpAddr> remote;  // the peer address (needed when an allow-list is set)
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;  // e.g. Allow, WWW-Authenticate
    std::string body;
};

// Called after a domain is unregistered or its key rotated, so the gateway drops the domain's
// live tunnels. Called on the thread that ran handle(); implementations post to their own strand.
class TunnelDirectory {
  public:
    virtual ~TunnelDirectory() = default;
    // Drops the domain's live tunnels. `unregistered`: the domain is gone (visitors get 404 from
    // now on); otherwise its key was rotated (clients must reconnect with the new key).
    virtual void disconnect_domain(std::string_view domain, bool unregistered) = 0;

    // One live tunnel of a domain, for GET /api/v1/admin/domains/tunnels.
    struct LiveTunnel {
        std::string transport;          // "dtls" or "tls"
        std::string peer;               // the client's address and port
        std::int64_t since_unix_ms = 0;  // when it authenticated (wall clock)
        std::size_t streams_open = 0;
        double rtt_ms = 0;               // smoothed RTT
    };
    // The domain's live tunnels (empty: none), or nullopt when the gateway cannot answer in
    // time (the API answers 503). Called on the thread that ran handle().
    virtual std::optional<std::vector<LiveTunnel>> live_tunnels(std::string_view /*domain*/) {
        return std::vector<LiveTunnel>{};
    }
};

inline constexpr std::size_t kDefaultMaxBody = 64 * 1024;
inline constexpr std::size_t kMinAdminKeyLength = 16;
inline constexpr std::string_view kAdminPathPrefix = "/api/v1/admin/";

struct AdminOptions {
    std::string api_key;  // HOP_ADMIN_API_KEY; empty disables the API
    CidrList allow;       // HOP_ADMIN_ALLOW_CIDRS; empty allows every source
    // The control domain and HOP_SERVER_PROXY_DOMAINS: register answers 409 for them (the other
    // routes still work, so a name registered before it became reserved can be removed).
    std::vector<ReservedName> reserved;
    std::size_t max_body = kDefaultMaxBody;
    int retry_after_seconds = 5;  // on 503
    // Wrong bearer tokens per source (needs Request::remote): past the budget, 429 until the
    // block expires, whatever the token. Default: 10 per minute, then 5 minutes.
    LimiterOptions auth_limiter;
    std::function<core::Instant()> clock;  // default: core::steady_now
};

class AdminApi {
  public:
    // `tunnels` may be null (no gateway yet). Throws std::invalid_argument for a non-empty
    // api_key shorter than kMinAdminKeyLength (a configuration error).
    AdminApi(registry::Registry& registry, TunnelDirectory* tunnels, AdminOptions options);

    bool enabled() const { return !options_.api_key.empty(); }
    // True for targets the admin API answers (everything under /api/v1/admin/).
    static bool is_admin_target(std::string_view target);

    Response handle(const Request& request) const;
    // The 413 answer for a body the gateway's parser refused.
    Response payload_too_large() const;

  private:
    registry::Registry& registry_;
    TunnelDirectory* tunnels_;
    AdminOptions options_;
    std::string key_hash_;  // SHA-256 of api_key: compared in constant time with the token's
    mutable FailureLimiter auth_failures_;  // thread-safe
};

}  // namespace hopgate::admin
