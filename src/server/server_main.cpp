#include "server/server_main.hpp"

#include <boost/asio/signal_set.hpp>
#include <iostream>

#include "admin/domain_cli.hpp"
#include "core/config.hpp"
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
    if (cfg.help_requested()) {
        std::cout << sch.help_text("hopgate-server",
                                   "HopGate gateway: HTTPS front door and tunnel endpoint.\n"
                                   "Subcommands: domain add|remove|list|rotate|status (see "
                                   "`hopgate-server domain --help`)");
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

    const auto& pos = cfg.positional();
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
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) {
            return;
        }
        log.info("shutting down", {{"signal", sig}});
        gw->shutdown(std::chrono::seconds(2), [&io] { io.stop(); });
    });
    io.run();
    return 0;
}

}  // namespace hopgate::server
