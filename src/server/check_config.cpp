#include "server/check_config.hpp"

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <ostream>

#include "admin/cidr.hpp"
#include "registry/factory.hpp"
#include "tls/certs.hpp"

namespace hopgate::server {

namespace asio = boost::asio;

namespace {

class Report {
public:
    explicit Report(std::ostream& out) : out_(out) {}
    void ok(const std::string& what) { out_ << "ok   " << what << "\n"; }
    void warn(const std::string& what) { out_ << "warn " << what << "\n"; }
    void fail(const std::string& what) {
        out_ << "FAIL " << what << "\n";
        failed_ = true;
    }
    bool failed() const { return failed_; }

private:
    std::ostream& out_;
    bool failed_ = false;
};

// A directory the server writes into: it exists and is writable, or it can be created.
void check_writable_dir(Report& r, const std::string& dir, const std::string& setting) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path p = fs::absolute(dir.empty() ? "." : dir, ec);
    if (fs::is_directory(p, ec)) {
        if (::access(p.c_str(), W_OK) == 0) {
            r.ok(setting + ": " + p.string() + " is writable");
        } else {
            r.fail(setting + ": " + p.string() + " is not writable: " + std::strerror(errno));
        }
        return;
    }
    if (fs::exists(p, ec)) {
        r.fail(setting + ": " + p.string() + " exists and is not a directory");
        return;
    }
    fs::path parent = p.parent_path();
    while (!parent.empty() && !fs::exists(parent, ec)) {
        parent = parent.parent_path();
    }
    if (::access(parent.c_str(), W_OK) == 0) {
        r.ok(setting + ": " + p.string() + " will be created");
    } else {
        r.fail(setting + ": " + p.string() + " does not exist and " + parent.string() +
               " is not writable");
    }
}

void check_certificate(Report& r, const GatewayConfig& g, const std::vector<std::string>& names) {
    if (!g.cert_file.empty() || !g.key_file.empty()) {
        if (g.cert_file.empty() || g.key_file.empty()) {
            r.fail("HOP_SERVER_TLS_CERT and HOP_SERVER_TLS_KEY: give both, or neither");
            return;
        }
        std::string why;
        auto ck = tls::CertifiedKey::from_files(g.cert_file, g.key_file, &why);
        if (!ck) {
            r.fail("HOP_SERVER_TLS_CERT/HOP_SERVER_TLS_KEY: " + why);
            return;
        }
        r.ok("certificate " + g.cert_file + " and key " + g.key_file + " load and match");
        if (auto bad = tls::unfit_for(**ck, names, std::chrono::seconds(0)); !bad.empty()) {
            r.fail("certificate " + g.cert_file + ": " + bad);
        } else if (auto soon = tls::unfit_for(**ck, names, std::chrono::hours(24 * 14));
                   !soon.empty()) {
            r.warn("certificate " + g.cert_file + ": " + soon);
        } else {
            r.ok("certificate covers the control and proxy domains and is valid for 14+ days");
        }
        return;
    }
    if (g.acme.enabled) {
        if (g.acme.directory_url.rfind("https://", 0) != 0) {
            r.fail("HOP_ACME_CA_DIR: " + g.acme.directory_url + " is not an https:// URL");
        } else {
            r.ok("certificates from ACME: " + g.acme.directory_url);
        }
        check_writable_dir(r, g.acme.cache_dir, "HOP_ACME_CACHE_DIR");
        return;
    }
    r.ok("certificate: self-signed (no HOP_SERVER_TLS_CERT, no HOP_ACME_CA_DIR)");
    check_writable_dir(r, g.cert_dir, "HOP_SERVER_CERT_DIR");
}

void check_database(Report& r, const GatewayConfig& g) {
    const std::string what = registry::describe_dsn(g.db_dsn);
    auto parsed = registry::parse_dsn(g.db_dsn);
    if (!parsed) {
        r.fail("HOP_DB_DSN: expected empty, sqlite://<path> or postgres://...");
        return;
    }
    if (parsed->backend == registry::Backend::kSqlite &&
        !std::filesystem::exists(parsed->target)) {
        // Not created here: check-config writes nothing.
        const auto parent = std::filesystem::absolute(parsed->target).parent_path();
        if (::access(parent.c_str(), W_OK) == 0) {
            r.ok("database " + what + " does not exist yet; the server creates it");
        } else {
            r.fail("database " + what + ": " + parent.string() + " is not writable");
        }
        return;
    }
    try {
        registry::RegistryConfig rc;
        rc.dsn = g.db_dsn;
        rc.max_open_conns = 1;
        auto reg = registry::open_registry(rc);
        r.ok("database " + what + " is reachable and migrated");
    } catch (const std::exception& e) {
        r.fail("database " + what + ": " + e.what());
    }
}

template <class Protocol>
void check_port(Report& r, asio::io_context& io, const std::string& addr, const char* setting,
                const char* name) {
    // Parsed as the server parses it (core::parse_listen_address; an empty host is 0.0.0.0).
    std::string why;
    const auto listen = core::parse_listen_address(addr, &why);
    if (!listen) {
        r.fail(std::string(setting) + ": " + why);
        return;
    }
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(listen->host.empty() ? "0.0.0.0" : listen->host, ec);
    if (ec) {
        r.fail(std::string(setting) + ": " + addr + ": " + ec.message());
        return;
    }
    const auto port = listen->port;
    if (port == 0) {
        r.ok(std::string(name) + " listener " + addr + ": any free port");
        return;
    }
    typename Protocol::endpoint ep(ip, port);
    if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
        asio::ip::tcp::acceptor a(io);
        a.open(ep.protocol(), ec);
        if (!ec) {
            a.set_option(asio::socket_base::reuse_address(true), ec);
            a.bind(ep, ec);
        }
        if (!ec) {
            a.listen(asio::socket_base::max_listen_connections, ec);
        }
    } else {
        asio::ip::udp::socket s(io);
        s.open(ep.protocol(), ec);
        if (!ec) {
            s.bind(ep, ec);
        }
    }
    if (ec) {
        r.fail(std::string(name) + " listener " + addr + " (" + setting + "): " + ec.message());
    } else {
        r.ok(std::string(name) + " listener " + addr + " is free");
    }
}

}  // namespace

int check_server_config(const GatewayConfig& g_in, const core::Config& cfg, std::ostream& out) {
    Report r(out);
    GatewayConfig g = g_in;
    r.ok("settings parse (flags, environment, .env)");
    for (const auto& w : cfg.warnings()) {
        r.warn(w);
    }
    try {
        g.control_domain = normalize_host_setting(g.control_domain, "HOP_SERVER_DOMAIN");
        for (auto& d : g.proxy_domains) {
            d = normalize_host_setting(d, "HOP_SERVER_PROXY_DOMAINS");
        }
        r.ok("control domain " + g.control_domain + ", " + std::to_string(g.proxy_domains.size()) +
             " proxy domain(s)");
    } catch (const std::exception& e) {
        r.fail(e.what());
    }
    for (const auto& [text, setting] :
         {std::pair{g.admin_allow_cidrs, "HOP_ADMIN_ALLOW_CIDRS"},
          std::pair{g.trusted_proxies, "HOP_SERVER_TRUSTED_PROXIES"},
          std::pair{g.metrics_allow_cidrs, "HOP_METRICS_ALLOW_CIDRS"}}) {
        try {
            (void)admin::CidrList::parse(text);
        } catch (const std::exception& e) {
            r.fail(std::string(setting) + ": " + e.what());
        }
    }
    if (g.admin_key.empty()) {
        r.warn("HOP_ADMIN_API_KEY is empty: the admin API is disabled");
    }
    std::vector<std::string> names = {g.control_domain};
    names.insert(names.end(), g.proxy_domains.begin(), g.proxy_domains.end());
    check_certificate(r, g, names);
    for (const auto& [dir, setting] : {std::pair{g.error_pages_dir, "HOP_ERROR_PAGES_DIR"},
                                       std::pair{g.error_assets_dir, "HOP_ERROR_ASSETS_DIR"}}) {
        if (!dir.empty() && !std::filesystem::is_directory(dir)) {
            r.fail(std::string(setting) + ": " + dir + " is not a directory");
        }
    }
    check_database(r, g);
    asio::io_context io;
    check_port<asio::ip::tcp>(r, io, g.https_listen, "HOP_SERVER_HTTPS_LISTEN", "HTTPS");
    check_port<asio::ip::tcp>(r, io, g.http_listen, "HOP_SERVER_HTTP_LISTEN", "HTTP");
    check_port<asio::ip::udp>(r, io, g.dtls_listen, "HOP_SERVER_DTLS_LISTEN", "DTLS");
    if (g.tunnel_listen.empty()) {
        r.ok("HOP_SERVER_TUNNEL_LISTEN: off (TLS tunnels on the HTTPS listener only)");
    } else {
        check_port<asio::ip::tcp>(r, io, g.tunnel_listen, "HOP_SERVER_TUNNEL_LISTEN",
                                  "TLS tunnels");
    }
    out << "\neffective configuration (secrets masked):\n" << cfg.describe();
    out << (r.failed() ? "\ncheck-config: FAILED\n" : "\ncheck-config: ok\n");
    return r.failed() ? 1 : 0;
}

}  // namespace hopgate::server
