// A tunnel: one proto::Connection driven by a real transport (DTLS/UDP or TLS/TCP) on an Asio
// executor. The transport feeds received bytes and timer expiries into the connection, hands the
// connection's events to the application's TunnelEvents, and writes what the connection produces.
//
// Threading: every method, and every TunnelEvents callback, runs on the tunnel's executor (one
// io_context thread). Ownership: the transport keeps the tunnel alive while its socket is open;
// the application holds shared_ptr<Tunnel> only as long as it uses it (registries hold weak_ptr).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "proto/connection.hpp"

namespace hopgate::net {

enum class TransportKind { kDtls, kTls };
const char* transport_name(TransportKind k);

class Tunnel;

// Implemented by the application (gateway, client agent, tests).
class TunnelEvents {
public:
    virtual ~TunnelEvents() = default;
    // One connection event. The handler may use tunnel.conn()'s API; the transport flushes after.
    virtual void on_tunnel_event(Tunnel& tunnel, proto::Event& ev) = 0;
};

class Tunnel : public std::enable_shared_from_this<Tunnel> {
public:
    virtual ~Tunnel() = default;

    proto::Connection& conn() { return *conn_; }
    bool has_conn() const { return conn_ != nullptr; }
    TransportKind kind() const { return kind_; }
    const std::string& peer() const { return peer_; }
    void set_events(TunnelEvents* events) { events_ = events; }

    // Call after using conn()'s API outside an event callback: dispatches events, writes what is
    // due and re-arms the timer.
    virtual void flush() = 0;
    // Closes the connection (CONNECTION_CLOSE, best effort) and releases the transport.
    virtual void abort() = 0;
    // True once the transport is finished (socket released, no more events).
    bool closed() const { return closed_; }
    // Times a DTLS client tunnel moved to a fresh local socket because its path went silent or
    // its address went away (TransportOptions::client_rebind_after); 0 for other tunnels.
    virtual std::uint64_t rebinds() const { return 0; }

protected:
    Tunnel(TransportKind kind, std::string peer) : kind_(kind), peer_(std::move(peer)) {}

    // Delivers pending connection events to the application (after on_transport_event).
    void dispatch_events();
    // Lets the transport consume events meant for it (PATH_RESPONSE for path validation).
    // Returns true when the event was consumed and must not reach the application.
    virtual bool on_transport_event(const proto::Event& /*ev*/) { return false; }

    std::unique_ptr<proto::Connection> conn_;
    TransportKind kind_;
    std::string peer_;
    TunnelEvents* events_ = nullptr;
    bool closed_ = false;
};

// Connection tuning shared by both transports (proto defaults unless set).
struct TunnelTuning {
    proto::ConnectionConfig base;  // role/mode/credentials/packet sizes are filled in per tunnel
};

}  // namespace hopgate::net
