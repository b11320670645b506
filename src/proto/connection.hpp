// The tunnel connection: a sans-I/O state machine (ngtcp2-style) carrying reliable, ordered,
// flow-controlled, congestion-controlled multiplexed streams over either
//   - Mode::kDatagram: an unreliable datagram path (DTLS/UDP), with packet numbers, ACK ranges,
//     RFC 9002 loss detection/PTO, congestion control, pacing and DPLPMTUD; or
//   - Mode::kStream: a reliable byte stream (TLS/TCP), with the same frames in length-prefixed
//     records and no packet numbers, ACKs or recovery.
//
// Inputs: on_datagram()/on_stream_bytes() with the current time, on_timeout(), and the stream API.
// Outputs: write_datagram()/write_stream_bytes(), poll_event(), next_timeout().
// The driver contract: after every input or API call, call write_*() until it returns 0, then
// arm one timer at next_timeout() and call on_timeout() when it fires. No clock is read inside;
// no I/O; no threads. Not thread-safe: one owner (one strand) drives it.
//
// Errors: API calls return Result/Status values (proto::Errc). A peer's protocol violation closes
// the connection with a WireError in CONNECTION_CLOSE and a kConnectionClosed event.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "core/time.hpp"
#include "proto/congestion.hpp"
#include "proto/credit_budget.hpp"
#include "proto/error.hpp"
#include "proto/frame.hpp"
#include "proto/meta.hpp"
#include "proto/range_set.hpp"
#include "proto/rtt.hpp"

namespace hopgate::proto {

using StreamId = std::uint64_t;

enum class Role { kClient, kServer };
enum class Mode { kDatagram, kStream };

struct ConnectionConfig {
    Role role = Role::kClient;
    Mode mode = Mode::kDatagram;

    // Client credentials (AUTH).
    std::string domain;
    std::string api_key;
    std::string client_version = "hopgate/0.1";

    // Receive-side limits we grant the peer (and so our receive memory bound).
    std::uint64_t initial_stream_window = 256 * 1024;
    std::uint64_t max_stream_window = 16 * 1024 * 1024;     // auto-tuning ceiling per stream
    std::uint64_t initial_connection_window = 1024 * 1024;
    std::uint64_t max_connection_window = 32 * 1024 * 1024;  // bound on all receive buffering
    std::uint64_t max_streams = 1000;  // concurrently open peer-initiated streams
    // Shared across connections (the server's tunnels): the connection window grows past
    // `initial_connection_window` only with credit reserved here. Null: no shared bound.
    std::shared_ptr<CreditBudget> credit_budget;

    // Send-side buffering (application data accepted but not yet acknowledged).
    std::uint64_t stream_send_buffer = 4 * 1024 * 1024;
    std::uint64_t connection_send_buffer = 32 * 1024 * 1024;

    std::size_t max_meta_size = kDefaultMaxMetaSize;

    Duration idle_timeout = std::chrono::seconds(30);
    Duration keepalive_interval = std::chrono::seconds(10);  // 0 disables
    Duration handshake_timeout = std::chrono::seconds(10);
    Duration max_ack_delay = std::chrono::milliseconds(25);
    Duration initial_rtt = std::chrono::milliseconds(100);
    unsigned ack_eliciting_threshold = 2;  // ACK after this many ack-eliciting packets

    CcAlgorithm cc = CcAlgorithm::kBbr;

    // Datagram mode: plaintext bytes per datagram. Start at `base_packet_size` (1200-byte UDP
    // payload minus DTLS overhead) and probe up to `max_packet_size` when `pmtud` is on.
    std::size_t base_packet_size = 1163;
    std::size_t max_packet_size = 1163;
    bool pmtud = true;

    // Stream mode: maximum record payload.
    std::size_t max_record_size = 16 * 1024;

    // Server: connection ID announced to the client in AUTH_OK (0 = none); see TransportParams.
    std::uint64_t connection_id = 0;
};

// Checks a configuration; returns a message for the first problem, or empty.
std::string validate(const ConnectionConfig& c);

struct AuthInfo {
    std::uint64_t version = 0;
    std::string domain;
    std::string api_key;
    std::string client_version;
};

enum class EventType {
    kAuthRequest,        // server: the client presented credentials (auth); accept or reject
    kEstablished,        // authentication complete; streams may be opened
    kStreamOpened,       // the peer opened `stream`; `meta` is its head
    kStreamHead,         // the peer's head (`meta`) on a stream we opened
    kStreamReadable,     // stream_read() has data or FIN for `stream`
    kStreamWritable,     // send buffer space is available again on `stream`
    kStreamReset,        // the peer reset its sending direction with `code`
    kStreamStopSending,  // the peer asked us to stop sending (`code`); we reset automatically
    kStreamClosed,       // both directions are finished; `stream` is freed
    kPathResponse,       // a PATH_RESPONSE echoed `code` (for transport path validation)
    kConnectionClosed,   // the connection is closed: `code` (WireError), `reason`, `by_peer`
};

const char* event_type_name(EventType t);

struct Event {
    EventType type{};
    StreamId stream = 0;
    std::uint64_t code = 0;
    std::string reason;
    bool by_peer = false;
    std::optional<StreamMeta> meta;
    AuthInfo auth;  // kAuthRequest only
    std::uint64_t auth_fail_reason = 0;  // kConnectionClosed after AUTH_FAIL
};

struct ReadResult {
    std::size_t bytes = 0;
    bool fin = false;  // all data has been read and the peer finished the stream
};

struct ConnectionStats {
    std::uint64_t packets_sent = 0;
    std::uint64_t packets_received = 0;
    std::uint64_t bytes_sent = 0;      // datagram/record bytes
    std::uint64_t bytes_received = 0;
    std::uint64_t packets_lost = 0;
    std::uint64_t spurious_losses = 0;  // losses later disproved by an ACK (reordering)
    std::uint64_t retransmitted_bytes = 0;  // stream bytes sent again
    std::uint64_t stream_bytes_sent = 0;    // first transmissions
    std::uint64_t stream_bytes_received = 0;  // unique stream bytes received
    std::uint64_t pto_count_total = 0;
    std::uint64_t max_buffered_bytes = 0;
    std::uint64_t dropped_packets = 0;  // undecodable or duplicate
    Duration smoothed_rtt{0};
    Duration min_rtt{0};
    std::uint64_t cwnd = 0;
    std::uint64_t bytes_in_flight = 0;
    std::size_t path_mtu = 0;
    std::uint64_t connection_window = 0;  // receive window we grant at most (auto-tuned)
    std::uint64_t credit_reserved = 0;    // window growth + unread cover in the CreditBudget
    std::uint64_t unread_cover = 0;       // credit granted for unread bytes beyond half the window
    std::uint64_t send_ahead = 0;         // bytes written beyond the peer's stream credit
};

class Connection {
public:
    Connection(const ConnectionConfig& cfg, Instant now);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // ---- inputs
    // Datagram mode: one received datagram (a whole packet). Malformed input closes the
    // connection with FRAME_ENCODING_ERROR; it never crashes.
    void on_datagram(std::span<const std::uint8_t> datagram, Instant now);
    // Stream mode: received bytes in any fragmentation.
    void on_stream_bytes(std::span<const std::uint8_t> bytes, Instant now);
    void on_timeout(Instant now);
    // The transport below is gone (TCP reset, socket error): the connection closes at once,
    // sends nothing, and reports kConnectionClosed with WireError::kTransportClosed.
    void on_transport_closed(std::string_view reason);

    // ---- outputs
    // Datagram mode: writes at most one packet into `out` (which should hold max_packet_size
    // bytes). Returns its size, or 0 when nothing may be sent now.
    std::size_t write_datagram(std::span<std::uint8_t> out, Instant now);
    // Stream mode: writes whole records into `out`; returns the bytes written (0 = nothing).
    std::size_t write_stream_bytes(std::span<std::uint8_t> out, Instant now);
    // Earliest time on_timeout() must be called (includes pacing); nullopt = no timer.
    std::optional<Instant> next_timeout() const;
    bool poll_event(Event& out);

    // ---- handshake (server)
    void accept_auth();
    void reject_auth(AuthFailReason reason, std::string_view message);

    // ---- streams
    // Opens a stream whose first bytes carry `meta` (the request head).
    core::Result<StreamId> open_stream(const StreamMeta& meta);
    // Writes our head (e.g. the response head) on a peer-opened stream; required before writing.
    core::Status send_meta(StreamId id, const StreamMeta& meta);
    // Queues up to data.size() bytes; returns how many were accepted (0 → kWouldBlock error).
    // `fin` takes effect only if all of `data` was accepted.
    core::Result<std::size_t> stream_write(StreamId id, std::span<const std::uint8_t> data,
                                           bool fin);
    core::Status stream_finish(StreamId id);
    // Reads in-order data; returning credit to the peer as data is consumed.
    core::Result<ReadResult> stream_read(StreamId id, std::span<std::uint8_t> out);
    // Bytes readable now on `id` (0 if none or unknown).
    std::size_t stream_readable(StreamId id) const;
    core::Status stream_reset(StreamId id, std::uint64_t code);
    core::Status stream_stop_sending(StreamId id, std::uint64_t code);

    // ---- connection
    // Immediate close: sends CONNECTION_CLOSE, then drains for 3 PTO (datagram mode).
    void close(WireError code, std::string_view reason);
    // Sends PATH_CHALLENGE with `data` (the transport validates a new peer address).
    void send_path_challenge(std::uint64_t data);
    // Sends a PING soon (e.g. to check liveness).
    void ping();

    bool is_established() const;
    bool is_closed() const;   // nothing more to do; the driver may drop the connection
    bool is_closing() const;  // close started (closing or draining)
    Role role() const;
    Mode mode() const;
    std::size_t open_streams() const;
    std::uint64_t buffered_bytes() const;  // send + receive buffering now
    std::size_t max_packet_size() const;   // current PMTU (datagram mode)
    const ConnectionStats& stats() const;
    // Peer's transport parameters (valid once established).
    const TransportParams& peer_params() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopgate::proto
