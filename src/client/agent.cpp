#include "client/agent.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <chrono>

namespace hopgate::client {

namespace asio = boost::asio;
using namespace std::chrono_literals;

Agent::Agent(asio::io_context& io, AgentConfig cfg, core::Logger log)
    : io_(io), cfg_(std::move(cfg)), log_(std::move(log)), retry_(io),
      rng_state_(static_cast<std::uint64_t>(
          std::chrono::steady_clock::now().time_since_epoch().count())) {
    if (cfg_.server_name.empty()) {
        cfg_.server_name = cfg_.server_host;
    }
    tls::ClientTrust trust{cfg_.ca_file, cfg_.insecure_skip_verify};
    dtls_ctx_ = tls::make_client_context(trust, tls::Protocol::kDtls);
    tls_ctx_ = tls::make_client_context(trust, tls::Protocol::kTls);
    ForwarderOptions fo;
    const std::string bad = parse_local_target(cfg_.local_target, fo.host, fo.port);
    if (!bad.empty()) {
        throw std::runtime_error("HOP_CLIENT_LOCAL_TARGET: " + bad);
    }
    fo.access_log = log_.with_component("access");
    forwarder_ = std::make_unique<LocalForwarder>(io.get_executor(), fo);
    forwarder_->on_other_event = [this](net::Tunnel& t, proto::Event& ev) { on_event(t, ev); };
}

Agent::~Agent() { stop(); }

void Agent::start() {
    if (cfg_.insecure_skip_verify) {
        log_.warn("--insecure-skip-verify: the server certificate is NOT verified");
    }
    connect();
}

void Agent::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    retry_.cancel();
    // abort() reports kConnectionClosed synchronously and on_event() then lets go of tunnel_:
    // hold the tunnel here, not through the member.
    if (auto t = std::move(tunnel_)) {
        t->abort();
        t->set_events(nullptr);
    }
    forwarder_->shutdown();
}

bool Agent::connected() const { return established_; }
std::size_t Agent::attempts() const { return attempts_; }

std::chrono::milliseconds Agent::next_backoff() {
    backoff_ = backoff_.count() == 0 ? 1000ms : std::min<std::chrono::milliseconds>(backoff_ * 2, 30000ms);
    // +-20 % jitter so a fleet of clients does not reconnect in lockstep.
    rng_state_ = rng_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    const double j = 0.8 + 0.4 * static_cast<double>(rng_state_ >> 11) * 0x1.0p-53;
    return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(backoff_.count()) * j));
}

void Agent::connect() {
    if (stopped_) {
        return;
    }
    ++attempts_;
    established_ = false;
    dial(cfg_.transport == TransportChoice::kTls ? net::TransportKind::kTls
                                                  : net::TransportKind::kDtls);
}

void Agent::dial(net::TransportKind kind) {
    net::TransportOptions o;
    o.conn.domain = cfg_.domain;
    o.conn.api_key = cfg_.api_key;
    o.conn.client_version = "hopgate-client/0.1";
    if (cfg_.transport == TransportChoice::kAuto && kind == net::TransportKind::kDtls) {
        o.handshake_timeout = cfg_.auto_dtls_timeout;
    }
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(cfg_.server_host, ec);
    if (ec) {
        // A name: resolve it (blocking, once per attempt; the agent has nothing else to do).
        asio::ip::tcp::resolver res(io_);
        auto r = res.resolve(cfg_.server_host, "", ec);
        if (ec || r.empty()) {
            schedule_retry(next_backoff(), "cannot resolve " + cfg_.server_host);
            return;
        }
        addr = r.begin()->endpoint().address();
    }
    // Where exactly: one address serves DTLS on UDP and TLS tunnels on TCP (the HTTPS port).
    const std::uint16_t port = kind == net::TransportKind::kDtls ? cfg_.dtls_port : cfg_.tls_port;
    log_.info("connecting", {{"server", cfg_.server_host},
                             {"address", addr.to_string()},
                             {"port", port},
                             {"protocol", kind == net::TransportKind::kDtls ? "udp" : "tcp"},
                             {"transport", net::transport_name(kind)},
                             {"attempt", attempts_}});
    auto done = [this, kind](std::shared_ptr<net::Tunnel> t, const std::string& err) {
        on_dial(kind, std::move(t), err);
    };
    if (kind == net::TransportKind::kDtls) {
        net::dial_dtls(io_, {addr, port}, dtls_ctx_, cfg_.server_name, o,
                       forwarder_.get(), done);
    } else {
        net::dial_tls(io_, {addr, port}, tls_ctx_, cfg_.server_name, o,
                      forwarder_.get(), done);
    }
}

void Agent::on_dial(net::TransportKind kind, std::shared_ptr<net::Tunnel> t,
                    const std::string& err) {
    if (stopped_) {
        if (t) {
            t->abort();
        }
        return;
    }
    if (!t) {
        if (err.find("certificate verify failed") != std::string::npos) {
            log_.warn("connect failed",
                      {{"transport", net::transport_name(kind)},
                       {"error", err},
                       {"hint", "the server's certificate is not trusted or not made for '" +
                                    cfg_.server_name +
                                    "': for a self-signed server pass --ca-file with its "
                                    "certificate (hopgate-selfsigned.crt in the server's "
                                    "--cert-dir), and --server-name with a name that certificate "
                                    "covers when --server-addr is an IP address or another name"}});
        } else {
            log_.warn("connect failed", {{"transport", net::transport_name(kind)}, {"error", err}});
        }
        if (cfg_.transport == TransportChoice::kAuto && kind == net::TransportKind::kDtls) {
            dial(net::TransportKind::kTls);  // UDP blocked or filtered: fall back at once
            return;
        }
        schedule_retry(next_backoff(), err);
        return;
    }
    tunnel_ = std::move(t);
}

void Agent::on_event(net::Tunnel& t, proto::Event& ev) {
    if (ev.type == proto::EventType::kEstablished) {
        established_ = true;
        auth_rejected_ = false;
        backoff_ = 0ms;
        log_.info("tunnel established", {{"domain", cfg_.domain}, {"peer", t.peer()},
                                         {"transport", net::transport_name(t.kind())}});
        return;
    }
    if (ev.type == proto::EventType::kConnectionClosed) {
        established_ = false;
        const bool auth = ev.code == static_cast<std::uint64_t>(proto::WireError::kAuthFailed);
        // The server is draining, its registry is down, or it rate-limits us: not our key.
        using R = proto::AuthFailReason;
        const auto reason = static_cast<R>(ev.auth_fail_reason);
        const bool transient = reason == R::kShuttingDown || reason == R::kUnavailable ||
                               reason == R::kRateLimited;
        log_.warn(!auth ? "tunnel closed"
                  : transient ? "server refused the tunnel for now"
                              : "server rejected the credentials",
                  {{"code", proto::wire_error_name(static_cast<proto::WireError>(ev.code))},
                   {"reason", ev.reason}, {"by_peer", ev.by_peer},
                   {"socket_moves", t.rebinds()}});
        if (tunnel_.get() == &t) {
            asio::post(io_, [keep = std::move(tunnel_)] {});
        }
        if (auth && !transient) {
            // Wrong key or unknown domain: retrying fast cannot help and looks like an attack.
            schedule_retry(std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.auth_retry),
                           "authentication rejected: " + ev.reason);
        } else {
            schedule_retry(next_backoff(), ev.reason);
        }
    }
}

void Agent::schedule_retry(std::chrono::milliseconds delay, const std::string& why) {
    if (stopped_) {
        return;
    }
    log_.info("reconnecting later", {{"in_ms", static_cast<std::int64_t>(delay.count())},
                                     {"why", why}});
    retry_.expires_after(delay);
    retry_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) {
            connect();
        }
    });
}

}  // namespace hopgate::client
