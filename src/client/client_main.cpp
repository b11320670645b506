#include "client/client_main.hpp"

#include <boost/asio/post.hpp>
#include <openssl/crypto.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <iostream>

#include "client/agent.hpp"
#include "core/config.hpp"
#include "core/loki.hpp"
#include "net/loki_pusher.hpp"
#include "core/version.hpp"
#include "tls/certs.hpp"
#include "proto/frame.hpp"

namespace hopgate::client {

namespace {

using core::OptionType;

core::ConfigSchema schema() {
    core::ConfigSchema s;
    s.add({.env = "HOP_CLIENT_SERVER_ADDR", .flag = "--server-addr", .type = OptionType::kAddress,
           .help = "server host:port: DTLS on UDP, TLS tunnels on TCP (the HTTPS port)",
           .required = true});
    s.add({.env = "HOP_CLIENT_SERVER_TLS_PORT", .flag = "--server-tls-port",
           .type = OptionType::kInt,
           .help = "TLS/TCP tunnel port on the same host (default: the --server-addr port, where "
                   "the server's HTTPS listener takes tunnels by ALPN hopgate/1)",
           .min = 1, .max = 65535});
    s.add({.env = "HOP_CLIENT_SERVER_NAME", .flag = "--server-name", .default_value = "",
           .help = "name to verify in the server certificate (default: the server host)"});
    s.add({.env = "HOP_CLIENT_DOMAIN", .flag = "--domain", .help = "the domain this client serves",
           .required = true});
    s.add({.env = "HOP_CLIENT_API_KEY", .flag = "--api-key",
           .help = "the domain's client API key (from the admin API)", .required = true,
           .secret = true});
    s.add({.env = "HOP_CLIENT_LOCAL_TARGET", .flag = "--local-target",
           .default_value = "127.0.0.1:8080", .help = "local HTTP service host:port"});
    s.add({.env = "HOP_CLIENT_TRANSPORT", .flag = "--transport", .default_value = "auto",
           .help = "dtls, tls, or auto (DTLS, falling back to TLS/TCP when UDP is blocked)"});
    s.add({.env = "HOP_CLIENT_CA_FILE", .flag = "--ca-file", .default_value = "",
           .help = "PEM file of trusted CAs (default: the system roots)"});
    s.add({.env = "HOP_CLIENT_INSECURE_SKIP_VERIFY", .flag = "--insecure-skip-verify",
           .type = OptionType::kBool, .default_value = "false",
           .help = "do not verify the server certificate (testing only; warns at start)"});
    s.add({.env = "HOP_CLIENT_DEBUG", .flag = "--debug", .type = OptionType::kBool,
           .default_value = "false", .help = "debug logging (does not disable verification)"});
    s.add({.env = "HOP_LOG_LEVEL", .flag = "--log-level", .default_value = "info",
           .help = "debug, info, warn or error"});
    core::add_loki_options(s);
    return s;
}

}  // namespace

// `hopgate-client check-config`: the settings, the local target, the CA file and the server's
// name, then the effective configuration with secrets masked. Exit code 0/1.
int check_client_config(const AgentConfig& a, const core::Config& cfg, std::ostream& out) {
    bool failed = false;
    auto ok = [&](const std::string& s) { out << "ok   " << s << "\n"; };
    auto fail = [&](const std::string& s) {
        out << "FAIL " << s << "\n";
        failed = true;
    };
    ok("settings parse (flags, environment, .env)");
    for (const auto& w : cfg.warnings()) {
        out << "warn " << w << "\n";
    }
    std::string host;
    std::uint16_t port = 0;
    if (auto bad = parse_local_target(a.local_target, host, port); !bad.empty()) {
        fail("HOP_CLIENT_LOCAL_TARGET: " + bad);
    } else {
        ok("local service " + host + ":" + std::to_string(port));
    }
    if (a.insecure_skip_verify) {
        out << "warn HOP_CLIENT_INSECURE_SKIP_VERIFY: the server certificate is NOT verified\n";
    } else if (!a.ca_file.empty()) {
        auto pem = tls::read_pem_file(a.ca_file);
        if (!pem) {
            fail("HOP_CLIENT_CA_FILE: cannot read " + a.ca_file + ": " + pem.error().message());
        } else if (auto certs = tls::load_certificates_pem(*pem); !certs) {
            fail("HOP_CLIENT_CA_FILE: " + a.ca_file + " holds no PEM certificate");
        } else {
            ok("CA file " + a.ca_file + ": " + std::to_string(certs->size()) + " certificate(s)");
        }
    } else {
        ok("server certificate checked against the system's trusted roots (no --ca-file)");
    }
    boost::system::error_code ec;
    (void)boost::asio::ip::make_address(a.server_host, ec);
    if (ec) {
        boost::asio::io_context io;
        boost::asio::ip::tcp::resolver res(io);
        auto r = res.resolve(a.server_host, "", ec);
        if (ec || r.empty()) {
            fail("HOP_CLIENT_SERVER_ADDR: cannot resolve " + a.server_host + ": " + ec.message());
        } else {
            ok("server " + a.server_host + " resolves to " +
               r.begin()->endpoint().address().to_string());
        }
    } else {
        ok("server " + a.server_host + " (DTLS port " + std::to_string(a.dtls_port) +
           ", TLS port " + std::to_string(a.tls_port) + ")");
    }
    out << "\neffective configuration (secrets masked):\n" << cfg.describe();
    out << (failed ? "\ncheck-config: FAILED\n" : "\ncheck-config: ok\n");
    return failed ? 1 : 0;
}

int client_main(int argc, const char* const* argv) {
    const auto sch = schema();
    core::Config cfg;
    try {
        // Every unknown HOP_* key is reported, except the server's (a shared .env).
        cfg = core::load_process_config(
            sch, argc, argv, "HOP_",
            {"HOP_SERVER_", "HOP_ADMIN_", "HOP_DB_", "HOP_ACME_", "HOP_ERROR_", "HOP_METRICS_"});
    } catch (const core::ConfigError& e) {
        std::cerr << "hopgate-client: configuration error:\n" << e.what() << "\n";
        return 1;
    }
    if (cfg.version_requested() && !cfg.help_requested()) {
        std::cout << "hopgate-client " << core::version() << " (tunnel protocol " << proto::kProtocolVersion
                  << ", " << OpenSSL_version(OPENSSL_VERSION) << ")\n";
        return 0;
    }
    if (cfg.help_requested()) {
        std::cout << sch.help_text("hopgate-client",
                                   "HopGate client: serves a domain from a local HTTP service "
                                   "through an outbound tunnel.\nSubcommand: check-config "
                                   "(validate the settings, print the effective configuration; "
                                   "exit 0/1)");
        return 0;
    }
    auto level = core::parse_log_level(cfg.get_bool("HOP_CLIENT_DEBUG")
                                           ? "debug"
                                           : cfg.get_string("HOP_LOG_LEVEL"));
    if (!level) {
        std::cerr << "hopgate-client: HOP_LOG_LEVEL: must be debug, info, warn or error\n";
        return 1;
    }
    AgentConfig a;
    const auto& server = cfg.get_address("HOP_CLIENT_SERVER_ADDR");
    a.server_host = server.host.empty() ? "127.0.0.1" : server.host;
    a.dtls_port = server.port;
    // One public port serves both: DTLS on UDP, TLS tunnels on TCP by ALPN (the HTTPS port).
    a.tls_port = cfg.has("HOP_CLIENT_SERVER_TLS_PORT")
                     ? static_cast<std::uint16_t>(cfg.get_int("HOP_CLIENT_SERVER_TLS_PORT"))
                     : server.port;
    a.server_name = cfg.get_string("HOP_CLIENT_SERVER_NAME");
    a.domain = cfg.get_string("HOP_CLIENT_DOMAIN");
    a.api_key = cfg.get_string("HOP_CLIENT_API_KEY");
    a.local_target = cfg.get_string("HOP_CLIENT_LOCAL_TARGET");
    a.ca_file = cfg.get_string("HOP_CLIENT_CA_FILE");
    a.insecure_skip_verify = cfg.get_bool("HOP_CLIENT_INSECURE_SKIP_VERIFY");
    const std::string t = cfg.get_string("HOP_CLIENT_TRANSPORT");
    if (t == "dtls") {
        a.transport = TransportChoice::kDtls;
    } else if (t == "tls") {
        a.transport = TransportChoice::kTls;
    } else if (t == "auto") {
        a.transport = TransportChoice::kAuto;
    } else {
        std::cerr << "hopgate-client: --transport: must be dtls, tls or auto\n";
        return 1;
    }
    // Checked before check-config runs, so that it reports a bad HOP_LOKI_* too (exit 1).
    std::optional<core::LokiSettings> loki;
    try {
        loki = core::loki_settings_from_config(cfg, "client");
    } catch (const core::ConfigError& e) {
        std::cerr << "hopgate-client: configuration error:\n" << e.what() << "\n";
        return 1;
    }
    const auto& pos = cfg.positional();
    if (!pos.empty()) {
        if (pos[0] == "check-config") {
            return check_client_config(a, cfg, std::cout);
        }
        std::cerr << "hopgate-client: unknown subcommand \"" << pos[0]
                  << "\" (check-config, or see --help)\n";
        return 2;
    }
    auto loki_queue =
        loki ? std::make_shared<core::LokiQueue>(core::LokiQueue::Limits{}) : nullptr;
    auto out = std::make_shared<core::LogOutput>(
        *level, loki_queue ? core::LokiQueue::tee(loki_queue, core::stderr_sink()) : core::LogSink{});
    core::Logger log(out, "client");
    for (const auto& w : cfg.warnings()) {
        log.warn(w);
    }
    boost::asio::io_context io;
    // Taken over before the first dial (which may block on a name lookup): an early SIGTERM is a
    // clean stop once the loop runs, not the default action.
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    std::unique_ptr<Agent> agent;
    try {
        agent = std::make_unique<Agent>(io, a, log);
    } catch (const std::exception& e) {
        std::cerr << "hopgate-client: " << e.what() << "\n";
        return 1;
    }
    std::shared_ptr<net::LokiPusher> loki_pusher;
    if (loki) {
        loki_pusher = std::make_shared<net::LokiPusher>(io, *loki, loki_queue,
                                                        log.with_component("loki"));
        loki_pusher->start();
    }
    agent->start();
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec) {
            agent->stop();
            io.stop();
        }
    });
    // Log lines written while the loop runs go out together once per turn of the loop.
    out->set_deferred([&io, o = out.get()] { boost::asio::post(io, [o] { o->flush(); }); });
    io.run();
    out->set_deferred({});
    if (loki_pusher) {
        loki_pusher->finish(net::LokiPusher::kFinalFlush);
    }
    return 0;
}

}  // namespace hopgate::client
