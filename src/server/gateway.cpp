#include "server/gateway.hpp"

#include <sys/stat.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "admin/api.hpp"
#include "admin/auth_validator.hpp"
#include "admin/cidr.hpp"
#include "core/config.hpp"
#include "http/authority.hpp"
#include "net/transport.hpp"
#include "registry/async_registry.hpp"
#include "registry/domain.hpp"
#include "registry/factory.hpp"
#include "server/front_door.hpp"
#include "server/metrics.hpp"
#include "server/memory_trim.hpp"
#include "server/pages.hpp"
#include "server/tunnel_pool.hpp"
#include "tls/certs.hpp"

namespace hopgate::server {

namespace asio = boost::asio;
namespace http = boost::beast::http;

namespace {

template <class Endpoint>
Endpoint endpoint_of(const std::string& text, const char* what) {
    std::string why;
    auto a = core::parse_listen_address(text, &why);
    if (!a) {
        throw std::runtime_error(std::string(what) + ": " + why);
    }
    const std::string host = a->host.empty() ? "0.0.0.0" : a->host;
    return Endpoint(asio::ip::make_address(host), a->port);
}

// Runs `open` (which binds a listener) and turns a socket error into one clear line for the
// operator, e.g. "cannot listen for DTLS on 127.0.0.1:4433: Address already in use", instead of
// Boost's message with its source location.
template <class Endpoint, class Open>
auto open_listener(const char* what, const Endpoint& ep, Open open) {
    try {
        return open();
    } catch (const boost::system::system_error& e) {
        std::ostringstream where;
        where << ep;  // "1.2.3.4:5" or "[::1]:5"
        throw std::runtime_error(std::string("cannot listen for ") + what + " on " + where.str() +
                                 ": " + e.code().message());
    }
}

// "1.2.3.4:5" or "[::1]:5" -> the address part.
std::string ip_of(const std::string& peer) {
    if (!peer.empty() && peer.front() == '[') {
        return peer.substr(1, peer.find(']') - 1);
    }
    return peer.substr(0, peer.rfind(':'));
}

proto::AuthFailReason fail_reason(admin::AuthCode c) {
    switch (c) {
        case admin::AuthCode::kRateLimited: return proto::AuthFailReason::kRateLimited;
        case admin::AuthCode::kDnsMismatch:
        case admin::AuthCode::kDnsError: return proto::AuthFailReason::kDnsMismatch;
        case admin::AuthCode::kUnavailable: return proto::AuthFailReason::kUnavailable;
        default: return proto::AuthFailReason::kBadCredentials;
    }
}

admin::CidrList parse_cidrs(const std::string& text, const char* setting) {
    try {
        return admin::CidrList::parse(text);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string(setting) + ": " + e.what());
    }
}

}  // namespace

std::string normalize_host_setting(std::string_view value, std::string_view setting) {
    auto a = hopgate::http::parse_authority(value);
    if (!a) {
        throw std::invalid_argument(std::string(setting) + ": \"" + std::string(value) +
                                    "\" is not a host name (" + a.error().message() + ")");
    }
    return hopgate::http::route_key(*a);
}

std::vector<admin::ReservedName> reserved_names(const std::string& control_domain,
                                                const std::vector<std::string>& proxy_domains) {
    std::vector<admin::ReservedName> out;
    // Registry names are normalize_domain()'d; a name it refuses (localhost, an IP) can never be
    // registered anyway, so compare with what it would make of ours.
    auto add = [&](const std::string& name, const char* setting) {
        const auto n = registry::normalize_domain(name);
        out.push_back({n ? *n : name, setting});
    };
    add(control_domain, "HOP_SERVER_DOMAIN");
    for (const auto& d : proxy_domains) {
        add(d, "HOP_SERVER_PROXY_DOMAINS");
    }
    return out;
}

struct Gateway::Impl : std::enable_shared_from_this<Gateway::Impl>, net::TunnelEvents {
    asio::io_context& io;
    GatewayConfig cfg;
    core::Logger log;
    core::MetricsRegistry registry_metrics;
    Metrics metrics{registry_metrics};
    std::unique_ptr<registry::Registry> reg;
    std::unique_ptr<registry::AsyncRegistry> async_reg;
    std::unique_ptr<admin::AsioResolver> resolver;
    std::unique_ptr<admin::AuthValidator> validator;
    std::unique_ptr<admin::AdminApi> admin;
    TunnelPool pool{io};
    // Stream bytes of tunnels that closed (hopgate_tunnel_bytes_total adds the live ones).
    std::uint64_t closed_bytes_out = 0;
    std::uint64_t closed_bytes_in = 0;
    std::unique_ptr<Pages> pages;
    std::unique_ptr<FrontDoor> front;
    std::unique_ptr<MemoryTrimmer> trimmer;
    // Shared by every tunnel's connection: bounds their receive buffering together (SPEC §4).
    std::shared_ptr<proto::CreditBudget> window_budget;
    std::unique_ptr<net::DtlsServer> dtls;
    bool draining = false;
    std::unique_ptr<net::TlsServer> tls_server;
    std::string cert_path;
    std::shared_ptr<AcmeService> acme;  // null unless HOP_ACME_CA_DIR / staging is set
    std::uint16_t http_port = 0, https_port = 0, dtls_port = 0, tunnel_port = 0;
    admin::MetricsGuard metrics_guard;
    std::shared_ptr<tls::CertStore> store;  // HTTPS and tunnel certificates (default + ACME)

    Impl(asio::io_context& io_, GatewayConfig c, core::Logger l)
        : io(io_), cfg(std::move(c)), log(std::move(l)) {}

    void start() {
        // Routing compares normalised hosts: so must the settings that name hosts.
        cfg.control_domain = normalize_host_setting(cfg.control_domain, "HOP_SERVER_DOMAIN");
        for (auto& d : cfg.proxy_domains) {
            d = normalize_host_setting(d, "HOP_SERVER_PROXY_DOMAINS");
        }
        const auto reserved = reserved_names(cfg.control_domain, cfg.proxy_domains);
        metrics_guard = admin::MetricsGuard(
            parse_cidrs(cfg.metrics_allow_cidrs, "HOP_METRICS_ALLOW_CIDRS"), cfg.metrics_token);
        // The certificate before the registry: a start-up that fails on it must not have created
        // the database.
        store = std::make_shared<tls::CertStore>();
        store->set_default(load_certificate());
        registry::RegistryConfig rc;
        rc.dsn = cfg.db_dsn;  // empty: SQLite file in the working directory
        rc.max_open_conns = cfg.db_max_conns;
        rc.max_idle_conns = cfg.db_max_idle_conns;
        rc.conn_max_lifetime = cfg.db_conn_max_lifetime;
        reg = registry::open_registry(rc);
        pages = std::make_unique<Pages>(cfg.error_pages_dir, cfg.error_assets_dir,
                                        cfg.control_domain);
        async_reg = std::make_unique<registry::AsyncRegistry>(*reg, registry::AsyncRegistryOptions{});
        admin::AuthOptions ao;
        for (const auto& s : cfg.expect_ips) {
            if (auto ip = admin::parse_ip(s)) {
                ao.expect_ips.push_back(*ip);
            } else {
                throw std::runtime_error("HOP_ACME_EXPECT_IPS: \"" + s + "\" is not an IP address");
            }
        }
        if (!ao.expect_ips.empty()) {
            resolver = std::make_unique<admin::AsioResolver>(io.get_executor());
        }
        validator = std::make_unique<admin::AuthValidator>(*async_reg, resolver.get(), ao);
        admin::AdminOptions adm;
        adm.api_key = cfg.admin_key;
        if (!cfg.admin_allow_cidrs.empty()) {
            adm.allow = admin::CidrList::parse(cfg.admin_allow_cidrs);
        }
        adm.reserved = reserved;
        admin = std::make_unique<admin::AdminApi>(*reg, &pool, adm);
        if (!admin->enabled()) {
            log.warn("HOP_ADMIN_API_KEY is empty: the admin API is disabled");
        }
        for (const auto& r : reserved) {
            // Registered before it became reserved: the server keeps the name (the control
            // domain always routes to the control handlers), the tenant should go.
            if (auto e = reg->exists(r.domain); e && *e) {
                log.warn("a registered tenant domain is reserved by the server configuration; "
                         "unregister it (`hopgate-server domain remove`)",
                         {{"domain", r.domain}, {"setting", r.setting}});
            }
        }

        const bool use_acme = cfg.acme.enabled && cfg.cert_file.empty();
        if (use_acme) {
            start_acme(store);
        }
        auto https_ctx = tls::make_server_context(
            store, tls::Protocol::kTls,
            // hopgate/1 last: TLS tunnels on the HTTPS port (handed to tls_server).
            use_acme ? std::vector<std::string>{"http/1.1", tls::kAlpnAcmeTls, tls::kAlpnHopgate}
                     : std::vector<std::string>{"http/1.1", tls::kAlpnHopgate});
        auto tunnel_ctx = tls::make_server_context(store, tls::Protocol::kTls);
        auto dtls_ctx = tls::make_server_context(store, tls::Protocol::kDtls);

        FrontDoorOptions fo;
        fo.control_domain = cfg.control_domain;
        fo.proxy_timeout = cfg.proxy_timeout;
        fo.header_timeout = cfg.header_timeout;
        fo.keepalive_timeout = cfg.keepalive_timeout;
        fo.upgrade_idle_timeout = cfg.upgrade_idle_timeout;
        fo.stall_timeout = cfg.stall_timeout;
        fo.max_connections = cfg.max_connections;
        fo.max_connections_per_source = cfg.max_connections_per_source;
        fo.max_http_connections = cfg.max_http_connections;
        fo.log = log;
        fo.buffer_budget = cfg.buffer_budget;
        fo.buffer_share_domain_percent = cfg.buffer_share_domain_percent;
        fo.buffer_share_source_percent = cfg.buffer_share_source_percent;
        fo.access_log = log.with_component("access");
        fo.hsts = cfg.hsts;
        fo.trusted_proxies = parse_cidrs(cfg.trusted_proxies, "HOP_SERVER_TRUSTED_PROXIES");
        if (acme) {
            std::weak_ptr<AcmeService> wa = acme;
            fo.acme_http01 = [wa](std::string_view token) -> std::optional<std::string> {
                auto a = wa.lock();
                return a ? a->http01_response(token) : std::nullopt;
            };
        }
        std::weak_ptr<Impl> weak = shared_from_this();
        fo.tunnel_handoff = [weak](asio::ip::tcp::socket s, tls::SslPtr ssl) {
            auto self = weak.lock();
            if (self && self->tls_server) {
                self->tls_server->adopt(std::move(s), std::move(ssl));
            }
        };
        front = std::make_unique<FrontDoor>(
            io, pool, fo,
            [weak](ControlRequest req, const std::string& ip,
                   std::function<void(ControlResponse)> reply) {
                if (auto self = weak.lock()) {
                    self->control(std::move(req), ip, std::move(reply));
                }
            },
            [weak](int status, const std::string& host, const std::string& rid) {
                auto self = weak.lock();
                return self ? self->pages->error(status, host, rid) : ControlResponse{};
            },
            &metrics);
        const auto https_ep = endpoint_of<asio::ip::tcp::endpoint>(cfg.https_listen,
                                                                    "HOP_SERVER_HTTPS_LISTEN");
        https_port = open_listener("HTTPS", https_ep, [&] {
                         return front->listen_https(https_ep, https_ctx);
                     }).port();
        const auto http_ep =
            endpoint_of<asio::ip::tcp::endpoint>(cfg.http_listen, "HOP_SERVER_HTTP_LISTEN");
        http_port = open_listener("HTTP", http_ep, [&] {
                        return front->listen_http(http_ep, https_port);
                    }).port();

        net::TransportOptions to;
        window_budget = std::make_shared<proto::CreditBudget>(cfg.tunnel_window_budget);
        to.conn.credit_budget = window_budget;
        to.max_half_open_per_source = cfg.dtls_max_half_open_per_source;
        to.log = log;
        auto on_tunnel = [weak](const std::shared_ptr<net::Tunnel>& t) {
            if (auto self = weak.lock()) {
                t->set_events(self.get());
            }
        };
        const auto dtls_ep =
            endpoint_of<asio::ip::udp::endpoint>(cfg.dtls_listen, "HOP_SERVER_DTLS_LISTEN");
        dtls = open_listener("DTLS", dtls_ep, [&] {
            return std::make_unique<net::DtlsServer>(io, dtls_ep, dtls_ctx, to, on_tunnel);
        });
        if (cfg.tunnel_listen.empty()) {
            // No extra listener: TLS tunnels come only through the HTTPS port (ALPN hopgate/1).
            tls_server = std::make_unique<net::TlsServer>(io, tunnel_ctx, to, on_tunnel);
        } else {
            const auto tunnel_ep = endpoint_of<asio::ip::tcp::endpoint>(
                cfg.tunnel_listen, "HOP_SERVER_TUNNEL_LISTEN");
            tls_server = open_listener("TLS tunnels", tunnel_ep, [&] {
                return std::make_unique<net::TlsServer>(io, tunnel_ep, tunnel_ctx, to, on_tunnel);
            });
        }
        dtls->start();
        tls_server->start();
        trimmer = std::make_unique<MemoryTrimmer>(io, cfg.memory_trim_interval,
                                                  kTrimThresholdBytes, log);
        trimmer->start();
        dtls_port = dtls->local_endpoint().port();
        tunnel_port = tls_server->local_endpoint().port();
        log.info("hopgate-server listening",
                 {{"https", https_port}, {"http", http_port}, {"dtls", dtls_port},
                  {"tunnel_tls", tunnel_port}, {"control_domain", cfg.control_domain},
                  {"certificate", cert_path}});
    }

    // Certificates for the control domain, the proxy domains and every registered domain; the
    // self-signed default serves until each one is issued.
    void start_acme(const std::shared_ptr<tls::CertStore>& certs) {
        std::vector<std::string> names = {cfg.control_domain};
        names.insert(names.end(), cfg.proxy_domains.begin(), cfg.proxy_domains.end());
        std::weak_ptr<Impl> weak = shared_from_this();
        DomainLister lister = [weak](std::function<void(std::vector<std::string>)> done) {
            auto self = weak.lock();
            if (!self) {
                return;
            }
            self->async_reg->async_call(
                self->io.get_executor(),
                [](registry::Registry& r) {
                    std::vector<std::string> out;
                    registry::ListQuery q;
                    q.limit = registry::kMaxPageSize;
                    for (int page_no = 0; page_no < 1000; ++page_no) {
                        auto page = r.list(q);
                        if (!page) {
                            return core::Result<std::vector<std::string>>(page.error());
                        }
                        for (auto& rec : page->items) {
                            out.push_back(rec.domain);
                        }
                        if (page->next_after.empty()) {
                            break;
                        }
                        q.after = page->next_after;
                    }
                    return core::Result<std::vector<std::string>>(std::move(out));
                },
                [done](core::Result<std::vector<std::string>> r) {
                    done(r ? std::move(*r) : std::vector<std::string>{});
                });
        };
        acme = std::make_shared<AcmeService>(io, cfg.acme, certs, log.with_component("acme"),
                                             names, lister, &registry_metrics);
        acme->start();
    }

    std::shared_ptr<const tls::CertifiedKey> load_certificate() {
        std::string why;
        if (!cfg.cert_file.empty()) {
            auto ck = tls::CertifiedKey::from_files(cfg.cert_file, cfg.key_file, &why);
            if (!ck) {
                throw std::runtime_error("HOP_SERVER_TLS_CERT/HOP_SERVER_TLS_KEY (--tls-cert/--tls-key): " + why);
            }
            cert_path = cfg.cert_file;
            return *ck;
        }
        std::vector<std::string> names = {cfg.control_domain};
        // Tenants under the gateway's own name (app.gw.example.com) are covered too, as with a
        // wildcard certificate in production.
        if (cfg.control_domain.find('.') != std::string::npos &&
            !tls::is_ip_literal(cfg.control_domain)) {
            names.push_back("*." + cfg.control_domain);
        }
        for (const auto& d : cfg.proxy_domains) {
            names.push_back(d);
        }
        for (const char* n : {"localhost", "127.0.0.1", "::1"}) {
            if (std::find(names.begin(), names.end(), n) == names.end()) {
                names.push_back(n);
            }
        }
        const auto dir = std::filesystem::absolute(cfg.cert_dir);
        cert_path = (dir / "hopgate-selfsigned.crt").string();
        const std::string key_path = (dir / "hopgate-selfsigned.key").string();
        // Reuse the certificate of an earlier run while it is valid for another week and covers
        // every name: clients pinned to it with --ca-file must reconnect after a restart.
        std::string why_new = "none stored";
        if (std::filesystem::exists(cert_path) || std::filesystem::exists(key_path)) {
            std::string load_why;
            auto stored = tls::CertifiedKey::from_files(cert_path, key_path, &load_why);
            if (stored) {
                why_new = tls::unfit_for(**stored, names, std::chrono::hours(24 * 7));
                if (why_new.empty()) {
                    log.warn("no certificate configured: reusing the stored self-signed one "
                             "(clients need --ca-file)",
                             {{"path", cert_path}});
                    return *stored;
                }
            } else {
                why_new = "stored one unreadable: " + load_why;
            }
        }
        log.info("generating a self-signed certificate", {{"path", cert_path}, {"why", why_new}});
        auto pem = tls::generate_self_signed(names);
        std::ofstream(cert_path) << pem.cert_pem;
        {
            std::ofstream k(key_path);
            k << pem.key_pem;
        }
        ::chmod(key_path.c_str(), 0600);
        log.warn("no certificate configured: using a self-signed one (clients need --ca-file)",
                 {{"path", cert_path}});
        auto ck = tls::CertifiedKey::from_pem(pem.cert_pem, pem.key_pem, &why);
        if (!ck) {
            throw std::runtime_error("self-signed certificate: " + why);
        }
        return *ck;
    }

    // ---- tunnels
    void on_tunnel_event(net::Tunnel& t, proto::Event& ev) override {
        switch (ev.type) {
            case proto::EventType::kAuthRequest: authenticate(t, ev.auth); break;
            case proto::EventType::kStreamOpened:
                // Clients do not open streams (yet): refuse politely.
                (void)t.conn().stream_stop_sending(ev.stream, 0x106);
                (void)t.conn().stream_reset(ev.stream, 0x106);
                break;
            case proto::EventType::kConnectionClosed:
                if (t.has_conn()) {
                    closed_bytes_out += t.conn().stats().stream_bytes_sent;
                    closed_bytes_in += t.conn().stats().stream_bytes_received;
                }
                pool.remove(&t);
                front->on_tunnel_closed(t, FrontDoor::is_transport_failure(ev.code));
                metrics.set_tunnels(pool.size(net::TransportKind::kDtls),
                                    pool.size(net::TransportKind::kTls));
                log.info("tunnel closed", {{"peer", t.peer()}, {"code", ev.code},
                                           {"reason", ev.reason},
                                           {"transport", net::transport_name(t.kind())}});
                break;
            default: front->on_stream_event(t, ev); break;
        }
    }

    void authenticate(net::Tunnel& t, const proto::AuthInfo& info) {
        if (draining) {
            // New tunnels are refused while the server drains (the client retries with its
            // normal backoff, e.g. against the restarted server); existing ones stay.
            t.conn().reject_auth(proto::AuthFailReason::kShuttingDown, "server is shutting down");
            metrics.handshake("rejected", t.kind());
            return;
        }
        auto src = admin::parse_ip(ip_of(t.peer())).value_or(admin::IpAddr{});
        std::weak_ptr<net::Tunnel> weak = t.shared_from_this();
        std::weak_ptr<Impl> self_weak = shared_from_this();
        validator->check(src, info.domain, info.api_key, io.get_executor(),
                         [weak, self_weak](admin::AuthResult r) {
                             auto tun = weak.lock();
                             auto self = self_weak.lock();
                             if (!tun || !self || !tun->has_conn()) {
                                 return;
                             }
                             bool ok = r.code == admin::AuthCode::kAccepted;
                             if (ok && r.domain == self->cfg.control_domain) {
                                 // Registered before it became reserved: never a tenant.
                                 ok = false;
                                 r.message = "the control domain is not a tenant domain";
                                 r.code = admin::AuthCode::kUnknownDomain;
                             }
                             if (ok) {
                                 tun->conn().accept_auth();
                                 self->pool.add(r.domain, tun);
                             } else {
                                 tun->conn().reject_auth(fail_reason(r.code), r.message);
                             }
                             self->metrics.handshake(ok ? "ok" : "rejected", tun->kind());
                             self->metrics.set_tunnels(self->pool.size(net::TransportKind::kDtls),
                                                       self->pool.size(net::TransportKind::kTls));
                             self->log.info(ok ? "tunnel authenticated" : "tunnel rejected",
                                            {{"peer", tun->peer()}, {"domain", r.domain},
                                             {"reason", r.message},
                                             {"transport", net::transport_name(tun->kind())}});
                             tun->flush();
                         });
    }

    // ---- control domain
    void control(ControlRequest req, const std::string& ip,
                 std::function<void(ControlResponse)> reply) {
        const std::string target(req.target());
        if (admin::AdminApi::is_admin_target(target)) {
            admin::Request ar;
            ar.method = std::string(req.method_string());
            ar.target = target;
            ar.authorization = std::string(req[http::field::authorization]);
            ar.content_type = std::string(req[http::field::content_type]);
            ar.body = std::move(req.body());
            ar.remote = admin::parse_ip(ip);
            auto* api = admin.get();
            async_reg->async_call(
                io.get_executor(),
                [api, ar = std::move(ar)](registry::Registry&) {
                    return core::Result<admin::Response>(api->handle(ar));
                },
                [reply = std::move(reply), weak_acme = std::weak_ptr<AcmeService>(acme),
                 target](core::Result<admin::Response> rr) {
                    admin::Response r;
                    if (rr) {
                        r = std::move(*rr);
                        // A newly registered domain gets its certificate without a restart.
                        if (auto a = weak_acme.lock();
                            a && (r.status == 200 || r.status == 201) &&
                            target.rfind("/api/v1/admin/domains/register", 0) == 0) {
                            a->kick();
                        }
                    } else {
                        // The worker pool is saturated: the database is the bottleneck.
                        r.status = 503;
                        r.headers.push_back({"Retry-After", "5"});
                        r.body = R"({"success":false,"error":"registry overloaded, retry later"})";
                    }
                    ControlResponse res{static_cast<http::status>(r.status), 11};
                    res.set(http::field::content_type, r.content_type);
                    for (const auto& [k, v] : r.headers) {
                        res.set(k, v);
                    }
                    res.body() = std::move(r.body);
                    reply(std::move(res));
                });
            return;
        }
        if (target == "/metrics") {
            const auto access = metrics_guard.check(
                admin::parse_ip(ip), std::string_view(req[http::field::authorization]));
            if (access != admin::MetricsAccess::kAllowed) {
                const bool forbidden = access == admin::MetricsAccess::kForbidden;
                ControlResponse res{
                    forbidden ? http::status::forbidden : http::status::unauthorized, 11};
                res.set(http::field::content_type, "text/plain; charset=utf-8");
                if (!forbidden) {
                    res.set(http::field::www_authenticate, "Bearer realm=\"hopgate-metrics\"");
                }
                res.body() = forbidden ? "403 forbidden: /metrics is not open to this address "
                                         "(HOP_METRICS_ALLOW_CIDRS)\n"
                                       : "401 unauthorized: /metrics needs the Bearer token "
                                         "(HOP_METRICS_TOKEN)\n";
                reply(std::move(res));
                return;
            }
            ControlResponse res{http::status::ok, 11};
            res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            metrics.set_window_budget(window_budget->used(), window_budget->denied());
            metrics.set_domain_tunnels(pool.live_counts());
            const auto live = pool.stream_bytes();
            metrics.set_tunnel_bytes(closed_bytes_out + live.first, closed_bytes_in + live.second);
            metrics.update_process();
            metrics.update_aliases();
            const auto ds = dtls->stats();
            metrics.set_dtls_half_open(ds.half_open, ds.half_open_evicted_same_source,
                                       ds.half_open_evicted_pressure,
                                       ds.half_open_refused_source, ds.half_open_refused_full);
            res.body() = registry_metrics.render();
            reply(std::move(res));
            return;
        }
        if (target.rfind("/__hopgate_assets__/", 0) == 0) {
            reply(pages->asset(target));
            return;
        }
        if (target == "/") {
            reply(pages->status(pool.size(), pool.domains()));
            return;
        }
        reply(pages->error(404, cfg.control_domain, ""));
    }

    void shutdown(std::chrono::seconds drain, std::function<void()> done) {
        if (acme) {
            acme->stop();
        }
        // Tunnels stay up while visitors drain: in-flight responses still come through them.
        // New tunnels are refused at AUTH (authenticate).
        draining = true;
        trimmer->stop();  // its timer would keep the io_context running
        front->stop();
        log.info("draining", {{"connections", front->connections()},
                              {"deadline_s", static_cast<std::int64_t>(drain.count())}});
        drain_poll(std::chrono::steady_clock::now() + drain, std::move(done));
    }

    void drain_poll(std::chrono::steady_clock::time_point deadline, std::function<void()> done) {
        if (front->connections() > 0 && std::chrono::steady_clock::now() < deadline) {
            auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(50));
            timer->async_wait([timer, self = shared_from_this(), deadline,
                               done = std::move(done)](const boost::system::error_code&) mutable {
                self->drain_poll(deadline, std::move(done));
            });
            return;
        }
        const std::size_t left = front->connections();
        if (left > 0) {
            log.warn("drain deadline passed: closing the remaining connections",
                     {{"connections", left}});
            front->close_all();
        } else {
            log.info("drained");
        }
        pool.close_all();
        // A moment for the tunnel close frames (and the resets above) to leave.
        auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(200));
        timer->async_wait([timer, self = shared_from_this(),
                           done = std::move(done)](const boost::system::error_code&) {
            self->dtls->stop();
            self->tls_server->stop();
            done();
        });
    }
};

Gateway::Gateway(asio::io_context& io, GatewayConfig cfg, core::Logger log)
    : impl_(std::make_shared<Impl>(io, std::move(cfg), std::move(log))) {
    impl_->start();
}

Gateway::~Gateway() = default;

std::uint16_t Gateway::http_port() const { return impl_->http_port; }
std::uint16_t Gateway::https_port() const { return impl_->https_port; }
std::uint16_t Gateway::dtls_port() const { return impl_->dtls_port; }
std::uint16_t Gateway::tunnel_port() const { return impl_->tunnel_port; }
const std::string& Gateway::certificate_path() const { return impl_->cert_path; }
std::size_t Gateway::tunnels() const { return impl_->pool.size(); }
core::MetricsRegistry& Gateway::metrics_registry() { return impl_->registry_metrics; }

void Gateway::shutdown(std::chrono::seconds drain, std::function<void()> done) {
    impl_->shutdown(drain, std::move(done));
}

std::string Gateway::reload(const GatewayConfig& fresh) {
    auto& im = *impl_;
    std::shared_ptr<const tls::CertifiedKey> cert;
    if (!fresh.cert_file.empty() || !fresh.key_file.empty()) {
        if (fresh.cert_file.empty() || fresh.key_file.empty()) {
            return "HOP_SERVER_TLS_CERT and HOP_SERVER_TLS_KEY: give both, or neither";
        }
        if (im.cfg.cert_file.empty()) {
            return "a certificate file replaces the self-signed or ACME certificate only at a "
                   "restart";
        }
        std::string why;
        auto ck = tls::CertifiedKey::from_files(fresh.cert_file, fresh.key_file, &why);
        if (!ck) {
            return "HOP_SERVER_TLS_CERT/HOP_SERVER_TLS_KEY: " + why;
        }
        cert = *ck;
    }
    std::unique_ptr<Pages> pages;
    try {
        pages = std::make_unique<Pages>(fresh.error_pages_dir, fresh.error_assets_dir,
                                        im.cfg.control_domain);
    } catch (const std::exception& e) {
        return std::string("error pages: ") + e.what();
    }
    if (cert) {
        im.store->set_default(std::move(cert));
        im.cfg.cert_file = fresh.cert_file;
        im.cfg.key_file = fresh.key_file;
        im.cert_path = fresh.cert_file;
    }
    im.pages = std::move(pages);
    im.cfg.error_pages_dir = fresh.error_pages_dir;
    im.cfg.error_assets_dir = fresh.error_assets_dir;
    return {};
}

}  // namespace hopgate::server
