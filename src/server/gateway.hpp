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

    // Graceful shutdown: stop accepting, close tunnels with a reason, let in-flight requests
    // end within `drain`; calls `done` on the io_context thread.
    void shutdown(std::chrono::seconds drain, std::function<void()> done);

    std::size_t tunnels() const;
    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace hopgate::server
