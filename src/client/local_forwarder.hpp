// The client agent's forwarding engine: each tunnel stream the server opens with a request head
// becomes one HTTP/1.1 exchange with the local service (plain HTTP, Boost.Beast).
//
// Per stream: the request head (method, target, headers as given, Host kept; hop-by-hop headers
// dropped) is sent on a pooled keep-alive connection; the request body is copied from the
// stream to the socket as it arrives (Content-Length when the head has one, else chunked; no
// body for GET/HEAD/DELETE/OPTIONS/TRACE without framing headers); the response head goes back
// with send_meta() (hop-by-hop headers dropped), then the body as the service produces it (each
// read is written to the stream at once, so SSE and long polls flow), then FIN.
// Upgrades (StreamKind::kUpgrade): after a 101 the stream and the socket are a raw byte pipe in
// both directions until both sides finished; only the idle timeout applies.
//
// Memory is bounded per exchange by two I/O buffers (io_buffer_size) plus the parser's buffer:
// the socket is read only when the stream accepted the previous piece (else it waits for
// kStreamWritable), and the stream is read only when the socket took the previous piece, so
// proto's flow control back-pressures the visitor.
//
// Errors reset the stream with a code from client/stream_codes.hpp (in both directions):
// unreachable service -> kLocalUnreachable, no response head in time -> kLocalTimeout, invalid
// response -> kLocalBadResponse, socket failure mid-exchange -> kLocalIoError. A reset or
// STOP_SENDING from the server (visitor gone) or a closed tunnel aborts the local request and
// frees everything (the local connection is closed, not pooled).
//
// Threading: everything, including all TunnelEvents callbacks, runs on one single-threaded
// io_context: the one given here, which must also drive the tunnels. Ownership: the forwarder
// owns its exchanges and pool; it holds tunnels weakly. It must outlive the tunnels whose events
// it receives (or be detached from them with set_events(nullptr) before it is destroyed).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "client/local_pool.hpp"
#include "client/stream_codes.hpp"
#include "core/log.hpp"
#include "core/recycling_allocator.hpp"
#include "net/tunnel.hpp"

namespace hopgate::client {

struct ForwarderOptions {
    std::string host = "127.0.0.1";  // local target (see parse_local_target)
    std::uint16_t port = 80;
    std::size_t max_idle_connections = 64;
    std::size_t max_connections = 256;  // open to the service; more requests wait (FIFO)
    std::chrono::milliseconds idle_connection_timeout{30'000};  // pooled connection lifetime
    std::chrono::milliseconds connect_timeout{5'000};
    // Wait for the response head, counted from the last request byte written (or the start).
    std::chrono::milliseconds response_head_timeout{60'000};
    // No progress in either direction while streaming bodies.
    std::chrono::milliseconds body_idle_timeout{300'000};
    // No progress in either direction on an upgraded (101) pipe.
    std::chrono::milliseconds upgrade_idle_timeout{3'600'000};
    std::size_t io_buffer_size = 32 * 1024;         // per direction per exchange
    std::uint32_t max_response_header_bytes = 64 * 1024;
    // One "request" line per exchange when it ends (request_id from the server's stream head,
    // method, path, status, bytes, duration, result). Default: discarded.
    core::Logger access_log;
};

// Parses a local target "host:port", "[v6]:port" or "http://host:port[/]" into host and port.
// Returns an empty string on success, else a one-line reason.
std::string parse_local_target(std::string_view text, std::string& host, std::uint16_t& port);

struct ForwarderStats {
    std::uint64_t requests_total = 0;
    std::uint64_t responses_total = 0;         // response heads sent
    std::uint64_t completed_total = 0;         // exchanges that ended normally
    std::uint64_t upgrades_total = 0;          // 101 pipes started
    std::uint64_t unreachable_total = 0;
    std::uint64_t timeouts_total = 0;
    std::uint64_t bad_responses_total = 0;
    std::uint64_t io_errors_total = 0;
    std::uint64_t cancelled_total = 0;         // by the server (visitor gone) or tunnel closed
    std::uint64_t retries_total = 0;           // stale pooled connection, retried fresh
    std::size_t active = 0;                    // exchanges in flight
    PoolStats pool;
};

class LocalForwarder : public net::TunnelEvents {
public:
    LocalForwarder(asio::any_io_executor ex, ForwarderOptions opts);
    ~LocalForwarder() override;
    LocalForwarder(const LocalForwarder&) = delete;
    LocalForwarder& operator=(const LocalForwarder&) = delete;

    // Handles stream events of any tunnel; other events (kEstablished, kConnectionClosed, ...)
    // are passed to `on_other_event` after the forwarder's own bookkeeping (a closed
    // connection aborts that tunnel's exchanges).
    void on_tunnel_event(net::Tunnel& tunnel, proto::Event& ev) override;
    std::function<void(net::Tunnel&, proto::Event&)> on_other_event;

    // Aborts every exchange (streams reset with kCancelled) and closes pooled connections.
    void shutdown();

    ForwarderStats stats() const;
    const ForwarderOptions& options() const { return *opts_; }

    class Exchange;  // one stream <-> one local HTTP exchange (local_forwarder.cpp)
    struct SpareBlocks;  // I/O buffers of finished exchanges, for the next ones

private:
    friend class Exchange;
    using Key = std::pair<const net::Tunnel*, proto::StreamId>;

    void start_exchange(net::Tunnel& tunnel, proto::Event& ev);
    void erase(const Key& key);
    using Clock = std::chrono::steady_clock;
    // Makes the deadline timer fire no later than `at` (see local_forwarder.cpp).
    void arm_deadline(Clock::time_point at);
    void on_deadline_timer();
    // Flushes `tunnel` soon (coalesced, never re-entrantly from inside a callback).
    void schedule_flush(const std::shared_ptr<net::Tunnel>& tunnel);

    asio::any_io_executor ex_;
    std::shared_ptr<const ForwarderOptions> opts_;  // shared with the exchanges
    asio::steady_timer deadline_timer_;             // the exchanges' deadlines
    Clock::time_point deadline_at_{};
    bool deadline_armed_ = false;
    std::uint64_t deadline_gen_ = 0;
    std::shared_ptr<LocalPool> pool_;
    std::shared_ptr<SpareBlocks> spare_;
    // Memory of finished exchanges (one object and control block each), for the next ones.
    std::shared_ptr<core::BlockRecycler> exchange_memory_ =
        std::make_shared<core::BlockRecycler>(64);
    std::map<Key, std::shared_ptr<Exchange>> exchanges_;
    std::set<const net::Tunnel*> flush_pending_;
    int in_event_ = 0;                           // depth of on_tunnel_event calls
    const net::Tunnel* event_tunnel_ = nullptr;  // tunnel of the innermost event
    std::shared_ptr<bool> alive_;  // cleared on destruction; guards posted flushes
    ForwarderStats st_;
};

}  // namespace hopgate::client
