// hopgate-server's core: the registry, tunnel listeners (DTLS/UDP and TLS/TCP) with
// registry-backed authentication, the tunnel pool, the HTTPS front door and the control domain
// (admin API, /metrics, status page). main() only loads the configuration and runs it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "server/acme_service.hpp"

namespace hopgate::server {

struct GatewayConfig {
    std::string http_listen = ":80";
    std::string https_listen = ":443";
    std::string dtls_listen = ":443";
    std::string tunnel_listen = ":7443";
    std::string control_domain = "localhost";
    std::vector<std::string> proxy_domains;
    bool debug = false;
    std::chrono::seconds proxy_timeout{15};
    std::chrono::seconds header_timeout{10};       // TLS handshake + first request head
    std::chrono::seconds keepalive_timeout{60};    // next request head on a kept-alive connection
    std::chrono::seconds upgrade_idle_timeout{600};  // idle 101 pipe
    std::size_t max_connections = 10000;           // open visitor connections
    std::size_t buffer_budget = 512u * 1024 * 1024;  // proxy I/O buffers, all exchanges
    // Receive-window growth of all tunnels together (beyond each one's initial 1 MiB).
    std::size_t tunnel_window_budget = 256u * 1024 * 1024;
    // Free heap memory goes back to the OS at most this often (MemoryTrimmer); 0 = never.
    std::chrono::seconds memory_trim_interval{5};
    std::string admin_key;
    std::string admin_allow_cidrs;
    std::string db_dsn;  // empty: SQLite file hopgate.db in the working directory
    std::size_t db_max_conns = 4;
    std::vector<std::string> expect_ips;
    std::string cert_file;  // PEM chain for the HTTPS/tunnel certificate (else self-signed)
    std::string key_file;
    std::string cert_dir = ".";  // where the self-signed certificate is written
    std::string hsts;
    std::string error_pages_dir;   // HOP_ERROR_PAGES_DIR
    std::string error_assets_dir;  // HOP_ERROR_ASSETS_DIR
    AcmeConfig acme;               // HOP_ACME_*: automatic certificates (off without a CA)
};

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

    std::size_t tunnels() const;
    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace hopgate::server
