#include "server/server_main.hpp"

#include <boost/asio/post.hpp>
#include <openssl/crypto.h>

#include <boost/asio/signal_set.hpp>
#include <iostream>

#include "admin/domain_cli.hpp"
#include "core/config.hpp"
#include "core/version.hpp"
#include "proto/frame.hpp"
#include "core/log.hpp"
#include "registry/factory.hpp"
#include "server/gateway.hpp"

namespace hopgate::server {

namespace {

using core::OptionType;

core::ConfigSchema schema() {
    core::ConfigSchema s;
    s.add({.env = "HOP_SERVER_HTTP_LISTEN", .flag = "--http-listen", .type = OptionType::kAddress,
           .default_value = ":80", .help = "HTTP listener: ACME challenges and redirects to HTTPS"});
    s.add({.env = "HOP_SERVER_HTTPS_LISTEN", .flag = "--https-listen",
           .type = OptionType::kAddress, .default_value = ":443",
           .help = "HTTPS listener: visitors, admin API, /metrics"});
    s.add({.env = "HOP_SERVER_DTLS_LISTEN", .flag = "--dtls-listen", .type = OptionType::kAddress,
           .default_value = ":443", .help = "DTLS/UDP tunnel listener"});
    s.add({.env = "HOP_SERVER_TUNNEL_LISTEN", .flag = "--tunnel-listen",
           .type = OptionType::kAddress, .default_value = ":7443",
           .help = "TLS/TCP tunnel listener (fallback for networks that block UDP)"});
    s.add({.env = "HOP_SERVER_DOMAIN", .flag = "--domain", .default_value = "localhost",
           .help = "control domain: admin API, /metrics, status page"});
    s.add({.env = "HOP_SERVER_PROXY_DOMAINS", .flag = "--proxy-domains",
           .type = OptionType::kList, .default_value = "",
           .help = "extra domains the certificate covers (comma-separated)"});
    s.add({.env = "HOP_SERVER_DEBUG", .flag = "--debug", .type = OptionType::kBool,
           .default_value = "false", .help = "debug mode (self-signed certificate)"});
    s.add({.env = "HOP_SERVER_PROXY_TIMEOUT_SECONDS", .flag = "--proxy-timeout",
           .type = OptionType::kInt, .default_value = "15",
           .help = "seconds to wait for a response head before answering 504", .min = 1,
           .max = 3600});
    s.add({.env = "HOP_SERVER_HEADER_TIMEOUT_SECONDS", .flag = "--header-timeout",
           .type = OptionType::kInt, .default_value = "10",
           .help = "seconds for the TLS handshake and the first request head (slowloris)",
           .min = 1, .max = 3600});
    s.add({.env = "HOP_SERVER_KEEPALIVE_TIMEOUT_SECONDS", .flag = "--keepalive-timeout",
           .type = OptionType::kInt, .default_value = "60",
           .help = "seconds an idle kept-alive visitor connection waits for its next request",
           .min = 1, .max = 3600});
    s.add({.env = "HOP_SERVER_UPGRADE_IDLE_SECONDS", .flag = "--upgrade-idle-timeout",
           .type = OptionType::kInt, .default_value = "600",
           .help = "seconds without traffic after which an upgraded (WebSocket) pipe is closed",
           .min = 1, .max = 86400});
    s.add({.env = "HOP_SERVER_MAX_CONNECTIONS", .flag = "--max-connections",
           .type = OptionType::kInt, .default_value = "10000",
           .help = "open visitor connections; more are closed at accept", .min = 1,
           .max = 1000000});
    s.add({.env = "HOP_SERVER_BUFFER_BUDGET_MB", .flag = "--buffer-budget-mb",
           .type = OptionType::kInt, .default_value = "512",
           .help = "MiB of proxy I/O buffers for all exchanges (128 KiB each); over it -> 503",
           .min = 1, .max = 1048576});
    s.add({.env = "HOP_SERVER_TUNNEL_BUFFER_BUDGET_MB", .flag = "--tunnel-buffer-budget-mb",
           .type = OptionType::kInt, .default_value = "256",
           .help = "MiB of tunnel receive-window growth for all tunnels together (each tunnel "
                   "always gets 1 MiB; auto-tuning beyond it draws on this budget)",
           .min = 0, .max = 1048576});
    s.add({.env = "HOP_SERVER_MEMORY_TRIM_SECONDS", .flag = "--memory-trim-interval",
           .type = OptionType::kInt, .default_value = "5",
           .help = "seconds between checks that give freed heap memory back to the OS (after "
                   "connections close); 0 = never",
           .min = 0, .max = 3600});
    s.add({.env = "HOP_SERVER_DRAIN_SECONDS", .flag = "--drain-timeout",
           .type = OptionType::kInt, .default_value = "10",
           .help = "on SIGTERM/SIGINT, seconds in-flight requests get to finish", .min = 0,
           .max = 3600});
    s.add({.env = "HOP_SERVER_HSTS", .flag = "--hsts", .default_value = "",
           .help = "Strict-Transport-Security value to add to proxied responses (empty = off)"});
    s.add({.env = "HOP_SERVER_TLS_CERT", .flag = "--tls-cert", .default_value = "",
           .help = "PEM certificate chain (default: a generated self-signed certificate)"});
    s.add({.env = "HOP_SERVER_TLS_KEY", .flag = "--tls-key", .default_value = "",
           .help = "PEM private key of --tls-cert"});
    s.add({.env = "HOP_SERVER_CERT_DIR", .flag = "--cert-dir", .default_value = ".",
           .help = "where the self-signed certificate is written"});
    s.add({.env = "HOP_ADMIN_API_KEY", .flag = "--admin-api-key", .default_value = "",
           .help = "bearer token of the admin API (empty disables it)", .secret = true});
    s.add({.env = "HOP_ADMIN_ALLOW_CIDRS", .flag = "--admin-allow-cidrs", .default_value = "",
           .help = "comma-separated CIDRs allowed to use the admin API (empty = all)"});
    s.add({.env = "HOP_DB_DSN", .flag = "--db-dsn", .default_value = "",
           .help = "registry: empty or sqlite:///path (default hopgate.db), or postgres://...",
           .secret = true});
    s.add({.env = "HOP_DB_MAX_OPEN_CONNS", .flag = "--db-max-open-conns",
           .type = OptionType::kInt, .default_value = "4", .help = "registry connection pool",
           .min = 1, .max = 256});
    s.add({.env = "HOP_ACME_EXPECT_IPS", .flag = "--expect-ips", .type = OptionType::kList,
           .default_value = "",
           .help = "if set, a tunnel's domain must resolve to one of these IPs"});
    // ACME (docs/CONFIG.md#acme).
    s.add({.env = "HOP_ACME_CA_DIR", .flag = "--acme-ca-dir", .default_value = "",
           .help = "ACME directory URL; setting it turns automatic certificates on"});
    s.add({.env = "HOP_ACME_USE_STAGING", .flag = "--acme-use-staging", .type = OptionType::kBool,
           .default_value = "false",
           .help = "use Let's Encrypt staging (when HOP_ACME_CA_DIR is empty)"});
    s.add({.env = "HOP_ACME_EMAIL", .flag = "--acme-email", .default_value = "",
           .help = "contact e-mail of the ACME account (optional)"});
    s.add({.env = "HOP_ACME_CACHE_DIR", .flag = "--acme-cache-dir", .default_value = "acme-cache",
           .help = "account key/URL and <domain>.crt/.key (keys 0600)"});
    s.add({.env = "HOP_ACME_CA_ROOTS", .flag = "--acme-ca-roots", .default_value = "",
           .help = "PEM file of extra roots trusted for the CA's HTTPS (a private CA, Pebble)"});
    s.add({.env = "HOP_ACME_CHALLENGES", .flag = "--acme-challenges", .type = OptionType::kList,
           .default_value = "http-01,tls-alpn-01",
           .help = "challenge types in preference order: http-01, tls-alpn-01"});
    s.add({.env = "HOP_ACME_RENEW_BEFORE_SECONDS", .flag = "--acme-renew-before",
           .type = OptionType::kInt, .default_value = "0",
           .help = "renew this long before expiry (0: when a third of the lifetime, at most "
                   "30 days, remains)",
           .min = 0, .max = 2000000000});
    s.add({.env = "HOP_ACME_CHECK_INTERVAL_SECONDS", .flag = "--acme-check-interval",
           .type = OptionType::kInt, .default_value = "3600",
           .help = "seconds between checks of the domain set and of renewals", .min = 1,
           .max = 86400});
    s.add({.env = "HOP_ACME_RETRY_BASE_SECONDS", .flag = "--acme-retry-base",
           .type = OptionType::kInt, .default_value = "60",
           .help = "first retry delay after a failed order (doubles per failure)", .min = 1,
           .max = 86400});
    s.add({.env = "HOP_ACME_RETRY_MAX_SECONDS", .flag = "--acme-retry-max",
           .type = OptionType::kInt, .default_value = "21600",
           .help = "cap of the retry delay", .min = 1, .max = 604800});
    s.add({.env = "HOP_ACME_MAX_ORDERS_PER_HOUR", .flag = "--acme-max-orders-per-hour",
           .type = OptionType::kInt, .default_value = "30",
           .help = "new ACME orders per hour, all domains together", .min = 1, .max = 10000});
    s.add({.env = "HOP_ERROR_PAGES_DIR", .flag = "--error-pages-dir", .default_value = "",
           .help = "directory with <status>.html overriding the built-in error pages"});
    s.add({.env = "HOP_ERROR_ASSETS_DIR", .flag = "--error-assets-dir", .default_value = "",
           .help = "directory of files served under /__hopgate_assets__/"});
    s.add({.env = "HOP_LOG_LEVEL", .flag = "--log-level", .default_value = "info",
           .help = "debug, info, warn or error"});
    return s;
}

}  // namespace

int server_main(int argc, const char* const* argv) {
    const auto sch = schema();
    core::Config cfg;
    try {
        cfg = core::load_process_config(sch, argc, argv, "HOP_SERVER_");
    } catch (const core::ConfigError& e) {
        std::cerr << "hopgate-server: configuration error:\n" << e.what() << "\n";
        return 1;
    }
    if (cfg.version_requested() && !cfg.help_requested()) {
        std::cout << "hopgate-server " << core::version() << " (tunnel protocol " << proto::kProtocolVersion
                  << ", " << OpenSSL_version(OPENSSL_VERSION) << ")\n";
        return 0;
    }
    if (cfg.help_requested()) {
        std::cout << sch.help_text("hopgate-server",
                                   "HopGate gateway: HTTPS front door and tunnel endpoint.\n"
                                   "Subcommands: domain add|remove|list|rotate|status (see "
                                   "`hopgate-server domain --help`), cert obtain|renew|list");
        return 0;
    }
    auto level = core::parse_log_level(cfg.get_string("HOP_LOG_LEVEL"));
    if (!level) {
        std::cerr << "hopgate-server: HOP_LOG_LEVEL: must be debug, info, warn or error\n";
        return 1;
    }
    auto out = std::make_shared<core::LogOutput>(*level);
    core::Logger log(out, "server");
    for (const auto& w : cfg.warnings()) {
        log.warn(w);
    }

    AcmeConfig acme;
    acme.directory_url = cfg.get_string("HOP_ACME_CA_DIR");
    if (acme.directory_url.empty() && cfg.get_bool("HOP_ACME_USE_STAGING")) {
        acme.directory_url = kLetsEncryptStagingDirectory;
    }
    acme.enabled = !acme.directory_url.empty() && !cfg.get_bool("HOP_SERVER_DEBUG");
    acme.email = cfg.get_string("HOP_ACME_EMAIL");
    acme.cache_dir = cfg.get_string("HOP_ACME_CACHE_DIR");
    acme.ca_roots = cfg.get_string("HOP_ACME_CA_ROOTS");
    acme.challenges = cfg.get_list("HOP_ACME_CHALLENGES");
    for (const auto& c : acme.challenges) {
        if (c != "http-01" && c != "tls-alpn-01") {
            std::cerr << "hopgate-server: configuration error:\nHOP_ACME_CHALLENGES: \"" << c
                      << "\" is not http-01 or tls-alpn-01\n";
            return 1;
        }
    }
    acme.renew_before = std::chrono::seconds(cfg.get_int("HOP_ACME_RENEW_BEFORE_SECONDS"));
    acme.check_interval = std::chrono::seconds(cfg.get_int("HOP_ACME_CHECK_INTERVAL_SECONDS"));
    acme.retry_base = std::chrono::seconds(cfg.get_int("HOP_ACME_RETRY_BASE_SECONDS"));
    acme.retry_max = std::chrono::seconds(cfg.get_int("HOP_ACME_RETRY_MAX_SECONDS"));
    acme.max_orders_per_hour = static_cast<int>(cfg.get_int("HOP_ACME_MAX_ORDERS_PER_HOUR"));

    const auto& pos = cfg.positional();
    if (!pos.empty() && pos[0] == "cert") {
        std::vector<std::string> args(pos.begin() + 1, pos.end());
        return run_cert_cli(args, acme, cfg.get_address("HOP_SERVER_HTTP_LISTEN").to_string(),
                            std::cout, std::cerr);
    }
    if (!pos.empty() && pos[0] == "domain") {
        try {
            registry::RegistryConfig rc;
            rc.dsn = cfg.get_string("HOP_DB_DSN");  // empty: SQLite file in the working directory
            rc.max_open_conns = static_cast<std::size_t>(cfg.get_int("HOP_DB_MAX_OPEN_CONNS"));
            auto reg = registry::open_registry(rc);
            std::vector<std::string> args(pos.begin() + 1, pos.end());
            return admin::run_domain_cli(args, *reg, std::cout, std::cerr);
        } catch (const std::exception& e) {
            std::cerr << "hopgate-server: " << e.what() << "\n";
            return 1;
        }
    }
    if (!pos.empty()) {
        std::cerr << "hopgate-server: unknown subcommand \"" << pos[0] << "\" (see --help)\n";
        return 2;
    }

    GatewayConfig g;
    g.http_listen = cfg.get_address("HOP_SERVER_HTTP_LISTEN").to_string();
    g.https_listen = cfg.get_address("HOP_SERVER_HTTPS_LISTEN").to_string();
    g.dtls_listen = cfg.get_address("HOP_SERVER_DTLS_LISTEN").to_string();
    g.tunnel_listen = cfg.get_address("HOP_SERVER_TUNNEL_LISTEN").to_string();
    g.control_domain = cfg.get_string("HOP_SERVER_DOMAIN");
    g.proxy_domains = cfg.get_list("HOP_SERVER_PROXY_DOMAINS");
    g.debug = cfg.get_bool("HOP_SERVER_DEBUG");
    g.proxy_timeout = std::chrono::seconds(cfg.get_int("HOP_SERVER_PROXY_TIMEOUT_SECONDS"));
    g.header_timeout = std::chrono::seconds(cfg.get_int("HOP_SERVER_HEADER_TIMEOUT_SECONDS"));
    g.keepalive_timeout =
        std::chrono::seconds(cfg.get_int("HOP_SERVER_KEEPALIVE_TIMEOUT_SECONDS"));
    g.upgrade_idle_timeout = std::chrono::seconds(cfg.get_int("HOP_SERVER_UPGRADE_IDLE_SECONDS"));
    g.max_connections = static_cast<std::size_t>(cfg.get_int("HOP_SERVER_MAX_CONNECTIONS"));
    g.buffer_budget =
        static_cast<std::size_t>(cfg.get_int("HOP_SERVER_BUFFER_BUDGET_MB")) * 1024 * 1024;
    g.tunnel_window_budget =
        static_cast<std::size_t>(cfg.get_int("HOP_SERVER_TUNNEL_BUFFER_BUDGET_MB")) * 1024 * 1024;
    g.memory_trim_interval = std::chrono::seconds(cfg.get_int("HOP_SERVER_MEMORY_TRIM_SECONDS"));
    const auto drain = std::chrono::seconds(cfg.get_int("HOP_SERVER_DRAIN_SECONDS"));
    g.hsts = cfg.get_string("HOP_SERVER_HSTS");
    g.cert_file = cfg.get_string("HOP_SERVER_TLS_CERT");
    g.key_file = cfg.get_string("HOP_SERVER_TLS_KEY");
    g.cert_dir = cfg.get_string("HOP_SERVER_CERT_DIR");
    g.admin_key = cfg.get_string("HOP_ADMIN_API_KEY");
    g.admin_allow_cidrs = cfg.get_string("HOP_ADMIN_ALLOW_CIDRS");
    g.db_dsn = cfg.get_string("HOP_DB_DSN");
    g.db_max_conns = static_cast<std::size_t>(cfg.get_int("HOP_DB_MAX_OPEN_CONNS"));
    g.expect_ips = cfg.get_list("HOP_ACME_EXPECT_IPS");
    g.error_pages_dir = cfg.get_string("HOP_ERROR_PAGES_DIR");
    g.error_assets_dir = cfg.get_string("HOP_ERROR_ASSETS_DIR");
    g.acme = acme;

    boost::asio::io_context io;
    std::unique_ptr<Gateway> gw;
    try {
        gw = std::make_unique<Gateway>(io, g, log);
    } catch (const std::exception& e) {
        std::cerr << "hopgate-server: " << e.what() << "\n";
        return 1;
    }
    // Tests and scripts read the bound ports from this one line on stdout.
    std::cout << "{\"https\":" << gw->https_port() << ",\"http\":" << gw->http_port()
              << ",\"dtls\":" << gw->dtls_port() << ",\"tunnel\":" << gw->tunnel_port()
              << ",\"certificate\":\"" << gw->certificate_path() << "\"}" << std::endl;
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    bool draining = false;
    // First signal: graceful drain. A second one: stop at once.
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int sig) {
            if (ec) {
                return;
            }
            if (draining) {
                log.warn("second signal: stopping now", {{"signal", sig}});
                io.stop();
                return;
            }
            draining = true;
            log.info("shutting down", {{"signal", sig}});
            gw->shutdown(drain, [&io] { io.stop(); });
            signals.async_wait(on_signal);
        };
    signals.async_wait(on_signal);
    // Log lines written while the loop runs go out together once per turn of the loop.
    out->set_deferred([&io, o = out.get()] { boost::asio::post(io, [o] { o->flush(); }); });
    io.run();
    out->set_deferred({});
    return 0;
}

}  // namespace hopgate::server
