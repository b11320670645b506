// Test harness for tunnels on real loopback sockets: a server (DTLS + TLS listeners) and client
// tunnels running the same pattern-checked transfer as the simulator scenarios.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "net/transport.hpp"
#include "tls/certs.hpp"
#include "tls/context.hpp"

namespace hopgate::testing {

std::uint8_t pattern(std::uint64_t idx, int dir, std::uint64_t off);

struct TransferSpec {
    std::size_t streams = 4;
    std::uint64_t bytes = 1 << 20;       // per stream, server -> client
    std::uint64_t echo_bytes = 1 << 20;  // per stream, client -> server
    std::vector<std::uint64_t> sizes;    // optional per-stream sizes (overrides `bytes`)
};

// Application logic for both ends: the server opens streams and sends; the client answers.
class TransferApp : public net::TunnelEvents {
public:
    TransferApp(bool server, TransferSpec spec, std::string key = std::string(64, 'a'));
    void on_tunnel_event(net::Tunnel& t, proto::Event& ev) override;

    bool done() const;
    const std::string& error() const { return error_; }
    std::uint64_t received() const { return received_; }
    bool closed() const { return closed_; }
    std::uint64_t close_code() const { return close_code_; }
    std::string close_reason() const { return close_reason_; }
    bool established() const { return established_; }
    std::size_t completed() const { return completed_; }
    // Server: called when a tunnel is accepted.
    std::function<void(net::Tunnel&)> on_established;

private:
    struct S {
        std::uint64_t idx = 0;
        std::uint64_t to_send = 0;
        std::uint64_t to_recv = 0;
        std::uint64_t sent = 0;
        std::uint64_t recvd = 0;
        bool fin_sent = false;
        bool fin_recvd = false;
        bool closed = false;
    };
    void write_some(net::Tunnel& t, proto::StreamId id, S& s);
    void read_some(net::Tunnel& t, proto::StreamId id, S& s);
    void fail(const std::string& e) {
        if (error_.empty()) {
            error_ = (server_ ? "server: " : "client: ") + e;
        }
    }
    std::uint64_t size_of(std::uint64_t idx) const;

    bool server_;
    TransferSpec spec_;
    std::string key_;
    std::map<proto::StreamId, S> streams_;
    std::string error_;
    std::uint64_t received_ = 0;
    std::size_t completed_ = 0;
    std::size_t closed_streams_ = 0;
    bool established_ = false;
    bool closed_ = false;
    std::uint64_t close_code_ = 0;
    std::string close_reason_;
    std::vector<std::uint8_t> buf_;
};

// Certificates, contexts and listeners on 127.0.0.1 port 0.
class Harness {
public:
    explicit Harness(TransferSpec spec, net::TransportOptions opts = {});
    ~Harness();

    boost::asio::io_context io;
    std::string ca_file;  // PEM of the self-signed server certificate
    tls::ContextPtr dtls_client_ctx;
    tls::ContextPtr tls_client_ctx;
    net::TransportOptions opts;
    std::unique_ptr<net::DtlsServer> dtls;
    std::unique_ptr<net::TlsServer> tls_server;
    TransferApp server_app;
    std::vector<std::shared_ptr<net::Tunnel>> server_tunnels;

    boost::asio::ip::udp::endpoint dtls_endpoint() const;
    boost::asio::ip::tcp::endpoint tls_endpoint() const;

    // Runs the io_context until `done` is true or `seconds` pass; returns done().
    bool run_until(const std::function<bool()>& done, double seconds);

    // Dials with the given transport; the client's events go to `app`.
    std::shared_ptr<net::Tunnel> dial(net::TransportKind kind, TransferApp& app,
                                      const std::string& domain, const std::string& key,
                                      std::string* error, std::uint16_t port_override = 0);
};

}  // namespace hopgate::testing
