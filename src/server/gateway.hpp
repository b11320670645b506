// hopgate-server's core: the registry, tunnel listeners (DTLS/UDP and TLS/TCP) with
// registry-backed authentication, the tunnel pool, the HTTPS front door and the control domain
// (admin API, /metrics, status page). main() only loads the configuration and runs it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "admin/metrics_access.hpp"
#include "admin/reserved.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "server/acme_service.hpp"

namespace hopgate::server {

struct GatewayConfig {
    std::string http_listen = ":80";
    std::string https_listen = ":443";
    std::string dtls_listen = ":443";
    std::string tunnel_listen = ":7443";  // empty: no extra TLS tunnel listener (HTTPS port only)
    std::string control_domain = "localhost";
    std::vector<std::string> proxy_domains;
    bool debug = false;
    std::chrono::seconds proxy_timeout{15};
    std::chrono::seconds header_timeout{10};       // TLS handshake + first request head
    std::chrono::seconds keepalive_timeout{60};    // next request head on a kept-alive connection
    std::chrono::seconds upgrade_idle_timeout{600};  // idle 101 pipe
    std::chrono::seconds stall_timeout{30};        // visitor taking no response piece
    std::size_t max_connections = 10000;           // open visitor connections
    std::size_t max_connections_per_source = 256;  // per IPv4 address / IPv6 /64; 0 = no cap
    std::size_t max_http_connections = 1024;       // open plain-HTTP (:80) connections
    std::size_t dtls_max_half_open_per_source = 16;  // DTLS handshakes in progress per /32, /64
    std::size_t buffer_budget = 512u * 1024 * 1024;  // proxy I/O buffers, all exchanges
    unsigned buffer_share_domain_percent = 50;     // of buffer_budget, one domain
    unsigned buffer_share_source_percent = 10;     // of buffer_budget, one source
    // Receive-window growth of all tunnels together (beyond each one's initial 1 MiB).
    std::size_t tunnel_window_budget = 256u * 1024 * 1024;
    // Free heap memory goes back to the OS at most this often (MemoryTrimmer); 0 = never.
    std::chrono::seconds memory_trim_interval{5};
    std::string admin_key;
    std::string admin_allow_cidrs;
    std::string trusted_proxies;  // HOP_SERVER_TRUSTED_PROXIES: CIDRs of proxies in front of us
    std::string metrics_allow_cidrs{admin::kDefaultMetricsAllow};  // HOP_METRICS_ALLOW_CIDRS
    std::string metrics_token;                                      // HOP_METRICS_TOKEN
    std::string db_dsn;  // empty: SQLite file hopgate.db in the working directory
    std::size_t db_max_conns = 4;
    std::size_t db_max_idle_conns = 4;             // HOP_DB_MAX_IDLE_CONNS
    std::chrono::seconds db_conn_max_lifetime{0};  // HOP_DB_CONN_MAX_LIFETIME, 0 = never
    std::vector<std::string> expect_ips;
    std::string cert_file;  // PEM chain for the HTTPS/tunnel certificate (else self-signed)
    std::string key_file;
    std::string cert_dir = ".";  // where the self-signed certificate is written
    std::string hsts;
    std::string error_pages_dir;   // HOP_ERROR_PAGES_DIR
    std::string error_assets_dir;  // HOP_ERROR_ASSETS_DIR
    AcmeConfig acme;               // HOP_ACME_*: automatic certificates (off without a CA)
};

// A host-name setting (HOP_SERVER_DOMAIN, an HOP_SERVER_PROXY_DOMAINS entry) normalised the way
// request hosts are routed (http::parse_authority + route_key): lower case, no trailing dot, no
// port, IPv6 without brackets. Throws std::invalid_argument naming `setting` if it is not a host.
std::string normalize_host_setting(std::string_view value, std::string_view setting);

// The names tenants may not register: the control domain and the proxy domains, normalised.
std::vector<admin::ReservedName> reserved_names(const std::string& control_domain,
                                                const std::vector<std::string>& proxy_domains);

class Gateway {
public:
    // Opens the registry and binds every listener; throws on a configuration or bind error.
    Gateway(boost::asio::io_context& io, GatewayConfig cfg, core::Logger log);
    ~Gateway();

    std::uint16_t http_port() const;
    std::uint16_t https_port() const;
    std::uint16_t dtls_port() const;
    std::uint16_t tunnel_port() const;
    // Path of the certificate the server presents (self-signed in debug / without ACME).
    const std::string& certificate_path() const;

    // Graceful shutdown: stop accepting visitors (idle connections close at once), let in-flight
    // requests end within `drain`, then cut what is left, close tunnels with a reason and stop
    // the tunnel listeners; calls `done` on the io_context thread.
    void shutdown(std::chrono::seconds drain, std::function<void()> done);
    // SIGHUP: re-reads what can change without a restart from `fresh` (the configuration loaded
    // again): the certificate files (HOP_SERVER_TLS_CERT/KEY; new handshakes get the new one,
    // open connections and tunnels keep theirs) and the error-page and asset overrides. All or
    // nothing: on any problem the old state stays and the returned text says why ("" = done).
    // On the io_context thread.
    std::string reload(const GatewayConfig& fresh);

    std::size_t tunnels() const;
    // The registry /metrics renders; other subsystems of the process (the Loki pusher) add
    // their families to it at start-up.
    core::MetricsRegistry& metrics_registry();
    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace hopgate::server
