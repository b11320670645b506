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
#include "core/loki.hpp"
#include "net/loki_pusher.hpp"
#include "registry/factory.hpp"
#include "server/check_config.hpp"
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
    s.add({.env = "HOP_SERVER_TUNNEL_LISTEN", .flag = "--tunnel-listen", .default_value = ":7443",
           .help = "extra TLS/TCP tunnel listener <host:port>, or `off` (TLS tunnels are also "
                   "accepted on the HTTPS listener by ALPN hopgate/1)"});
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
    s.add({.env = "HOP_SERVER_STALL_TIMEOUT_SECONDS", .flag = "--stall-timeout",
           .type = OptionType::kInt, .default_value = "30",
           .help = "seconds a visitor may take to accept one 64 KiB piece of a response before "
                   "the exchange is reset and the connection closed (stalled reader)",
           .min = 1, .max = 3600});
    s.add({.env = "HOP_SERVER_MAX_CONNECTIONS", .flag = "--max-connections",
           .type = OptionType::kInt, .default_value = "10000",
           .help = "open visitor connections; more are closed at accept", .min = 1,
           .max = 1000000});
    s.add({.env = "HOP_SERVER_MAX_CONNECTIONS_PER_SOURCE", .flag = "--max-connections-per-source",
           .type = OptionType::kInt, .default_value = "256",
           .help = "open visitor connections per source (IPv4 address, IPv6 /64); more are "
                   "closed at accept (0 = no per-source cap)",
           .min = 0, .max = 1000000});
    s.add({.env = "HOP_SERVER_HTTP_MAX_CONNECTIONS", .flag = "--http-max-connections",
           .type = OptionType::kInt, .default_value = "1024",
           .help = "open plain-HTTP connections (redirects, ACME HTTP-01); more are closed at "
                   "accept",
           .min = 1, .max = 1000000});
    s.add({.env = "HOP_SERVER_DTLS_MAX_HALF_OPEN_PER_SOURCE",
           .flag = "--dtls-max-half-open-per-source", .type = OptionType::kInt,
           .default_value = "16",
           .help = "DTLS handshakes in progress per source address (IPv4 /32, IPv6 /64); at the "
                   "cap the source's oldest one (if over 1 s old) makes room, else the new one "
                   "is dropped",
           .min = 1, .max = 1024});
    s.add({.env = "HOP_SERVER_BUFFER_BUDGET_MB", .flag = "--buffer-budget-mb",
           .type = OptionType::kInt, .default_value = "512",
           .help = "MiB of proxy I/O buffers for all exchanges (128 KiB each); over it -> 503",
           .min = 1, .max = 1048576});
    s.add({.env = "HOP_SERVER_BUFFER_SHARE_DOMAIN_PERCENT", .flag = "--buffer-share-domain-percent",
           .type = OptionType::kInt, .default_value = "50",
           .help = "percent of the proxy buffer budget one domain's exchanges may hold; over it "
                   "-> 503 for that domain only (100 = no share)",
           .min = 1, .max = 100});
    s.add({.env = "HOP_SERVER_BUFFER_SHARE_SOURCE_PERCENT", .flag = "--buffer-share-source-percent",
           .type = OptionType::kInt, .default_value = "10",
           .help = "percent of the proxy buffer budget the exchanges of one visitor source (IPv4 "
                   "address, IPv6 /64) may hold; over it -> 503 for that source (100 = no share)",
           .min = 1, .max = 100});
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
    s.add({.env = "HOP_SERVER_TRUSTED_PROXIES", .flag = "--trusted-proxies", .default_value = "",
           .help = "comma-separated CIDRs of proxies in front of the server whose X-Forwarded-For "
                   "/ Forwarded chains are kept (empty: every visitor's are dropped)"});
    s.add({.env = "HOP_METRICS_ALLOW_CIDRS", .flag = "--metrics-allow-cidrs",
           .default_value = std::string(admin::kDefaultMetricsAllow),
           .help = "comma-separated CIDRs allowed to read /metrics (empty = all); others get 403"});
    s.add({.env = "HOP_METRICS_TOKEN", .flag = "--metrics-token", .default_value = "",
           .help = "if set, /metrics also needs 'Authorization: Bearer <token>' (16+ characters)",
           .secret = true});
    s.add({.env = "HOP_DB_DSN", .flag = "--db-dsn", .default_value = "",
           .help = "registry: empty or sqlite:///path (default hopgate.db), or postgres://...",
           .secret = true});
    s.add({.env = "HOP_DB_MAX_OPEN_CONNS", .flag = "--db-max-open-conns",
           .type = OptionType::kInt, .default_value = "4", .help = "registry connection pool",
           .min = 1, .max = 256});
    s.add({.env = "HOP_DB_MAX_IDLE_CONNS", .flag = "--db-max-idle-conns",
           .type = OptionType::kInt, .default_value = "4",
           .help = "pooled registry connections kept open while unused (PostgreSQL)", .min = 0,
           .max = 256});
    s.add({.env = "HOP_DB_CONN_MAX_LIFETIME", .flag = "--db-conn-max-lifetime",
           .type = OptionType::kDuration, .default_value = "0",
           .help = "close a pooled registry connection after this age, e.g. 30m (0 = never)",
           .min = 0, .max = 86400 * 30});
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
    core::add_loki_options(s);
    return s;
}

}  // namespace

namespace {

// Where a subcommand ("domain", "cert") starts in argv, or argc. Subcommands parse their own
// flags (`domain add x --memo T`), so the server's parser sees only what comes before: the
// first argument that is neither a flag nor the value of a flag that takes one.
int subcommand_index(const core::ConfigSchema& sch, int argc, const char* const* argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--") {
            return argc;
        }
        if (a.starts_with("-")) {
            if (a.find('=') == std::string_view::npos) {
                const auto* spec = sch.find_flag(a);
                if (spec != nullptr && spec->type != OptionType::kBool) {
                    ++i;  // the flag's value
                }
            }
            continue;
        }
        return (a == "domain" || a == "cert") ? i : argc;
    }
    return argc;
}

}  // namespace

int server_main(int argc, const char* const* argv) {
    const auto sch = schema();
    const int sub = subcommand_index(sch, argc, argv);
    std::vector<std::string> sub_args(argv + sub, argv + argc);  // "domain", "add", ...
    core::Config cfg;
    try {
        // Every unknown HOP_* key is reported (a typo in HOP_DB_*, HOP_LOKKI_*), except the
        // client's, which may share the environment or .env.
        cfg = core::load_process_config(sch, sub, argv, "HOP_", {"HOP_CLIENT_"});
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
                                   "`hopgate-server domain --help`), cert obtain|renew|list, "
                                   "check-config (validate everything, print the effective "
                                   "configuration; exit 0/1)");
        return 0;
    }
    auto level = core::parse_log_level(cfg.get_string("HOP_LOG_LEVEL"));
    if (!level) {
        std::cerr << "hopgate-server: HOP_LOG_LEVEL: must be debug, info, warn or error\n";
        return 1;
    }
    // Loki: every log line is also queued (bounded, drop-oldest) for the pusher started below.
    std::optional<core::LokiSettings> loki;
    try {
        loki = core::loki_settings_from_config(cfg, "server");
    } catch (const core::ConfigError& e) {
        std::cerr << "hopgate-server: configuration error:\n" << e.what() << "\n";
        return 1;
    }
    auto loki_queue =
        loki ? std::make_shared<core::LokiQueue>(core::LokiQueue::Limits{}) : nullptr;
    auto out = std::make_shared<core::LogOutput>(
        *level, loki_queue ? core::LokiQueue::tee(loki_queue, core::stderr_sink()) : core::LogSink{});
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
    // Say which certificate source is in use and why, loudly when ACME settings are present but
    // ACME is off (an original .env with HOP_ACME_EMAIL and no CA directory): visitors would
    // get a self-signed certificate without anybody noticing.
    if (!cfg.get_string("HOP_SERVER_TLS_CERT").empty()) {
        log.info("certificate source: files", {{"why", "HOP_SERVER_TLS_CERT is set"}});
    } else if (acme.enabled) {
        log.info("certificate source: ACME", {{"directory", acme.directory_url}});
    } else {
        std::vector<std::string> acme_set;
        for (const char* k : {"HOP_ACME_EMAIL", "HOP_ACME_CACHE_DIR", "HOP_ACME_CA_ROOTS",
                              "HOP_ACME_CHALLENGES", "HOP_ACME_CA_DIR", "HOP_ACME_USE_STAGING"}) {
            if (cfg.source(k) != core::ConfigSource::kDefault) {
                acme_set.emplace_back(k);
            }
        }
        const std::string why = !acme.directory_url.empty()
                                    ? "HOP_SERVER_DEBUG is on, which turns ACME off"
                                    : "neither HOP_SERVER_TLS_CERT nor HOP_ACME_CA_DIR / "
                                      "HOP_ACME_USE_STAGING is set";
        if (acme_set.empty()) {
            log.info("certificate source: self-signed", {{"why", why}});
        } else {
            std::string keys;
            for (const auto& k : acme_set) {
                keys += (keys.empty() ? "" : ", ") + k;
            }
            log.warn("certificate source: self-signed although ACME settings are present",
                     {{"why", why}, {"acme_settings", keys}});
        }
    }
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

    const auto& pos = sub < argc ? sub_args : cfg.positional();
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
            rc.max_idle_conns = static_cast<std::size_t>(cfg.get_int("HOP_DB_MAX_IDLE_CONNS"));
            std::vector<std::string> args(pos.begin() + 1, pos.end());
            if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
                std::cout << admin::domain_cli_usage();
                return args.empty() ? 2 : 0;
            }
            // The names the server serves itself cannot be added as tenant domains.
            std::vector<std::string> proxy_domains;
            for (const auto& d : cfg.get_list("HOP_SERVER_PROXY_DOMAINS")) {
                proxy_domains.push_back(normalize_host_setting(d, "HOP_SERVER_PROXY_DOMAINS"));
            }
            const auto reserved = reserved_names(
                normalize_host_setting(cfg.get_string("HOP_SERVER_DOMAIN"), "HOP_SERVER_DOMAIN"),
                proxy_domains);
            // Which database: the answer differs between a shell and the service's environment.
            std::cerr << "hopgate-server: using database " << registry::describe_dsn(rc.dsn)
                      << " (HOP_DB_DSN)\n";
            auto reg = registry::open_registry(rc);
            return admin::run_domain_cli(args, *reg, std::cout, std::cerr, reserved);
        } catch (const std::exception& e) {
            std::cerr << "hopgate-server: " << e.what() << "\n";
            return 1;
        }
    }
    const bool check_config = !pos.empty() && pos[0] == "check-config";
    if (!pos.empty() && !check_config) {
        std::cerr << "hopgate-server: unknown subcommand \"" << pos[0] << "\" (see --help)\n";
        return 2;
    }

    GatewayConfig g;
    g.http_listen = cfg.get_address("HOP_SERVER_HTTP_LISTEN").to_string();
    g.https_listen = cfg.get_address("HOP_SERVER_HTTPS_LISTEN").to_string();
    g.dtls_listen = cfg.get_address("HOP_SERVER_DTLS_LISTEN").to_string();
    if (const std::string& tl = cfg.get_string("HOP_SERVER_TUNNEL_LISTEN"); tl != "off") {
        std::string why;
        auto a = core::parse_listen_address(tl, &why);
        if (!a) {
            std::cerr << "hopgate-server: HOP_SERVER_TUNNEL_LISTEN: " << why
                      << " (want host:port or off)\n";
            return 1;
        }
        g.tunnel_listen = a->to_string();
    } else {
        g.tunnel_listen.clear();  // TLS tunnels only on the HTTPS listener (ALPN hopgate/1)
    }
    g.control_domain = cfg.get_string("HOP_SERVER_DOMAIN");
    g.proxy_domains = cfg.get_list("HOP_SERVER_PROXY_DOMAINS");
    g.debug = cfg.get_bool("HOP_SERVER_DEBUG");
    g.proxy_timeout = std::chrono::seconds(cfg.get_int("HOP_SERVER_PROXY_TIMEOUT_SECONDS"));
    g.header_timeout = std::chrono::seconds(cfg.get_int("HOP_SERVER_HEADER_TIMEOUT_SECONDS"));
    g.keepalive_timeout =
        std::chrono::seconds(cfg.get_int("HOP_SERVER_KEEPALIVE_TIMEOUT_SECONDS"));
    g.upgrade_idle_timeout = std::chrono::seconds(cfg.get_int("HOP_SERVER_UPGRADE_IDLE_SECONDS"));
    g.stall_timeout = std::chrono::seconds(cfg.get_int("HOP_SERVER_STALL_TIMEOUT_SECONDS"));
    g.max_connections = static_cast<std::size_t>(cfg.get_int("HOP_SERVER_MAX_CONNECTIONS"));
    g.max_connections_per_source =
        static_cast<std::size_t>(cfg.get_int("HOP_SERVER_MAX_CONNECTIONS_PER_SOURCE"));
    g.max_http_connections =
        static_cast<std::size_t>(cfg.get_int("HOP_SERVER_HTTP_MAX_CONNECTIONS"));
    g.dtls_max_half_open_per_source =
        static_cast<std::size_t>(cfg.get_int("HOP_SERVER_DTLS_MAX_HALF_OPEN_PER_SOURCE"));
    g.buffer_budget =
        static_cast<std::size_t>(cfg.get_int("HOP_SERVER_BUFFER_BUDGET_MB")) * 1024 * 1024;
    g.buffer_share_domain_percent =
        static_cast<unsigned>(cfg.get_int("HOP_SERVER_BUFFER_SHARE_DOMAIN_PERCENT"));
    g.buffer_share_source_percent =
        static_cast<unsigned>(cfg.get_int("HOP_SERVER_BUFFER_SHARE_SOURCE_PERCENT"));
    g.tunnel_window_budget =
        static_cast<std::size_t>(cfg.get_int("HOP_SERVER_TUNNEL_BUFFER_BUDGET_MB")) * 1024 * 1024;
    g.memory_trim_interval = std::chrono::seconds(cfg.get_int("HOP_SERVER_MEMORY_TRIM_SECONDS"));
    const auto drain = std::chrono::seconds(cfg.get_int("HOP_SERVER_DRAIN_SECONDS"));
    g.hsts = cfg.get_string("HOP_SERVER_HSTS");
    g.cert_file = cfg.get_string("HOP_SERVER_TLS_CERT");
    g.key_file = cfg.get_string("HOP_SERVER_TLS_KEY");
    g.cert_dir = cfg.get_string("HOP_SERVER_CERT_DIR");
    if (g.cert_file.empty() != g.key_file.empty()) {
        std::cerr << "hopgate-server: "
                  << (g.cert_file.empty()
                          ? "HOP_SERVER_TLS_KEY (--tls-key) is set but HOP_SERVER_TLS_CERT (--tls-cert) is not"
                          : "HOP_SERVER_TLS_CERT (--tls-cert) is set but HOP_SERVER_TLS_KEY (--tls-key) is not")
                  << ": give both, or neither for a self-signed certificate\n";
        return 1;
    }
    g.admin_key = cfg.get_string("HOP_ADMIN_API_KEY");
    g.admin_allow_cidrs = cfg.get_string("HOP_ADMIN_ALLOW_CIDRS");
    g.trusted_proxies = cfg.get_string("HOP_SERVER_TRUSTED_PROXIES");
    g.metrics_allow_cidrs = cfg.get_string("HOP_METRICS_ALLOW_CIDRS");
    g.metrics_token = cfg.get_string("HOP_METRICS_TOKEN");
    g.db_dsn = cfg.get_string("HOP_DB_DSN");
    g.db_max_conns = static_cast<std::size_t>(cfg.get_int("HOP_DB_MAX_OPEN_CONNS"));
    g.db_max_idle_conns = static_cast<std::size_t>(cfg.get_int("HOP_DB_MAX_IDLE_CONNS"));
    g.db_conn_max_lifetime = std::chrono::duration_cast<std::chrono::seconds>(
        cfg.get_duration("HOP_DB_CONN_MAX_LIFETIME"));
    g.expect_ips = cfg.get_list("HOP_ACME_EXPECT_IPS");
    g.error_pages_dir = cfg.get_string("HOP_ERROR_PAGES_DIR");
    g.error_assets_dir = cfg.get_string("HOP_ERROR_ASSETS_DIR");
    g.acme = acme;

    if (check_config) {
        return check_server_config(g, cfg, std::cout);
    }
    boost::asio::io_context io;
    // Signals are taken over before anything is announced: a SIGTERM that arrives while the
    // server starts (or right after the ports line) is handled as a graceful stop once the loop
    // runs, not by the default action.
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    boost::asio::signal_set hangup(io, SIGHUP);
    std::unique_ptr<Gateway> gw;
    try {
        gw = std::make_unique<Gateway>(io, g, log);
    } catch (const std::exception& e) {
        std::cerr << "hopgate-server: " << e.what() << "\n";
        return 1;
    }
    std::shared_ptr<net::LokiPusher> loki_pusher;
    if (loki) {
        loki_pusher = std::make_shared<net::LokiPusher>(io, *loki, loki_queue,
                                                        log.with_component("loki"));
        loki_pusher->bind_metrics(gw->metrics_registry());
        loki_pusher->start();
    }
    // Tests and scripts read the bound ports from this one line on stdout.
    std::cout << "{\"https\":" << gw->https_port() << ",\"http\":" << gw->http_port()
              << ",\"dtls\":" << gw->dtls_port() << ",\"tunnel\":" << gw->tunnel_port()
              << ",\"certificate\":\"" << gw->certificate_path() << "\"}" << std::endl;
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
            hangup.cancel();
            gw->shutdown(drain, [&io] { io.stop(); });
            signals.async_wait(on_signal);
        };
    signals.async_wait(on_signal);
    // SIGHUP: reload what can change without a restart (certificate files, error pages and
    // assets, log level) from the configuration read again (environment, .env, the same flags).
    // A failed reload keeps everything as it was. Connections and tunnels stay up.
    std::function<void(const boost::system::error_code&, int)> on_hangup =
        [&](const boost::system::error_code& ec, int) {
            if (ec) {
                return;
            }
            std::string why;
            try {
                const core::Config fresh =
                    core::load_process_config(sch, sub, argv, "HOP_", {"HOP_CLIENT_"});
                auto new_level = core::parse_log_level(fresh.get_string("HOP_LOG_LEVEL"));
                GatewayConfig f;
                f.cert_file = fresh.get_string("HOP_SERVER_TLS_CERT");
                f.key_file = fresh.get_string("HOP_SERVER_TLS_KEY");
                f.error_pages_dir = fresh.get_string("HOP_ERROR_PAGES_DIR");
                f.error_assets_dir = fresh.get_string("HOP_ERROR_ASSETS_DIR");
                if (!new_level) {
                    why = "HOP_LOG_LEVEL: must be debug, info, warn or error";
                } else {
                    why = gw->reload(f);
                }
                if (why.empty()) {
                    out->set_level(*new_level);
                    log.warn("reloaded", {{"certificate", gw->certificate_path()},
                                          {"log_level", fresh.get_string("HOP_LOG_LEVEL")}});
                }
            } catch (const std::exception& e) {
                why = e.what();
            }
            if (!why.empty()) {
                log.error("reload failed: kept the running configuration", {{"why", why}});
            }
            if (!draining) {
                hangup.async_wait(on_hangup);
            }
        };
    hangup.async_wait(on_hangup);
    // Log lines written while the loop runs go out together once per turn of the loop.
    out->set_deferred([&io, o = out.get()] { boost::asio::post(io, [o] { o->flush(); }); });
    io.run();
    out->set_deferred({});
    if (loki_pusher) {
        loki_pusher->finish(net::LokiPusher::kFinalFlush);  // the last lines, "shutting down" included
    }
    return 0;
}

}  // namespace hopgate::server
