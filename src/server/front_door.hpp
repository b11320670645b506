// The public front door: HTTPS (and plain HTTP) listeners, one session per visitor connection,
// routing by Host to the control-domain handler or to a tunnel of the domain.
//
// Proxying streams both ways with bounded memory: the request body is read from the visitor only
// as fast as the tunnel stream accepts it, and the response body is read from the tunnel only as
// fast as the visitor's socket takes it. Each exchange leases its two I/O buffers from one
// server-wide core::BufferBudget (`buffer_budget`); when the budget is spent, new exchanges get a
// 503 page instead of memory. No domain may hold more than `buffer_share_domain_percent` of the
// budget, no visitor source (IPv4 address, IPv6 /64) more than `buffer_share_source_percent`, so
// one visitor or one attacked domain cannot starve the others (refusals counted in
// hopgate_proxy_buffer_refused_total by share). Connections over `max_connections` are closed at
// accept (counted in hopgate_http_connections_rejected_total), and so are a source's connections
// over `max_connections_per_source` (hopgate_http_connections_rejected_per_source_total).
// 503 page instead of memory. Connections over `max_connections` are closed at accept (counted
// in hopgate_http_connections_rejected_total); plain-HTTP connections have their own cap,
// `max_http_connections`. Each listener's accept loop pauses on EMFILE and the like
// (net::AcceptBackoff) instead of spinning.
//
// Every wait has a deadline: TLS handshake and first request head (`header_timeout`, slowloris),
// the next request head on a kept-alive connection (`keepalive_timeout`), the response head
// (`proxy_timeout`), idle body transfer (`idle_timeout`), a visitor taking one piece of the
// response (`stall_timeout`: a stalled reader's stream is reset so that its unread data does not
// sit in the tunnel). An upgrade request (Upgrade +
// Connection: upgrade) opens a kUpgrade stream; a 101 answer turns the connection into a raw
// byte pipe in both directions with only `upgrade_idle_timeout`; any other answer is an ordinary
// response. Pipelined requests are answered in order, one after another.
//
// Hostile input (http/framing.hpp): a request head with ambiguous body framing or one the tunnel
// cannot carry gets a 400/431/501 page before anything enters the tunnel, bad chunk framing a
// 400 page, each followed by a lingering close; a response head from the tunnel that breaks
// docs/protocol.md §4.1 gets the visitor a 502 page and the stream a reset (0x107), and a
// response body is held to its Content-Length (hopgate_proxy_bad_responses_total).
//
// One port for visitors and TLS tunnels: when the HTTPS context offers ALPN hopgate/1 and a
// handshake negotiates it, the connection (socket and established SSL) goes to
// `tunnel_handoff` (the TLS tunnel server) instead of HTTP; it stops counting as a visitor.
//
// Each request gets an id (the visitor's sane X-Request-Id or 16 random hex characters), sent in
// the stream metadata and X-Request-Id both ways, and one access-log line ("request") when it
// ends.
//
// Threading: everything on the gateway's io_context thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <string>

#include "admin/cidr.hpp"
#include "core/log.hpp"
#include "net/tunnel.hpp"
#include "tls/context.hpp"
#include "tls/ossl.hpp"

namespace hopgate::server {

class TunnelPool;
struct Metrics;

using ControlRequest = boost::beast::http::request<boost::beast::http::string_body>;
using ControlResponse = boost::beast::http::response<boost::beast::http::string_body>;
// Handles a control-domain request; calls `reply` exactly once (possibly later, on the
// io_context thread).
using ControlHandler = std::function<void(ControlRequest req, const std::string& remote_ip,
                                          std::function<void(ControlResponse)> reply)>;
// Renders an error page for `status` (400, 404, 431, 500, 501, 502, 503, 504, 525).
using ErrorPageRenderer =
    std::function<ControlResponse(int status, const std::string& host, const std::string& rid)>;

struct FrontDoorOptions {
    std::string control_domain = "localhost";
    std::chrono::seconds proxy_timeout{15};     // wait for the response head
    std::chrono::seconds header_timeout{10};    // TLS handshake + first request head (slowloris)
    std::chrono::seconds keepalive_timeout{60};  // wait for the next request head
    std::chrono::seconds idle_timeout{120};     // no byte moved in either direction (bodies)
    std::chrono::seconds upgrade_idle_timeout{600};  // no byte moved on a 101 pipe
    // A write of one response piece (<= 64 KiB, body or 101 pipe) to the visitor not done within
    // this: a stalled reader. Its stream is reset (its unread tunnel data and credit freed) and
    // the connection closed with a TCP reset.
    std::chrono::seconds stall_timeout{30};
    std::size_t max_header_bytes = 32 * 1024;
    std::size_t max_control_body = 64 * 1024;
    std::size_t max_connections = 10000;
    std::size_t max_connections_per_source = 256;  // per IPv4 address / IPv6 /64; 0 = no cap
    // Open plain-HTTP connections (redirects, ACME HTTP-01); more are closed at accept and
    // counted in hopgate_http_redirect_connections_rejected_total.
    std::size_t max_http_connections = 1024;
    std::size_t buffer_budget = 512u * 1024 * 1024;  // bytes of proxy I/O buffers, all exchanges
    unsigned buffer_share_domain_percent = 50;  // of buffer_budget, one domain; 100 = no share
    unsigned buffer_share_source_percent = 10;  // of buffer_budget, one source; 100 = no share
    core::Logger access_log;                     // one "request" line per request
    core::Logger log;                            // listener warnings (accept pauses)
    std::string hsts;                            // Strict-Transport-Security value, empty = off
    // ACME HTTP-01: the key authorization for a token under /.well-known/acme-challenge/, any
    // Host (AcmeService::http01_response). Null: no ACME.
    std::function<std::optional<std::string>(std::string_view token)> acme_http01;
    // HOP_SERVER_TRUSTED_PROXIES: peers whose X-Forwarded-For / Forwarded chains (and other
    // client-address headers) are kept and extended; from any other peer they are dropped.
    admin::CidrList trusted_proxies;
    // Takes a connection whose handshake negotiated ALPN hopgate/1 (a TLS tunnel on the HTTPS
    // port). Null: such a connection is closed (the HTTPS context should not offer hopgate/1).
    std::function<void(boost::asio::ip::tcp::socket, tls::SslPtr)> tunnel_handoff;
};

class FrontDoor {
public:
    FrontDoor(boost::asio::io_context& io, TunnelPool& pool, FrontDoorOptions opts,
              ControlHandler control, ErrorPageRenderer pages, Metrics* metrics);
    ~FrontDoor();

    // Starts an HTTPS listener (tls context with the HTTPS certificates).
    boost::asio::ip::tcp::endpoint listen_https(const boost::asio::ip::tcp::endpoint& ep,
                                                tls::ContextPtr ctx);
    // Starts the plain HTTP listener: ACME HTTP-01 (later), 308 redirect to HTTPS otherwise.
    boost::asio::ip::tcp::endpoint listen_http(const boost::asio::ip::tcp::endpoint& ep,
                                               std::uint16_t https_port);
    // Dispatches a tunnel's stream event to the proxy exchange waiting on it. Returns false if
    // no exchange owns the stream.
    bool on_stream_event(net::Tunnel& tunnel, proto::Event& ev);
    // The tunnel closed: every exchange on it that has no response head yet gets an error page
    // (525 when `transport_failure`: the tunnel's DTLS/TLS transport died, timed out or broke
    // the protocol; 502 when it was closed on purpose), the others are cut.
    void on_tunnel_closed(net::Tunnel& tunnel, bool transport_failure = false);

    // Whether a tunnel's CONNECTION_CLOSE code means its transport failed (idle timeout, the
    // socket or byte stream gone, an internal or protocol error) rather than a deliberate close
    // (graceful, refused, credentials rejected or rotated).
    static bool is_transport_failure(std::uint64_t wire_code);
    // Stops accepting (new connections are refused). Idle connections (no request in progress)
    // are closed at once; busy ones close after their current response.
    void stop();
    // Closes every remaining visitor connection (the end of a drain).
    void close_all();
    // Open visitor connections (HTTPS).
    std::size_t connections() const;

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

// Request id: 16 hex characters, random.
std::string new_request_id();

}  // namespace hopgate::server
