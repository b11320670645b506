// Real transports for tunnels: DTLS 1.2 over UDP (primary) and TLS over TCP (fallback).
//
// Server side: DtlsServer owns one UDP socket for all clients (demultiplexed by connection ID,
// then by address; a stateless cookie exchange precedes any per-peer state, and the handshakes
// in progress after it are bounded per source and in all, see net/half_open.hpp), TlsServer owns
// a TCP acceptor (pausing on EMFILE, net/accept_backoff.hpp). Both constructors throw
// boost::system::system_error when the address cannot be bound (e.g. in use: the DTLS socket
// does not set SO_REUSEADDR, so a second server cannot share its UDP port). Each accepted client
// becomes a Tunnel handed to the application's callback, which sets its TunnelEvents. Client side: dial_dtls()/dial_tls() produce a Tunnel that authenticates
// with the credentials in the connection config.
//
// Everything runs on the io_context's single thread. Every wait has a deadline (handshake
// timeout, the connection's own timers); every queue is bounded.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/log.hpp"
#include "net/tunnel.hpp"
#include "tls/context.hpp"
#include "tls/ossl.hpp"

namespace hopgate::net {

namespace asio = boost::asio;

// Bytes a client prefixes to datagrams once it knows its connection ID: a marker byte outside
// the DTLS content types (20..25) and the 8-byte ID.
inline constexpr std::uint8_t kCidMarker = 0xC1;
inline constexpr std::size_t kCidPrefixLen = 9;

struct TransportOptions {
    proto::ConnectionConfig conn;                 // tuning; role/mode/sizes are set per tunnel
    core::Duration handshake_timeout = std::chrono::seconds(10);  // (D)TLS + AUTH
    std::size_t udp_payload_base = 1200;          // safe start (SPEC §4)
    std::size_t udp_payload_max = 1452;           // PMTUD ceiling (1500 - IPv6 - UDP)
    std::size_t max_sessions = 10000;
    // DTLS handshakes in progress (after the cookie exchange): all of them, and per source
    // address (IPv4 /32, IPv6 /64). At half full, those older than `half_open_pressure_age` are
    // evicted to admit a newcomer (HalfOpenTable, net/half_open.hpp).
    std::size_t max_half_open = 1024;
    std::size_t max_half_open_per_source = 16;
    core::Duration half_open_pressure_age = std::chrono::seconds(2);
    std::size_t tcp_write_high_water = 512 * 1024;  // stop pulling from the connection above this
    int socket_buffer_bytes = 4 * 1024 * 1024;
    // DTLS client: nothing received for this long while packets await acknowledgement (or the
    // local address is gone) -> continue on a fresh UDP socket; the server follows by connection
    // ID after path validation (docs/protocol.md §14.2). Zero disables.
    core::Duration client_rebind_after = std::chrono::seconds(3);
    core::Logger log;  // listener warnings (accept pauses); default: silent
};

struct ServerStats {
    std::uint64_t datagrams_in = 0;
    std::uint64_t datagrams_out = 0;
    std::uint64_t cookies_sent = 0;
    std::uint64_t dropped = 0;         // unattributable or malformed datagrams
    std::uint64_t handshakes_ok = 0;
    std::uint64_t handshakes_failed = 0;
    std::uint64_t migrations = 0;      // NAT rebinding: a session moved to a validated address
    std::uint64_t path_challenges = 0;          // PATH_CHALLENGEs sent to candidate addresses
    std::uint64_t path_validations_failed = 0;  // no PATH_RESPONSE: stayed on the old address
    std::uint64_t amplification_limited = 0;    // flushes stopped by the 3x anti-amplification cap
    // Half-open handshakes (HalfOpenTable): evicted as the oldest of a source at its cap, or
    // under pressure (older than half_open_pressure_age); refused newcomers.
    std::uint64_t half_open_evicted_same_source = 0;
    std::uint64_t half_open_evicted_pressure = 0;
    std::uint64_t half_open_refused_source = 0;
    std::uint64_t half_open_refused_full = 0;
    std::uint64_t send_syscalls = 0;
    std::size_t sessions = 0;
    std::size_t half_open = 0;
};

using NewTunnel = std::function<void(const std::shared_ptr<Tunnel>&)>;

class DtlsServer {
public:
    DtlsServer(asio::io_context& io, const asio::ip::udp::endpoint& listen, tls::ContextPtr ctx,
               TransportOptions opts, NewTunnel on_tunnel);
    ~DtlsServer();
    asio::ip::udp::endpoint local_endpoint() const;
    void start();
    void stop();  // closes the socket; sessions end
    ServerStats stats() const;

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

class TlsServer {
public:
    TlsServer(asio::io_context& io, const asio::ip::tcp::endpoint& listen, tls::ContextPtr ctx,
              TransportOptions opts, NewTunnel on_tunnel);
    // Without a listener of its own: tunnels come only through adopt().
    TlsServer(asio::io_context& io, tls::ContextPtr ctx, TransportOptions opts,
              NewTunnel on_tunnel);
    ~TlsServer();
    // The listener's address; a default endpoint (port 0) when there is none.
    asio::ip::tcp::endpoint local_endpoint() const;
    void start();
    // Takes over a TCP connection whose TLS handshake another listener completed and whose
    // negotiated ALPN is hopgate/1 (the HTTPS front door on a shared port): `ssl` is the
    // established server SSL (its BIO is replaced). Counts against max_sessions like an accepted
    // connection; refused (the connection closes) when full or stopped.
    void adopt(asio::ip::tcp::socket sock, tls::SslPtr ssl);
    void stop();
    std::size_t tunnels() const;

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

// Dials a server. `conn` carries the client credentials (domain, api_key). `done` is called once:
// with the tunnel when the (D)TLS handshake completed (authentication then proceeds in-band and
// is reported through TunnelEvents), or with an error (unreachable, handshake failed/timed out,
// certificate rejected) and a message.
using DialDone = std::function<void(std::shared_ptr<Tunnel>, const std::string& error)>;

void dial_dtls(asio::io_context& io, const asio::ip::udp::endpoint& server,
               tls::ContextPtr ctx, const std::string& server_name, TransportOptions opts,
               TunnelEvents* events, DialDone done);
void dial_tls(asio::io_context& io, const asio::ip::tcp::endpoint& server, tls::ContextPtr ctx,
              const std::string& server_name, TransportOptions opts, TunnelEvents* events,
              DialDone done);

}  // namespace hopgate::net
