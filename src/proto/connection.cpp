#include "proto/connection.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "proto/buffers.hpp"

namespace hopgate::proto {

using core::kInstantMax;

namespace {

constexpr std::uint8_t kPacketFlags = 0x40;     // fixed bit; other bits reserved (zero)
constexpr std::size_t kMaxAckRangesSent = 32;
constexpr std::size_t kMaxRecvRangesTracked = 64;
constexpr std::uint64_t kPacketThreshold = 3;          // RFC 9002 initial reordering threshold
constexpr std::uint64_t kMaxPacketThreshold = 256;
constexpr double kTimeThreshold = 9.0 / 8.0;
constexpr double kMaxTimeThreshold = 2.0;
constexpr std::size_t kRecentlyLostRanges = 256;
constexpr unsigned kMaxPtoBackoff = 6;
constexpr unsigned kPersistentCongestionThreshold = 3;
constexpr std::size_t kMinFrameSpace = 24;      // don't start a STREAM frame in less room
constexpr Duration kPmtuRaiseInterval = std::chrono::seconds(600);
constexpr Duration kPmtuBlackHoleRetry = std::chrono::seconds(60);
constexpr int kPmtuMaxProbes = 3;
constexpr std::size_t kPmtuSearchDone = 16;     // stop when the window is this narrow
constexpr std::size_t kStreamRecordPrefix = 4;  // fixed 4-byte varint length prefix
// Pacing below a 1 ms smoothed RTT (loopback, a LAN) releases packets in quanta: the pacer lets
// packets out up to one quantum ahead of their ideal send time and, once it is that far ahead,
// sleeps until a whole quantum is due again. The quantum is BBR's send quantum (the pacing rate
// times 1 ms) capped at kPacingQuantumMax, and never less than a quarter of the smoothed RTT.
// Waking per packet gap (a few microseconds at these rates) cost more than the packets: on
// loopback a sender woke ~12 times per GSO batch of ~12 datagrams. With 32 KiB quanta a DTLS
// tunnel moved 620-670 MB/s at 2.3-2.5 CPU s/GiB instead of 470-500 MB/s at 3.4-3.6; 16 KiB and
// 64 KiB quanta both did worse. A full 1 ms of slack per packet (quiche's alarm granularity) is
// no pacing there: in the simulator at 0.8 ms RTT, 1 Gbit/s and a 64-packet queue it lost 14.6 MB
// of 64 MB (791 Mbit/s); 32 KiB quanta lose 2.2 MB (917 Mbit/s), as a quarter RTT of slack did.
// At 1 ms and above packets are paced one by one.
constexpr std::size_t kPacingQuantumMax = 32 * 1024;
constexpr Duration kPacingGranularity = std::chrono::milliseconds(1);

enum class RecKind : std::uint8_t {
    kStream,
    kMaxData,
    kMaxStreamData,
    kMaxStreams,
    kReset,
    kStopSending,
    kAuth,
    kAuthOk,
    kOther,  // not retransmitted (PING, *_BLOCKED, PATH_*)
};

struct SentRec {
    RecKind kind;
    bool fin = false;
    StreamId id = 0;
    std::uint64_t offset = 0;
    std::uint32_t len = 0;
};

struct SentPacket {
    std::uint64_t pn = 0;
    Instant time{};
    std::uint32_t size = 0;
    bool ack_eliciting = false;
    bool in_flight = false;   // counts in bytes_in_flight and congestion control
    bool mtu_probe = false;
    bool done = false;        // acknowledged, declared lost, or never tracked
    bool acked = false;
    // Delivery-rate sampling state at send time.
    std::uint64_t delivered = 0;
    Instant delivered_time{};
    Instant first_sent_time{};
    bool app_limited = false;
    std::vector<SentRec> recs;
};

struct Stream {
    StreamId id = 0;
    bool local = false;

    // ---- send direction
    SendBuffer sbuf;
    std::uint64_t send_next = 0;  // next never-sent offset
    RangeSet lost;                // ranges to retransmit
    RangeSet acked;               // acknowledged ranges above sbuf.base()
    std::uint64_t send_max = 0;   // peer's MAX_STREAM_DATA
    bool meta_written = false;
    bool fin_requested = false;
    bool fin_pending = false;     // a frame carrying FIN must be (re)sent
    bool fin_acked = false;
    bool reset = false;           // we reset the send direction
    bool reset_pending = false;
    bool reset_acked = false;
    std::uint64_t reset_code = 0;
    std::uint64_t reset_final = 0;
    std::uint64_t blocked_at = std::numeric_limits<std::uint64_t>::max();
    bool blocked_pending = false;
    bool want_writable = false;
    bool in_send_queue = false;
    std::uint64_t ahead = 0;      // written beyond send_max, counted in Impl::send_ahead
    bool in_ahead_waiters = false;

    // ---- receive direction
    RecvBuffer rbuf;
    std::uint64_t recv_highest = 0;
    bool final_known = false;
    std::uint64_t final_size = 0;
    std::uint64_t recv_max = 0;
    std::uint64_t window = 0;
    bool has_window_update = false;
    Instant last_window_update{};
    bool max_data_pending = false;
    bool meta_parsed = false;
    bool peer_reset = false;
    bool reset_notified = false;
    bool stopped = false;        // we sent STOP_SENDING
    bool stop_pending = false;
    std::uint64_t stop_code = 0;
    bool fin_read = false;
    bool readable_outstanding = false;
    bool in_ctrl_queue = false;

    // Back to the state of a new stream, keeping the buffers' small allocations (see
    // Connection::Impl::spare_streams).
    void recycle() {
        SendBuffer s = std::move(sbuf);
        RecvBuffer r = std::move(rbuf);
        *this = Stream{};
        sbuf = std::move(s);
        sbuf.recycle();
        rbuf = std::move(r);
        rbuf.recycle();
    }

    bool send_done() const {
        if (reset) {
            return reset_acked;
        }
        return fin_acked && sbuf.base() == sbuf.end() && lost.empty();
    }
    bool recv_done() const {
        if (fin_read) {
            return true;
        }
        if (peer_reset) {
            return reset_notified || stopped;
        }
        if (stopped) {
            return final_known && recv_highest == final_size;
        }
        return false;
    }
};

enum class State { kHandshake, kEstablished, kClosing, kDraining, kClosed };
enum class Hs { kClientAuthSent, kServerWaiting, kServerDeciding, kDone };

// Path MTU discovery after RFC 8899 (DPLPMTUD), binary search with black-hole fallback.
struct Pmtud {
    bool enabled = false;
    std::size_t base = 0;
    std::size_t max = 0;
    std::size_t current = 0;  // confirmed
    std::size_t high = 0;     // search ceiling
    std::size_t probe_size = 0;
    bool probe_outstanding = false;
    std::uint64_t probe_pn = 0;
    Instant probe_deadline{};
    int failures = 0;
    Instant next_probe{};
    bool searching = false;

    void start(Instant now) {
        if (!enabled || max <= base) {
            return;
        }
        high = max;
        searching = true;
        next_probe = now;
    }
    std::size_t next_size() const {
        const std::size_t s = (current + high + 1) / 2;
        return std::max(s, current + 1);
    }
};

}  // namespace

const char* event_type_name(EventType t) {
    switch (t) {
        case EventType::kAuthRequest: return "auth_request";
        case EventType::kEstablished: return "established";
        case EventType::kStreamOpened: return "stream_opened";
        case EventType::kStreamHead: return "stream_head";
        case EventType::kStreamReadable: return "stream_readable";
        case EventType::kStreamWritable: return "stream_writable";
        case EventType::kStreamReset: return "stream_reset";
        case EventType::kStreamStopSending: return "stream_stop_sending";
        case EventType::kStreamClosed: return "stream_closed";
        case EventType::kPathResponse: return "path_response";
        case EventType::kConnectionClosed: return "connection_closed";
    }
    return "?";
}

std::string validate(const ConnectionConfig& c) {
    if (c.role == Role::kClient && (c.domain.empty() || c.domain.size() > kMaxDomainLen)) {
        return "client domain must be 1..253 bytes";
    }
    if (c.api_key.size() > kMaxApiKeyLen) {
        return "api key too long";
    }
    if (c.max_meta_size < 64 || c.initial_stream_window < 2 * c.max_meta_size) {
        return "initial_stream_window must be at least twice max_meta_size";
    }
    if (c.max_stream_window < c.initial_stream_window ||
        c.max_connection_window < c.initial_connection_window ||
        c.initial_connection_window < c.initial_stream_window) {
        return "window maxima must not be below the initial windows";
    }
    if (c.mode == Mode::kDatagram &&
        (c.base_packet_size < 1000 || c.max_packet_size < c.base_packet_size ||
         c.max_packet_size > 65000)) {
        return "packet sizes must satisfy 1000 <= base <= max <= 65000";
    }
    if (c.max_record_size < 1024 || c.max_record_size > (1u << 30)) {
        return "max_record_size out of range";
    }
    if (c.max_streams == 0 || c.ack_eliciting_threshold == 0) {
        return "max_streams and ack_eliciting_threshold must be positive";
    }
    if (c.stream_send_buffer < c.max_meta_size) {
        return "stream_send_buffer must hold at least one head";
    }
    return {};
}

// Event slots kept allocated once the queue is empty (~330 bytes each).
constexpr std::size_t kKeptEvents = 256;

struct Connection::Impl {
    ConnectionConfig cfg;
    State state = State::kHandshake;
    Hs hs = Hs::kServerWaiting;
    Instant now_{};
    Instant created{};
    ConnectionStats stats;
    // Pending events: [events_head, events.size()). A vector reused in place rather than a deque:
    // an Event is larger than a deque node, so a deque allocated one node per event.
    std::vector<Event> events;
    std::size_t events_head = 0;

    TransportParams local_params;
    TransportParams peer_params;
    AuthInfo auth_info;

    // Close state.
    WireError close_code = WireError::kNoError;
    std::string close_reason;
    bool close_send_pending = false;
    Instant close_deadline{};
    bool auth_fail_pending = false;
    AuthFailReason auth_fail_reason{};
    std::string auth_fail_message;

    // Handshake frames.
    bool auth_pending = false;
    bool auth_ok_pending = false;

    // Streams.
    std::unordered_map<StreamId, Stream> streams;
    // Map nodes of freed streams, recycled by create_stream (a short request/response stream
    // then allocates no node, no first send block and no receive buffer). Bounded.
    static constexpr std::size_t kSpareStreams = 32;
    std::vector<std::unordered_map<StreamId, Stream>::node_type> spare_streams;
    // find()'s last hit: ACKs and packets mostly name the same stream over and over. Map nodes
    // do not move on insert or rehash; erase and clear reset it.
    StreamId found_id = 0;
    Stream* found = nullptr;
    std::deque<StreamId> send_queue;
    std::deque<StreamId> ctrl_queue;
    std::uint64_t next_local_seq = 0;
    std::uint64_t next_peer_seq = 0;       // all peer seqs below were opened
    std::uint64_t peer_streams_allowed = 0;  // peer may open seqs below this (we advertise)
    std::uint64_t peer_max_streams = 0;    // we may open seqs below this
    bool max_streams_pending = false;
    bool streams_blocked_pending = false;
    std::uint64_t streams_blocked_at = std::numeric_limits<std::uint64_t>::max();

    // Connection flow control.
    std::uint64_t conn_sent = 0;           // sum of send_next
    std::uint64_t conn_send_max = 0;       // peer's MAX_DATA
    std::uint64_t conn_recv_highest = 0;   // sum of recv_highest (and reset final sizes)
    std::uint64_t conn_consumed = 0;
    std::uint64_t conn_recv_max = 0;
    std::uint64_t conn_window = 0;
    std::uint64_t credit_reserved = 0;  // growth of conn_window + unread_cover, in credit_budget
    // Connection credit granted on top of conn_consumed + conn_window for unread bytes beyond
    // half the window (cover_unread); conn_window + unread_cover <= max_connection_window.
    std::uint64_t unread_cover = 0;
    // Growth of all stream windows beyond initial_stream_window, at most half of
    // max_connection_window: what streams that stop reading can hold beyond their initial windows.
    std::uint64_t stream_growth = 0;
    bool conn_has_update = false;
    Instant conn_last_update{};
    bool max_data_pending = false;
    bool data_blocked_pending = false;
    std::uint64_t data_blocked_at = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t send_buffered = 0;
    // Streams refused by the connection-wide send budget; told when space frees up.
    std::deque<StreamId> budget_waiters;
    // Bytes written beyond the peer's stream credit, all streams (Stream::ahead). Capped at half
    // the send budget (ahead_cap()): a stream whose peer does not read cannot fill the budget
    // with bytes it may not send, so streams with credit can always write. Streams refused by
    // the cap wait in ahead_waiters, or for credit (MAX_STREAM_DATA).
    std::uint64_t send_ahead = 0;
    std::deque<StreamId> ahead_waiters;

    // Misc frames.
    bool ping_pending = false;
    std::deque<std::uint64_t> path_responses;  // bounded
    std::deque<std::uint64_t> path_challenges;

    // ---- datagram mode: packet numbers, ACKs, recovery
    std::uint64_t next_pn = 0;
    RangeSet recv_pns;
    std::uint64_t largest_recv_pn = 0;
    bool has_recv = false;
    Instant largest_recv_time{};
    unsigned ack_eliciting_since_ack = 0;
    bool ack_needed = false;
    bool ack_immediate = false;
    bool has_ack_deadline = false;
    Instant ack_deadline{};

    std::deque<SentPacket> sent;  // sent.front().pn == sent_base
    std::uint64_t sent_base = 0;
    bool has_largest_acked = false;
    std::uint64_t largest_acked = 0;
    std::uint64_t bytes_in_flight = 0;
    std::uint64_t ack_eliciting_in_flight = 0;
    Instant last_ack_eliciting_sent{};
    bool has_loss_time = false;
    Instant loss_time{};
    unsigned pto_count = 0;
    unsigned probes_to_send = 0;
    RttEstimator rtt;
    // Reordering tolerance, widened when a packet declared lost is acknowledged after all
    // (spurious loss: the path reorders), in the spirit of RACK (RFC 8985).
    std::uint64_t packet_threshold = kPacketThreshold;
    double time_threshold = kTimeThreshold;
    RangeSet recently_lost;
    std::unique_ptr<CongestionController> cc;
    Pmtud pmtud;
    std::size_t mtu = 0;

    // Pacer: may send when pace_time <= now + pace_early (one quantum below kPacingGranularity,
    // else 0); when blocked it wakes at pace_time, when a whole quantum may go.
    Instant pace_time{};
    Duration pace_early{0};

    // Delivery-rate estimation.
    std::uint64_t delivered = 0;
    Instant delivered_time{};
    Instant first_sent_time{};
    std::uint64_t app_limited_until = 0;

    // Idle and keepalive.
    Instant last_recv_time{};
    Instant last_ack_eliciting_send_time{};
    bool ack_eliciting_since_recv = false;

    // ---- stream mode input
    std::vector<std::uint8_t> inbuf;

    AckFrame scratch_ack;

    // Sent-frame lists are recycled so that sending a packet allocates nothing in steady state.
    std::vector<std::vector<SentRec>> recs_pool;
    static constexpr std::size_t kRecsPoolMax = 4096;

    std::vector<SentRec> take_recs() {
        if (recs_pool.empty()) {
            std::vector<SentRec> v;
            v.reserve(8);
            return v;
        }
        std::vector<SentRec> v = std::move(recs_pool.back());
        recs_pool.pop_back();
        return v;
    }
    void recycle(std::vector<SentRec>& v) {
        v.clear();
        if (recs_pool.size() < kRecsPoolMax && v.capacity() <= 64) {
            recs_pool.push_back(std::move(v));
        } else {
            std::vector<SentRec>().swap(v);
        }
    }

    ~Impl() {
        if (cfg.credit_budget) {
            cfg.credit_budget->leave(credit_reserved);
        }
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    Impl(const ConnectionConfig& c, Instant now)
        : cfg(c), now_(now), created(now), rtt(c.initial_rtt) {
        local_params.idle_timeout_ms =
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           cfg.idle_timeout)
                                           .count());
        local_params.initial_max_data = cfg.initial_connection_window;
        local_params.initial_max_stream_data = cfg.initial_stream_window;
        local_params.initial_max_streams = cfg.max_streams;
        local_params.max_ack_delay_ms = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(cfg.max_ack_delay).count());
        local_params.connection_id = cfg.role == Role::kServer ? cfg.connection_id : 0;
        conn_recv_max = cfg.initial_connection_window;
        conn_window = cfg.initial_connection_window;
        if (cfg.credit_budget) {
            cfg.credit_budget->join();
        }
        peer_streams_allowed = cfg.max_streams;
        mtu = cfg.mode == Mode::kDatagram ? cfg.base_packet_size : cfg.max_record_size;
        cc = make_congestion_controller(cfg.cc, mtu);
        pmtud.enabled = cfg.mode == Mode::kDatagram && cfg.pmtud;
        pmtud.base = cfg.base_packet_size;
        pmtud.max = cfg.max_packet_size;
        pmtud.current = cfg.base_packet_size;
        last_recv_time = now;
        last_ack_eliciting_send_time = now;
        last_ack_eliciting_sent = now;
        pace_time = now;
        delivered_time = now;
        first_sent_time = now;
        if (cfg.role == Role::kClient) {
            hs = Hs::kClientAuthSent;
            auth_pending = true;
        }
    }

    bool datagram() const { return cfg.mode == Mode::kDatagram; }
    bool is_client() const { return cfg.role == Role::kClient; }
    bool closing_or_worse() const { return state >= State::kClosing; }

    // ------------------------------------------------------------------ helpers: ids
    std::uint64_t local_bit() const { return is_client() ? 0 : 1; }
    bool is_local(StreamId id) const { return (id & 1) == local_bit(); }
    static std::uint64_t seq_of(StreamId id) { return id >> 1; }
    StreamId local_id(std::uint64_t seq) const { return (seq << 1) | local_bit(); }
    StreamId peer_id(std::uint64_t seq) const { return (seq << 1) | (local_bit() ^ 1); }

    std::uint64_t buffered() const {
        return send_buffered + (conn_recv_highest - conn_consumed);
    }
    void note_buffered() { stats.max_buffered_bytes = std::max(stats.max_buffered_bytes, buffered()); }

    Duration peer_max_ack_delay() const {
        return std::chrono::milliseconds(peer_params.max_ack_delay_ms);
    }
    Duration pto_base() const { return rtt.pto(peer_max_ack_delay()); }

    Duration effective_idle_timeout() const {
        Duration local = cfg.idle_timeout;
        Duration peer = std::chrono::milliseconds(peer_params.idle_timeout_ms);
        if (state < State::kEstablished || peer.count() == 0) {
            return local;
        }
        if (local.count() == 0) {
            return peer;
        }
        return std::min(local, peer);
    }

    void push_event(Event e) {
        if (events_head > 0 && events_head == events.size()) {
            events.clear();  // all polled: start over, keeping the capacity
            events_head = 0;
        } else if (events_head >= 64 && events_head * 2 >= events.size()) {
            // Polled as fast as pushed but never empty: drop the polled prefix.
            events.erase(events.begin(), events.begin() + static_cast<std::ptrdiff_t>(events_head));
            events_head = 0;
        }
        events.push_back(std::move(e));
    }

    // Keepalive often enough for the smaller of the two idle timeouts. While streams are open
    // the interval shrinks to max(3 PTO, 500 ms): a pure receiver (which sends only ACKs) then
    // still probes a peer that went silent, so a dead peer is noticed quickly (ICMP errors for
    // the probes, or the idle timeout) instead of after a full keepalive period.
    Duration keepalive_interval() const {
        Duration k = cfg.keepalive_interval;
        const Duration idle = effective_idle_timeout();
        if (k.count() > 0 && idle.count() > 0) {
            k = std::min(k, idle / 2);
        }
        if (k.count() > 0 && datagram() && !streams.empty()) {
            k = std::min(k, std::max<Duration>(3 * pto_base(), std::chrono::milliseconds(500)));
        }
        return k;
    }

    // ------------------------------------------------------------------ close
    void close_local(WireError code, std::string_view reason) {
        if (closing_or_worse()) {
            return;
        }
        close_code = code;
        close_reason.assign(reason.substr(0, kMaxReasonLen));
        Event e;
        e.type = EventType::kConnectionClosed;
        e.code = static_cast<std::uint64_t>(code);
        e.reason = close_reason;
        e.by_peer = false;
        push_event(std::move(e));
        state = State::kClosing;
        close_send_pending = true;
        close_deadline = now_ + 3 * pto_base();
        drop_all_streams();
    }

    // Local silent close (idle timeout): nothing is sent.
    void close_silently(WireError code, std::string_view reason) {
        if (state == State::kClosed) {
            return;
        }
        if (!closing_or_worse()) {
            Event e;
            e.type = EventType::kConnectionClosed;
            e.code = static_cast<std::uint64_t>(code);
            e.reason = std::string(reason);
            push_event(std::move(e));
        }
        state = State::kClosed;
        drop_all_streams();
    }

    void enter_draining(std::uint64_t code, std::string_view reason, std::uint64_t auth_fail) {
        if (closing_or_worse()) {
            if (state == State::kClosing) {
                state = State::kDraining;  // no need to keep sending CLOSE
            }
            return;
        }
        Event e;
        e.type = EventType::kConnectionClosed;
        e.code = code;
        e.reason = std::string(reason);
        e.by_peer = true;
        e.auth_fail_reason = auth_fail;
        push_event(std::move(e));
        state = datagram() ? State::kDraining : State::kClosed;
        close_deadline = now_ + 3 * pto_base();
        drop_all_streams();
    }

    void drop_all_streams() {
        found = nullptr;
        streams.clear();
        stream_growth = 0;
        send_queue.clear();
        ctrl_queue.clear();
        send_buffered = 0;
        send_ahead = 0;
        conn_consumed = conn_recv_highest;
        sent.clear();
        sent_base = next_pn;
        bytes_in_flight = 0;
        ack_eliciting_in_flight = 0;
        has_loss_time = false;
    }

    void protocol_error(WireError code, std::string_view reason) { close_local(code, reason); }

    // ------------------------------------------------------------------ streams: creation
    Stream& create_stream(StreamId id, bool local) {
        if (!spare_streams.empty() && !streams.contains(id)) {
            auto node = std::move(spare_streams.back());
            spare_streams.pop_back();
            node.key() = id;
            streams.insert(std::move(node));
        }
        Stream& s = streams[id];
        s.id = id;
        s.local = local;
        s.window = cfg.initial_stream_window;
        s.recv_max = cfg.initial_stream_window;
        s.send_max = state >= State::kEstablished || !is_client() || hs == Hs::kDone
                         ? peer_params.initial_max_stream_data
                         : 0;
        return s;
    }

    Stream* find(StreamId id) {
        if (found != nullptr && found_id == id) {
            return found;
        }
        auto it = streams.find(id);
        if (it == streams.end()) {
            return nullptr;
        }
        found_id = id;
        found = &it->second;
        return found;
    }

    // Returns the stream for a frame from the peer, opening peer streams implicitly.
    // nullptr with `closed` = true means "already closed: ignore"; nullptr otherwise = error set.
    Stream* stream_for_peer_frame(StreamId id, bool& closed) {
        closed = false;
        if (auto* s = find(id)) {
            return s;
        }
        const std::uint64_t seq = seq_of(id);
        if (is_local(id)) {
            if (seq < next_local_seq) {
                closed = true;
                return nullptr;
            }
            protocol_error(WireError::kStreamStateError, "frame for a stream we never opened");
            return nullptr;
        }
        if (seq < next_peer_seq) {
            closed = true;
            return nullptr;
        }
        if (seq >= peer_streams_allowed) {
            protocol_error(WireError::kStreamLimitError, "peer exceeded MAX_STREAMS");
            return nullptr;
        }
        if (!is_client() && state != State::kEstablished) {
            protocol_error(WireError::kProtocolViolation, "stream before authentication");
            return nullptr;
        }
        for (std::uint64_t q = next_peer_seq; q <= seq; ++q) {
            create_stream(peer_id(q), false);
        }
        next_peer_seq = seq + 1;
        return find(id);
    }

    void enqueue_send(Stream& s) {
        if (!s.in_send_queue && sendable(s)) {
            s.in_send_queue = true;
            send_queue.push_back(s.id);
        }
    }
    void enqueue_ctrl(Stream& s) {
        if (!s.in_ctrl_queue) {
            s.in_ctrl_queue = true;
            ctrl_queue.push_back(s.id);
        }
    }

    bool sendable(const Stream& s) const {
        if (s.reset) {
            return false;
        }
        if (!s.lost.empty()) {
            return true;
        }
        const std::uint64_t end = s.sbuf.end();
        if (s.send_next < end && s.send_next < s.send_max && conn_sent < conn_send_max) {
            return true;
        }
        return s.fin_pending && s.send_next == end;
    }

    void maybe_free(Stream& s) {
        if (!s.send_done() || !s.recv_done()) {
            return;
        }
        const StreamId id = s.id;
        const bool local = s.local;
        send_buffered -= s.sbuf.size();
        send_ahead -= s.ahead;
        stream_growth -= s.window - cfg.initial_stream_window;
        // Unread bytes no longer count against the connection window.
        const std::uint64_t unconsumed = s.recv_highest - s.rbuf.read_offset();
        if (!(s.peer_reset || s.stopped)) {
            conn_consumed += unconsumed;
        }
        const bool known_to_app = local || s.meta_parsed;
        found = nullptr;
        auto node = streams.extract(id);
        if (spare_streams.size() < kSpareStreams) {
            node.mapped().recycle();
            spare_streams.push_back(std::move(node));
        }
        if (known_to_app) {
            // A peer stream reset before its head arrived was never announced; stay silent.
            Event e;
            e.type = EventType::kStreamClosed;
            e.stream = id;
            push_event(std::move(e));
        }
        if (!local) {
            ++peer_streams_allowed;
            max_streams_pending = true;
        }
    }

    // ------------------------------------------------------------------ flow control (recv)
    void after_consume(Stream& s, std::uint64_t n) {
        conn_consumed += n;
        // Stream window: update when less than half remains.
        const std::uint64_t consumed = s.rbuf.read_offset();
        if (!s.final_known && !s.stopped && !s.peer_reset &&
            (s.recv_max - consumed) * 2 < s.window) {
            if (s.has_window_update && now_ - s.last_window_update < 2 * rtt.smoothed() &&
                s.window < cfg.max_stream_window) {
                // Stream windows grow out of one pool of half the connection maximum: a reader
                // that is fast at first and then stops keeps its grown window as credit, and
                // enough of those must not be able to take the whole connection (§7).
                const std::uint64_t more = std::min(s.window * 2, cfg.max_stream_window) - s.window;
                if (stream_growth + more <= cfg.max_connection_window / 2) {
                    stream_growth += more;
                    s.window += more;
                }
            }
            s.has_window_update = true;
            s.last_window_update = now_;
            s.recv_max = consumed + s.window;
            s.max_data_pending = true;
            enqueue_ctrl(s);
        }
        update_conn_window();
    }

    // Unread bytes may hold at most half of the connection window (docs/protocol.md §7): for
    // what is buffered beyond that the limit is raised (the cover), so streams whose readers
    // stall cannot take the credit that streams being read need. The cover keeps window + cover
    // within max_connection_window and is reserved in the shared budget like window growth; it
    // moves in steps of a quarter of the initial stream window so that a busy connection does
    // not touch the budget on every frame. A refused reservation keeps the cover as it is.
    void cover_unread() {
        const std::uint64_t unread = conn_recv_highest - conn_consumed;
        const std::uint64_t held = conn_window / 2;
        const std::uint64_t room =
            cfg.max_connection_window > conn_window ? cfg.max_connection_window - conn_window : 0;
        const std::uint64_t step = std::max<std::uint64_t>(cfg.initial_stream_window / 4, 1);
        const std::uint64_t want = std::min(unread > held ? unread - held : 0, room);
        std::uint64_t target = unread_cover;
        if (want > unread_cover || unread_cover > room) {
            target = std::min(want + step, room);
        } else if (want == 0) {
            target = 0;  // unread bytes fit in half the window again
        } else if (unread_cover > want + 2 * step) {
            target = want + step;
        }
        CreditBudget* budget = cfg.credit_budget.get();
        if (target > unread_cover) {
            if (budget != nullptr && !budget->try_grow(credit_reserved, target - unread_cover)) {
                return;
            }
            if (budget != nullptr) {
                credit_reserved += target - unread_cover;
            }
        } else if (target < unread_cover && budget != nullptr) {
            budget->release(unread_cover - target);
            credit_reserved -= unread_cover - target;
        }
        unread_cover = target;
    }

    // Consumed bytes plus the cover: the base the connection limit is computed from.
    std::uint64_t conn_credited() const { return conn_consumed + unread_cover; }

    // Shrinks the connection window when unread bytes are so many that the cover could not keep
    // them within half of it (window + cover <= max_connection_window): from
    // unread - cover <= window / 2 follows window <= 2 * (max - unread). A smaller window gives the
    // cover room; what the peer was already granted stays granted.
    void fit_window_to_unread() {
        const std::uint64_t unread = conn_recv_highest - conn_consumed;
        const std::uint64_t max = cfg.max_connection_window;
        if (unread * 2 <= conn_window || unread + conn_window / 2 <= max) {
            return;
        }
        const std::uint64_t w = std::max(cfg.initial_connection_window,
                                         unread < max ? 2 * (max - unread) : 0);
        if (w >= conn_window) {
            return;
        }
        if (CreditBudget* budget = cfg.credit_budget.get()) {
            budget->release(conn_window - w);
            credit_reserved -= conn_window - w;
        }
        conn_window = w;
    }

    void update_conn_window() {
        fit_window_to_unread();
        cover_unread();
        const std::uint64_t credited = conn_credited();
        const std::uint64_t unused = conn_recv_max > credited ? conn_recv_max - credited : 0;
        // When the cover is at its bound (fit_window_to_unread leaves unread bytes exactly half
        // the window; at the initial window they may hold more), the peer runs out of credit
        // when `unused` reaches half the window, not below it: then top up whenever the peer's
        // free credit is below half. And never leave a peer without credit that a grant gives.
        const std::uint64_t unread = conn_recv_highest - conn_consumed;
        const std::uint64_t charged = unread - std::min(unread, unread_cover);
        const std::uint64_t peer_free = conn_recv_max - conn_recv_highest;
        if (unused * 2 < conn_window ||
            ((charged * 2 >= conn_window || peer_free == 0) && peer_free * 2 < conn_window &&
             unused < conn_window)) {
            CreditBudget* budget = cfg.credit_budget.get();
            if (budget != nullptr && budget->should_shrink(credit_reserved)) {
                // Shared budget under pressure and this connection holds more than its share:
                // give half of its grown window back.
                const std::uint64_t w =
                    std::max(conn_window / 2, cfg.initial_connection_window);
                budget->release(conn_window - w);
                credit_reserved -= conn_window - w;
                conn_window = w;
            } else if (conn_has_update && now_ - conn_last_update < 2 * rtt.smoothed() &&
                       conn_window < cfg.max_connection_window && unread * 2 <= conn_window) {
                // Auto-tuning; not while unread bytes hold half the window (readers stalled,
                // not a window too small for the path).
                const std::uint64_t w = std::min(conn_window * 2, cfg.max_connection_window);
                if (budget == nullptr || budget->try_grow(credit_reserved, w - conn_window)) {
                    if (budget != nullptr) {
                        credit_reserved += w - conn_window;
                    }
                    conn_window = w;
                }
            }
            if (conn_window + unread_cover > cfg.max_connection_window) {
                cover_unread();  // the window grew into the cover's room
            }
            conn_has_update = true;
            conn_last_update = now_;
            conn_recv_max = std::max(conn_recv_max, conn_credited() + conn_window);
            max_data_pending = true;
        }
    }

    // ------------------------------------------------------------------ receiving frames
    void try_parse_meta(Stream& s) {
        if (s.meta_parsed || s.stopped || s.peer_reset) {
            return;
        }
        StreamMeta m;
        std::size_t consumed = 0;
        switch (decode_meta(s.rbuf.peek(), cfg.max_meta_size, m, consumed)) {
            case MetaParse::kNeedMore:
                if (s.final_known && s.rbuf.read_offset() + s.rbuf.readable() == s.final_size) {
                    protocol_error(WireError::kProtocolViolation, "stream finished before its head");
                }
                return;
            case MetaParse::kMalformed:
                protocol_error(WireError::kFrameEncodingError, "malformed stream head");
                return;
            case MetaParse::kTooLarge:
                // The peer's head is over our limit: refuse this stream only.
                local_stop_sending(s, static_cast<std::uint64_t>(WireError::kMetaTooLarge));
                local_reset(s, static_cast<std::uint64_t>(WireError::kMetaTooLarge));
                if (!s.local) {
                    // The application never saw it, so it cannot close it.
                    maybe_free(s);
                }
                return;
            case MetaParse::kOk: break;
        }
        s.meta_parsed = true;
        s.rbuf.consume(consumed);
        Event e;
        e.type = s.local ? EventType::kStreamHead : EventType::kStreamOpened;
        e.stream = s.id;
        e.meta = std::move(m);
        push_event(std::move(e));
        after_consume(s, consumed);
    }

    void signal_readable(Stream& s) {
        if (!s.meta_parsed || s.stopped || s.readable_outstanding || s.fin_read) {
            return;
        }
        const bool fin_ready = s.final_known &&
                               s.rbuf.read_offset() + s.rbuf.readable() == s.final_size;
        if (s.rbuf.readable() > 0 || fin_ready) {
            s.readable_outstanding = true;
            Event e;
            e.type = EventType::kStreamReadable;
            e.stream = s.id;
            push_event(std::move(e));
        }
    }

    void on_stream_frame(const StreamFrame& f) {
        bool closed = false;
        Stream* s = stream_for_peer_frame(f.stream_id, closed);
        if (!s) {
            return;
        }
        const std::uint64_t end = f.offset + f.data.size();
        if (s->final_known && (end > s->final_size || (f.fin && end != s->final_size))) {
            protocol_error(WireError::kFinalSizeError, "final size changed");
            return;
        }
        if (f.fin && end < s->recv_highest) {
            protocol_error(WireError::kFinalSizeError, "final size below received data");
            return;
        }
        if (end > s->recv_max) {
            protocol_error(WireError::kFlowControlError, "stream flow control exceeded");
            return;
        }
        const std::uint64_t delta = end > s->recv_highest ? end - s->recv_highest : 0;
        if (delta > 0) {
            conn_recv_highest += delta;
            s->recv_highest = end;
            if (conn_recv_highest > conn_recv_max) {
                protocol_error(WireError::kFlowControlError, "connection flow control exceeded");
                return;
            }
        }
        if (f.fin) {
            s->final_known = true;
            s->final_size = end;
        }
        if (s->peer_reset || s->stopped) {
            // Data for a direction we abandoned: counted for flow control, then dropped, and
            // its connection credit returned at once so the window does not leak.
            if (delta > 0) {
                conn_consumed += delta;
                update_conn_window();
            }
            maybe_free(*s);
            return;
        }
        stats.stream_bytes_received += s->rbuf.write(f.offset, f.data);
        note_buffered();
        if (delta > 0 && (conn_recv_highest - conn_consumed) * 2 > conn_window) {
            update_conn_window();  // unread bytes beyond half the window: cover them
        }
        const bool had_meta = s->meta_parsed;
        try_parse_meta(*s);
        if (closing_or_worse()) {
            return;
        }
        if (had_meta || s->meta_parsed) {
            // `s` may have been freed by try_parse_meta (oversized head); look it up again.
            if (Stream* again = find(f.stream_id)) {
                signal_readable(*again);
            }
        }
    }

    void on_reset_stream(const ResetStreamFrame& f) {
        bool closed = false;
        Stream* s = stream_for_peer_frame(f.stream_id, closed);
        if (!s) {
            return;
        }
        if ((s->final_known && f.final_size != s->final_size) || f.final_size < s->recv_highest) {
            protocol_error(WireError::kFinalSizeError, "reset final size mismatch");
            return;
        }
        if (f.final_size > s->recv_max) {
            protocol_error(WireError::kFlowControlError, "reset beyond flow control");
            return;
        }
        if (s->peer_reset) {
            return;
        }
        const std::uint64_t delta = f.final_size - s->recv_highest;
        conn_recv_highest += delta;
        s->recv_highest = f.final_size;
        if (conn_recv_highest > conn_recv_max) {
            protocol_error(WireError::kFlowControlError, "connection flow control exceeded");
            return;
        }
        s->final_known = true;
        s->final_size = f.final_size;
        s->peer_reset = true;
        // Everything unread is discarded; return its credit.
        const std::uint64_t unread = f.final_size - s->rbuf.read_offset();
        if (!s->stopped) {
            s->rbuf.discard(f.final_size);
            conn_consumed += unread;
        } else {
            // Stopped earlier: what was buffered then is already credited; credit the rest.
            conn_consumed += delta;
        }
        update_conn_window();
        if (!s->local && !s->meta_parsed && !s->meta_written) {
            // The application never saw this stream and cannot answer it: abandon our
            // direction too, or it would stay open until the connection ends.
            local_reset(*s, f.error_code);
        }
        if (s->stopped || s->fin_read) {
            s->reset_notified = true;
        } else {
            // Only streams the application knows about get an event.
            if (s->meta_parsed || s->local) {
                Event e;
                e.type = EventType::kStreamReset;
                e.stream = s->id;
                e.code = f.error_code;
                push_event(std::move(e));
            }
            s->reset_notified = true;
        }
        maybe_free(*s);
    }

    void on_stop_sending(const StopSendingFrame& f) {
        bool closed = false;
        Stream* s = stream_for_peer_frame(f.stream_id, closed);
        if (!s) {
            return;
        }
        if (!s->reset && !s->send_done()) {
            if (s->meta_parsed || s->local) {
                Event e;
                e.type = EventType::kStreamStopSending;
                e.stream = s->id;
                e.code = f.error_code;
                push_event(std::move(e));
            }
            local_reset(*s, f.error_code);
        }
        maybe_free(*s);
    }

    void on_max_stream_data(const MaxStreamDataFrame& f) {
        bool closed = false;
        Stream* s = stream_for_peer_frame(f.stream_id, closed);
        if (!s) {
            return;
        }
        if (f.maximum > s->send_max) {
            s->send_max = f.maximum;
            recount_ahead(*s);
            if (s->want_writable) {
                // Refused for want of credit (the cap on bytes beyond credit): now it has some.
                s->want_writable = false;
                Event e;
                e.type = EventType::kStreamWritable;
                e.stream = s->id;
                push_event(std::move(e));
            }
            enqueue_send(*s);
        }
    }

    void on_max_data(std::uint64_t max) {
        if (max > conn_send_max) {
            const bool was_blocked = conn_sent >= conn_send_max;
            conn_send_max = max;
            if (was_blocked) {
                for (auto& [id, s] : streams) {
                    enqueue_send(s);
                }
            }
        }
    }

    void on_auth(const AuthFrame& f) {
        if (is_client()) {
            protocol_error(WireError::kProtocolViolation, "AUTH sent to a client");
            return;
        }
        if (hs != Hs::kServerWaiting) {
            return;  // retransmission
        }
        peer_params = f.params;
        auth_info.version = f.version;
        auth_info.domain.assign(f.domain);
        auth_info.api_key.assign(f.api_key);
        auth_info.client_version.assign(f.client_version);
        hs = Hs::kServerDeciding;
        if (f.version != kProtocolVersion) {
            reject(AuthFailReason::kVersion,
                   "unsupported protocol version " + std::to_string(f.version) +
                       "; this server speaks version " + std::to_string(kProtocolVersion));
            return;
        }
        Event e;
        e.type = EventType::kAuthRequest;
        e.auth = auth_info;
        push_event(std::move(e));
    }

    void apply_peer_params() {
        conn_send_max = std::max(conn_send_max, peer_params.initial_max_data);
        peer_max_streams = std::max(peer_max_streams, peer_params.initial_max_streams);
        for (auto& [id, s] : streams) {
            s.send_max = std::max(s.send_max, peer_params.initial_max_stream_data);
            recount_ahead(s);
            enqueue_send(s);
        }
    }

    void establish() {
        state = State::kEstablished;
        hs = Hs::kDone;
        apply_peer_params();
        pmtud.start(now_);
        Event e;
        e.type = EventType::kEstablished;
        push_event(std::move(e));
    }

    void reject(AuthFailReason reason, std::string message) {
        auth_fail_pending = true;
        auth_fail_reason = reason;
        auth_fail_message = std::move(message);
        close_local(WireError::kAuthFailed, auth_fail_message);
    }

    // Processes one frame; returns false if the connection was closed because of it.
    bool process_frame(const Frame& fr) {
        switch (fr.index()) {
            case 0:  // padding
            case 1:  // ping
                return true;
            case 2:
                if (!datagram()) {
                    protocol_error(WireError::kProtocolViolation, "ACK in stream mode");
                    return false;
                }
                on_ack(std::get<AckFrame>(fr));
                break;
            case 3: on_reset_stream(std::get<ResetStreamFrame>(fr)); break;
            case 4: on_stop_sending(std::get<StopSendingFrame>(fr)); break;
            case 5: on_stream_frame(std::get<StreamFrame>(fr)); break;
            case 6: on_max_data(std::get<MaxDataFrame>(fr).maximum); break;
            case 7: on_max_stream_data(std::get<MaxStreamDataFrame>(fr)); break;
            case 8: {
                const auto m = std::get<MaxStreamsFrame>(fr).maximum;
                if (m > (1ULL << 60)) {
                    protocol_error(WireError::kFrameEncodingError, "MAX_STREAMS too large");
                    return false;
                }
                peer_max_streams = std::max(peer_max_streams, m);
                break;
            }
            case 9:
            case 10:
            case 11: break;  // *_BLOCKED: informational
            case 12:
                if (path_responses.size() < 4) {
                    path_responses.push_back(std::get<PathChallengeFrame>(fr).data);
                }
                break;
            case 13: {
                Event e;
                e.type = EventType::kPathResponse;
                e.code = std::get<PathResponseFrame>(fr).data;
                push_event(std::move(e));
                break;
            }
            case 14: {
                const auto& c = std::get<ConnectionCloseFrame>(fr);
                enter_draining(c.error_code, c.reason, 0);
                return false;
            }
            case 15: on_auth(std::get<AuthFrame>(fr)); break;
            case 16:
                if (!is_client()) {
                    protocol_error(WireError::kProtocolViolation, "AUTH_OK sent to a server");
                    return false;
                }
                if (hs == Hs::kClientAuthSent) {
                    peer_params = std::get<AuthOkFrame>(fr).params;
                    auth_pending = false;
                    establish();
                }
                break;
            case 17: {
                if (!is_client()) {
                    protocol_error(WireError::kProtocolViolation, "AUTH_FAIL sent to a server");
                    return false;
                }
                const auto& f = std::get<AuthFailFrame>(fr);
                enter_draining(static_cast<std::uint64_t>(WireError::kAuthFailed), f.message,
                               f.reason_code);
                return false;
            }
            default: break;
        }
        return !closing_or_worse();
    }

    // ------------------------------------------------------------------ datagram receive
    void on_datagram(std::span<const std::uint8_t> d) {
        if (state == State::kClosed) {
            return;
        }
        stats.bytes_received += d.size();
        if (state == State::kDraining) {
            return;
        }
        if (state == State::kClosing) {
            close_send_pending = true;  // remind the peer
            return;
        }
        Reader r(d);
        std::uint8_t flags = 0;
        std::uint64_t pn = 0;
        if (!r.u8(flags) || (flags & 0xc0) != kPacketFlags || !r.varint(pn) || r.empty()) {
            ++stats.dropped_packets;
            protocol_error(WireError::kFrameEncodingError, "malformed packet header");
            return;
        }
        if (recv_pns.contains(pn) ||
            (recv_pns.count() >= kMaxRecvRangesTracked && pn < recv_pns.front().lo)) {
            ++stats.dropped_packets;  // duplicate
            return;
        }
        ++stats.packets_received;
        last_recv_time = now_;
        ack_eliciting_since_recv = false;
        bool ack_eliciting = false;
        Frame fr = std::move(scratch_ack);
        while (!r.empty()) {
            if (!decode_frame(r, fr)) {
                protocol_error(WireError::kFrameEncodingError, "malformed frame");
                return;
            }
            ack_eliciting = ack_eliciting || is_ack_eliciting(fr);
            if (!process_frame(fr)) {
                return;
            }
        }
        if (std::holds_alternative<AckFrame>(fr)) {
            scratch_ack = std::move(std::get<AckFrame>(fr));
        }
        // Record for acknowledgement.
        const bool out_of_order = has_recv && pn != largest_recv_pn + 1;
        recv_pns.add(pn, pn + 1);
        recv_pns.keep_highest(kMaxRecvRangesTracked);
        if (!has_recv || pn > largest_recv_pn) {
            largest_recv_pn = pn;
            largest_recv_time = now_;
            has_recv = true;
        }
        ack_needed = true;
        if (ack_eliciting) {
            ++ack_eliciting_since_ack;
            if (ack_eliciting_since_ack >= cfg.ack_eliciting_threshold || out_of_order) {
                ack_immediate = true;
            } else if (!has_ack_deadline) {
                has_ack_deadline = true;
                ack_deadline = now_ + cfg.max_ack_delay;
            }
        }
    }

    // ------------------------------------------------------------------ stream-mode receive
    void on_stream_bytes(std::span<const std::uint8_t> b) {
        if (state == State::kClosed || state == State::kDraining) {
            return;
        }
        stats.bytes_received += b.size();
        if (state == State::kClosing) {
            return;
        }
        last_recv_time = now_;
        // Whole records are parsed straight from the input; only a record split across reads
        // is assembled in `inbuf` (with no more input bytes than it needs).
        while (!inbuf.empty() && !b.empty()) {
            Reader lr{std::span<const std::uint8_t>(inbuf)};
            std::uint64_t len = 0;
            if (!lr.varint(len)) {
                inbuf.push_back(b[0]);  // the length prefix itself is split (at most 8 bytes)
                b = b.subspan(1);
                continue;
            }
            if (len == 0 || len > cfg.max_record_size) {
                protocol_error(WireError::kFrameEncodingError, "bad record length");
                return;
            }
            const std::size_t need = lr.position() + static_cast<std::size_t>(len) - inbuf.size();
            const std::size_t take = std::min(need, b.size());
            inbuf.insert(inbuf.end(), b.begin(), b.begin() + static_cast<std::ptrdiff_t>(take));
            b = b.subspan(take);
            if (take == need) {
                std::size_t used = 0;
                if (!process_records(inbuf, used)) {
                    inbuf.clear();
                    return;
                }
                inbuf.clear();
            }
        }
        if (!inbuf.empty()) {
            return;  // still waiting for the rest of a record
        }
        std::size_t used = 0;
        if (!process_records(b, used)) {
            return;
        }
        inbuf.assign(b.begin() + static_cast<std::ptrdiff_t>(used), b.end());
    }

    // Processes the whole records at the start of `in`; `used` = their bytes. False once the
    // connection is closing (a protocol error, or a frame that closed it).
    bool process_records(std::span<const std::uint8_t> in, std::size_t& used) {
        Frame fr;
        while (!closing_or_worse()) {
            Reader lr(in.subspan(used));
            std::uint64_t len = 0;
            if (!lr.varint(len)) {
                break;  // need more
            }
            if (len == 0 || len > cfg.max_record_size) {
                protocol_error(WireError::kFrameEncodingError, "bad record length");
                return false;
            }
            if (lr.remaining() < len) {
                break;
            }
            std::span<const std::uint8_t> body;
            lr.bytes(static_cast<std::size_t>(len), body);
            ++stats.packets_received;
            Reader r(body);
            while (!r.empty()) {
                if (!decode_frame(r, fr)) {
                    protocol_error(WireError::kFrameEncodingError, "malformed frame");
                    return false;
                }
                if (!process_frame(fr)) {
                    return false;
                }
            }
            used += lr.position();
        }
        if (closing_or_worse()) {
            inbuf.clear();
            return false;
        }
        return true;
    }

    // ------------------------------------------------------------------ ACK processing
    SentPacket* sent_at(std::uint64_t pn) {
        if (pn < sent_base || pn >= sent_base + sent.size()) {
            return nullptr;
        }
        return &sent[static_cast<std::size_t>(pn - sent_base)];
    }

    void pop_done() {
        while (!sent.empty() && sent.front().done) {
            recycle(sent.front().recs);
            sent.pop_front();
            ++sent_base;
        }
    }

    void on_rec_acked(const SentRec& rec) {
        switch (rec.kind) {
            case RecKind::kStream: {
                Stream* s = find(rec.id);
                if (!s || s->reset) {
                    return;
                }
                stream_range_acked(*s, rec.offset, rec.len, rec.fin);
                break;
            }
            case RecKind::kReset: {
                if (Stream* s = find(rec.id)) {
                    s->reset_acked = true;
                    maybe_free(*s);
                }
                break;
            }
            default: break;
        }
    }

    void stream_range_acked(Stream& s, std::uint64_t off, std::uint64_t len, bool fin) {
        if (len > 0) {
            s.acked.add(off, off + len);
            s.lost.remove(off, off + len);
        }
        if (fin) {
            s.fin_acked = true;
            s.fin_pending = false;
        }
        if (!s.acked.empty() && s.acked.front().lo <= s.sbuf.base()) {
            const std::uint64_t upto = s.acked.front().hi;
            const std::uint64_t before = s.sbuf.size();
            s.sbuf.release(upto);
            send_buffered -= before - s.sbuf.size();
            s.acked.pop_front();
            if (s.want_writable) {
                s.want_writable = false;
                Event e;
                e.type = EventType::kStreamWritable;
                e.stream = s.id;
                push_event(std::move(e));
            }
            notify_budget_waiters();
        }
        maybe_free(s);
    }

    std::uint64_t ahead_cap() const { return cfg.connection_send_buffer / 2; }

    // Stream::ahead and send_ahead after s.sbuf.end(), s.send_max or s.reset changed.
    void recount_ahead(Stream& s) {
        const std::uint64_t a =
            !s.reset && s.sbuf.end() > s.send_max ? s.sbuf.end() - s.send_max : 0;
        const bool less = a < s.ahead;
        send_ahead = send_ahead - s.ahead + a;
        s.ahead = a;
        // Wake the waiters once a quarter of the cap is free again.
        if (less && !ahead_waiters.empty() && send_ahead * 4 <= ahead_cap() * 3) {
            for (const StreamId id : ahead_waiters) {
                if (Stream* w = find(id)) {
                    w->in_ahead_waiters = false;
                }
            }
            wake_writers(ahead_waiters);
        }
    }

    void notify_budget_waiters() {
        // Wake waiters once a quarter of the budget is free again (hysteresis, not per byte).
        if (budget_waiters.empty() || send_buffered * 4 > cfg.connection_send_buffer * 3) {
            return;
        }
        wake_writers(budget_waiters);
    }

    void wake_writers(std::deque<StreamId>& waiters) {
        while (!waiters.empty()) {
            const StreamId id = waiters.front();
            waiters.pop_front();
            Stream* w = find(id);
            if (w && w->want_writable) {
                w->want_writable = false;
                Event e;
                e.type = EventType::kStreamWritable;
                e.stream = id;
                push_event(std::move(e));
            }
        }
    }

    void on_rec_lost(const SentRec& rec) {
        switch (rec.kind) {
            case RecKind::kStream: {
                Stream* s = find(rec.id);
                if (!s || s->reset) {
                    return;
                }
                if (rec.len > 0) {
                    const std::uint64_t lo = std::max(rec.offset, s->sbuf.base());
                    const std::uint64_t hi = rec.offset + rec.len;
                    if (lo < hi) {
                        s->lost.add(lo, hi);
                        // Subtract ranges acknowledged meanwhile.
                        for (const auto& a : s->acked.ranges()) {
                            if (a.lo >= hi) {
                                break;
                            }
                            s->lost.remove(a.lo, a.hi);
                        }
                    }
                }
                if (rec.fin && !s->fin_acked) {
                    s->fin_pending = true;
                }
                enqueue_send(*s);
                break;
            }
            case RecKind::kMaxData: max_data_pending = true; break;
            case RecKind::kMaxStreams: max_streams_pending = true; break;
            case RecKind::kMaxStreamData:
                if (Stream* s = find(rec.id); s && !s->final_known && !s->stopped) {
                    s->max_data_pending = true;
                    enqueue_ctrl(*s);
                }
                break;
            case RecKind::kReset:
                if (Stream* s = find(rec.id); s && !s->reset_acked) {
                    s->reset_pending = true;
                    enqueue_ctrl(*s);
                }
                break;
            case RecKind::kStopSending:
                if (Stream* s = find(rec.id); s && !s->recv_done()) {
                    s->stop_pending = true;
                    enqueue_ctrl(*s);
                }
                break;
            case RecKind::kAuth:
                if (hs == Hs::kClientAuthSent) {
                    auth_pending = true;
                }
                break;
            case RecKind::kAuthOk: auth_ok_pending = true; break;
            case RecKind::kOther: break;
        }
    }

    void on_ack(const AckFrame& f) {
        if (f.ranges.empty()) {
            return;
        }
        const std::uint64_t largest = f.ranges.front().largest;
        if (largest >= next_pn) {
            protocol_error(WireError::kProtocolViolation, "ACK of a packet never sent");
            return;
        }
        bool new_largest = !has_largest_acked || largest > largest_acked;
        if (new_largest) {
            largest_acked = largest;
            has_largest_acked = true;
        }
        AckEvent ev;
        ev.now = now_;
        bool any_newly_acked = false;
        bool rtt_sample_from_largest = false;
        Instant largest_newly_acked_time{};
        std::uint64_t largest_newly_acked = 0;
        bool largest_newly_ack_eliciting = false;
        std::uint64_t rs_prior_delivered = 0;
        Instant rs_prior_time{};
        Duration rs_send_elapsed{0}, rs_ack_elapsed{0};
        bool rs_app_limited = false;
        bool rs_valid = false;

        detect_spurious_losses(f);
        for (const auto& rg : f.ranges) {
            // Clip to what we still track; the peer cannot make us iterate beyond it.
            if (rg.largest < sent_base) {
                continue;
            }
            const std::uint64_t lo = std::max(rg.smallest, sent_base);
            const std::uint64_t hi = std::min(rg.largest, sent_base + sent.size() - 1);
            for (std::uint64_t pn = lo; pn <= hi && pn >= lo; ++pn) {
                SentPacket* p = sent_at(pn);
                if (!p || p->done) {
                    continue;
                }
                p->done = true;
                p->acked = true;
                any_newly_acked = true;
                if (!largest_newly_ack_eliciting || pn > largest_newly_acked) {
                    if (pn >= largest_newly_acked) {
                        largest_newly_acked = pn;
                        largest_newly_acked_time = p->time;
                        largest_newly_ack_eliciting = p->ack_eliciting;
                        rtt_sample_from_largest = pn == largest;
                    }
                }
                if (p->mtu_probe) {
                    on_probe_acked(*p);
                }
                if (p->in_flight) {
                    bytes_in_flight -= p->size;
                    ev.acked_bytes += p->size;
                    delivered += p->size;
                    delivered_time = now_;
                    if (!rs_valid || p->delivered >= rs_prior_delivered) {
                        rs_valid = true;
                        rs_prior_delivered = p->delivered;
                        rs_prior_time = p->delivered_time;
                        rs_app_limited = p->app_limited;
                        rs_send_elapsed = p->time - p->first_sent_time;
                        rs_ack_elapsed = delivered_time - p->delivered_time;
                        first_sent_time = p->time;
                    }
                }
                if (p->ack_eliciting && !p->mtu_probe) {
                    --ack_eliciting_in_flight;
                }
                for (const auto& rec : p->recs) {
                    on_rec_acked(rec);
                }
                recycle(p->recs);
                if (closing_or_worse()) {
                    return;
                }
            }
        }
        if (!any_newly_acked) {
            return;
        }
        // RTT sample: only when the largest acknowledged is newly acked and ack-eliciting.
        if (rtt_sample_from_largest && largest_newly_ack_eliciting) {
            Duration ack_delay = std::chrono::microseconds(
                static_cast<std::int64_t>(std::min<std::uint64_t>(f.ack_delay_us, 1ULL << 40)));
            if (state == State::kEstablished) {
                ack_delay = std::min(ack_delay, peer_max_ack_delay());
            }
            const Duration latest = now_ - largest_newly_acked_time;
            rtt.update(latest, ack_delay);
            ev.has_rtt_sample = true;
            ev.latest_rtt = latest;
        }
        if (app_limited_until > 0 && delivered > app_limited_until) {
            app_limited_until = 0;
        }
        if (rs_valid) {
            const Duration interval = std::max(rs_send_elapsed, rs_ack_elapsed);
            ev.rate.prior_delivered = rs_prior_delivered;
            ev.rate.is_app_limited = rs_app_limited;
            if (interval.count() > 0 && interval >= rtt.min() / 2) {
                ev.rate.delivery_rate = static_cast<double>(delivered - rs_prior_delivered) /
                                        core::to_seconds(interval);
            }
        }
        (void)rs_prior_time;
        ev.largest_acked_sent_time = largest_newly_acked_time;
        ev.total_delivered = delivered;
        pto_count = 0;
        detect_losses();
        if (closing_or_worse()) {
            return;
        }
        ev.bytes_in_flight = bytes_in_flight;
        if (ev.acked_bytes > 0) {
            cc->on_acked(ev, rtt);
        }
        pop_done();
    }

    void detect_spurious_losses(const AckFrame& f) {
        if (recently_lost.empty()) {
            return;
        }
        bool spurious = false;
        for (const auto& rg : f.ranges) {
            if (rg.largest < recently_lost.front().lo) {
                break;
            }
            for (const auto& l : recently_lost.ranges()) {
                if (l.lo <= rg.largest && rg.smallest < l.hi) {
                    spurious = true;
                    break;
                }
            }
            if (spurious) {
                break;
            }
        }
        if (!spurious) {
            return;
        }
        ++stats.spurious_losses;
        recently_lost.clear();
        packet_threshold = std::min(packet_threshold * 2, kMaxPacketThreshold);
        time_threshold = std::min(time_threshold + 0.25, kMaxTimeThreshold);
    }

    void detect_losses() {
        has_loss_time = false;
        if (!has_largest_acked) {
            return;
        }
        const Duration loss_delay = std::max(
            kGranularity,
            Duration(static_cast<std::int64_t>(
                time_threshold *
                static_cast<double>(std::max(rtt.latest(), rtt.smoothed()).count()))));
        const Instant lost_send_time = now_ - loss_delay;
        LossEvent le;
        le.now = now_;
        bool any_lost = false;
        // Persistent congestion: a run of lost ack-eliciting packets spanning a long time.
        bool run_active = false;
        Instant run_start{};
        Duration longest_run{0};
        const std::uint64_t limit = std::min(largest_acked, sent_base + sent.size() - 1);
        for (std::uint64_t pn = sent_base; pn <= limit && !sent.empty(); ++pn) {
            SentPacket* p = sent_at(pn);
            if (!p) {
                break;
            }
            if (p->done) {
                if (p->acked) {
                    run_active = false;
                }
                continue;
            }
            if (!p->ack_eliciting) {
                p->done = true;
                continue;
            }
            if (p->time <= lost_send_time || largest_acked >= pn + packet_threshold) {
                p->done = true;
                ++stats.packets_lost;
                recently_lost.add(pn, pn + 1);
                recently_lost.keep_highest(kRecentlyLostRanges);
                if (p->mtu_probe) {
                    on_probe_lost(*p);
                } else {
                    --ack_eliciting_in_flight;
                    if (!run_active) {
                        run_active = true;
                        run_start = p->time;
                    }
                    longest_run = std::max(longest_run, p->time - run_start);
                }
                if (p->in_flight) {
                    bytes_in_flight -= p->size;
                    le.lost_bytes += p->size;
                    le.largest_lost_sent_time = std::max(le.largest_lost_sent_time, p->time);
                    any_lost = true;
                }
                for (const auto& rec : p->recs) {
                    on_rec_lost(rec);
                }
                recycle(p->recs);
            } else {
                const Instant t = p->time + loss_delay;
                if (!has_loss_time || t < loss_time) {
                    loss_time = t;
                    has_loss_time = true;
                }
            }
        }
        if (any_lost) {
            le.bytes_in_flight = bytes_in_flight;
            le.persistent_congestion =
                rtt.has_sample() && longest_run > kPersistentCongestionThreshold * pto_base();
            cc->on_lost(le, rtt);
            if (le.persistent_congestion) {
                on_black_hole_suspected();
            }
        }
        pop_done();
    }

    // ------------------------------------------------------------------ PMTUD
    void on_probe_acked(const SentPacket& p) {
        if (!pmtud.probe_outstanding || p.pn != pmtud.probe_pn) {
            return;
        }
        pmtud.probe_outstanding = false;
        pmtud.failures = 0;
        pmtud.current = pmtud.probe_size;
        mtu = pmtud.current;
        cc->set_max_datagram_size(mtu);
        schedule_next_probe();
    }
    void on_probe_lost(const SentPacket& p) {
        if (!pmtud.probe_outstanding || p.pn != pmtud.probe_pn) {
            return;
        }
        pmtud.probe_outstanding = false;
        if (++pmtud.failures >= kPmtuMaxProbes) {
            pmtud.high = pmtud.probe_size - 1;
            pmtud.failures = 0;
        }
        schedule_next_probe();
    }
    void schedule_next_probe() {
        if (pmtud.high <= pmtud.current || pmtud.high - pmtud.current < kPmtuSearchDone) {
            pmtud.searching = false;
            pmtud.next_probe = now_ + kPmtuRaiseInterval;
        } else {
            pmtud.searching = true;
            pmtud.next_probe = now_;
        }
    }
    void on_black_hole_suspected() {
        if (!pmtud.enabled || mtu <= pmtud.base) {
            return;
        }
        // Fall back to the safe base size; search again later below the failed size.
        pmtud.high = mtu - 1;
        pmtud.current = pmtud.base;
        pmtud.probe_outstanding = false;
        pmtud.failures = 0;
        pmtud.searching = false;
        pmtud.next_probe = now_ + kPmtuBlackHoleRetry;
        mtu = pmtud.base;
        cc->set_max_datagram_size(mtu);
    }
    bool probe_due() {
        if (!pmtud.enabled || state != State::kEstablished || pmtud.probe_outstanding ||
            now_ < pmtud.next_probe || pmtud.max <= pmtud.current) {
            return false;
        }
        if (!pmtud.searching) {
            // Raise timer (RFC 8899 §5.2): search again toward the configured maximum.
            pmtud.high = pmtud.max;
            pmtud.failures = 0;
            pmtud.searching = true;
        }
        return pmtud.high > pmtud.current;
    }

    // ------------------------------------------------------------------ timers
    Instant pto_deadline() const {
        const unsigned backoff = std::min(pto_count, kMaxPtoBackoff);
        return last_ack_eliciting_sent + pto_base() * (1 << backoff);
    }

    std::optional<Instant> loss_timer() const {
        if (!datagram()) {
            return std::nullopt;
        }
        if (has_loss_time) {
            return loss_time;
        }
        if (ack_eliciting_in_flight > 0 ||
            (state == State::kHandshake && is_client() && hs == Hs::kClientAuthSent)) {
            return pto_deadline();
        }
        return std::nullopt;
    }

    bool has_pending_send() const {
        return !send_queue.empty() || !ctrl_queue.empty() || max_data_pending ||
               max_streams_pending || data_blocked_pending || streams_blocked_pending ||
               ping_pending || auth_pending || auth_ok_pending || !path_responses.empty() ||
               !path_challenges.empty();
    }

    std::optional<Instant> next_timeout() const {
        if (state == State::kClosed) {
            return std::nullopt;
        }
        if (state == State::kClosing || state == State::kDraining) {
            return close_deadline;
        }
        Instant t = kInstantMax;
        auto take = [&t](Instant x) { t = std::min(t, x); };
        if (auto lt = loss_timer()) {
            take(*lt);
        }
        if (has_ack_deadline) {
            take(ack_deadline);
        }
        const Duration idle = effective_idle_timeout();
        if (idle.count() > 0) {
            take(last_recv_time + std::max(idle, 3 * pto_base()));
        }
        if (state == State::kHandshake) {
            take(created + cfg.handshake_timeout);
        }
        if (state == State::kEstablished && keepalive_interval().count() > 0 && !ping_pending) {
            take(last_ack_eliciting_send_time + keepalive_interval());
        }
        if (datagram() && has_pending_send() && bytes_in_flight < cc->cwnd()) {
            take(pace_time);
        }
        if (pmtud.enabled && state == State::kEstablished) {
            if (pmtud.probe_outstanding) {
                take(pmtud.probe_deadline);
            } else if (pmtud.max > pmtud.current) {
                take(pmtud.next_probe);
            }
        }
        if (t == kInstantMax) {
            return std::nullopt;
        }
        return t;
    }

    void on_timeout() {
        if (state == State::kClosed) {
            return;
        }
        if (state == State::kClosing || state == State::kDraining) {
            if (now_ >= close_deadline) {
                state = State::kClosed;
            }
            return;
        }
        const Duration idle = effective_idle_timeout();
        if (idle.count() > 0 && now_ >= last_recv_time + std::max(idle, 3 * pto_base())) {
            close_silently(WireError::kIdleTimeout, "idle timeout");
            return;
        }
        if (state == State::kHandshake && now_ >= created + cfg.handshake_timeout) {
            close_local(WireError::kHandshakeTimeout, "authentication did not complete in time");
            return;
        }
        if (has_ack_deadline && now_ >= ack_deadline) {
            ack_immediate = true;
            has_ack_deadline = false;
        }
        if (state == State::kEstablished && keepalive_interval().count() > 0 &&
            now_ >= last_ack_eliciting_send_time + keepalive_interval()) {
            ping_pending = true;
        }
        if (pmtud.probe_outstanding && now_ >= pmtud.probe_deadline) {
            // No ACK at all for the probe: count as a failure.
            if (SentPacket* p = sent_at(pmtud.probe_pn); p && !p->done) {
                p->done = true;
                pop_done();
            }
            SentPacket fake;
            fake.pn = pmtud.probe_pn;
            on_probe_lost(fake);
        }
        if (auto lt = loss_timer(); lt && now_ >= *lt) {
            if (has_loss_time) {
                detect_losses();
            } else {
                on_pto();
            }
        }
    }

    void on_pto() {
        ++pto_count;
        ++stats.pto_count_total;
        probes_to_send = 2;
        if (pto_count >= 3) {
            on_black_hole_suspected();
        }
        // Retransmit the oldest unacknowledged data if nothing new is waiting.
        bool queued = false;
        if (send_queue.empty()) {
            for (auto& p : sent) {
                if (p.done || !p.ack_eliciting || p.mtu_probe) {
                    continue;
                }
                for (const auto& rec : p.recs) {
                    if (rec.kind == RecKind::kStream) {
                        if (Stream* s = find(rec.id); s && !s->reset) {
                            if (rec.len > 0) {
                                s->lost.add(std::max(rec.offset, s->sbuf.base()),
                                            std::max(rec.offset + rec.len, s->sbuf.base()));
                                for (const auto& a : s->acked.ranges()) {
                                    s->lost.remove(a.lo, a.hi);
                                }
                            }
                            if (rec.fin && !s->fin_acked) {
                                s->fin_pending = true;
                            }
                            enqueue_send(*s);
                            queued = true;
                        }
                    } else if (rec.kind == RecKind::kAuth && hs == Hs::kClientAuthSent) {
                        auth_pending = true;
                        queued = true;
                    } else if (rec.kind == RecKind::kAuthOk) {
                        auth_ok_pending = true;
                        queued = true;
                    }
                }
                break;
            }
        }
        if (!queued && !has_pending_send()) {
            ping_pending = true;
        }
        if (is_client() && hs == Hs::kClientAuthSent) {
            auth_pending = true;
        }
    }

    // ------------------------------------------------------------------ writing frames
    // Appends control and stream frames; returns true if anything ack-eliciting was written.
    bool write_frames(Writer& w, std::vector<SentRec>& recs, bool stream_mode) {
        bool wrote = false;
        auto put = [&](const Frame& f, RecKind kind, StreamId id = 0) {
            Writer probe = w;
            if (!encode_frame(probe, f)) {
                return false;
            }
            encode_frame(w, f);
            recs.push_back({kind, false, id, 0, 0});
            wrote = true;
            return true;
        };
        if (auth_pending) {
            AuthFrame a;
            a.domain = cfg.domain;
            a.api_key = cfg.api_key;
            a.client_version = cfg.client_version;
            a.params = local_params;
            if (put(a, RecKind::kAuth)) {
                auth_pending = false;
            }
        }
        if (auth_ok_pending) {
            if (put(AuthOkFrame{local_params}, RecKind::kAuthOk)) {
                auth_ok_pending = false;
            }
        }
        while (!path_responses.empty() &&
               put(PathResponseFrame{path_responses.front()}, RecKind::kOther)) {
            path_responses.pop_front();
        }
        while (!path_challenges.empty() &&
               put(PathChallengeFrame{path_challenges.front()}, RecKind::kOther)) {
            path_challenges.pop_front();
        }
        if (state != State::kEstablished && !(is_client() && hs == Hs::kClientAuthSent)) {
            // Server before accepting: nothing but handshake frames.
            if (ping_pending && put(PingFrame{}, RecKind::kOther)) {
                ping_pending = false;
            }
            return wrote;
        }
        if (max_data_pending && put(MaxDataFrame{conn_recv_max}, RecKind::kMaxData)) {
            max_data_pending = false;
        }
        if (max_streams_pending &&
            put(MaxStreamsFrame{peer_streams_allowed}, RecKind::kMaxStreams)) {
            max_streams_pending = false;
        }
        if (data_blocked_pending && put(DataBlockedFrame{conn_send_max}, RecKind::kOther)) {
            data_blocked_pending = false;
        }
        if (streams_blocked_pending &&
            put(StreamsBlockedFrame{peer_max_streams}, RecKind::kOther)) {
            streams_blocked_pending = false;
        }
        // Per-stream control frames.
        std::size_t n = ctrl_queue.size();
        while (n-- > 0 && w.remaining() >= kMinFrameSpace) {
            const StreamId id = ctrl_queue.front();
            ctrl_queue.pop_front();
            Stream* s = find(id);
            if (!s) {
                continue;
            }
            s->in_ctrl_queue = false;
            bool fits = true;
            if (s->reset_pending) {
                if (put(ResetStreamFrame{id, s->reset_code, s->reset_final}, RecKind::kReset, id)) {
                    s->reset_pending = false;
                    if (stream_mode) {
                        s->reset_acked = true;
                    }
                } else {
                    fits = false;
                }
            }
            if (fits && s->stop_pending) {
                if (put(StopSendingFrame{id, s->stop_code}, RecKind::kStopSending, id)) {
                    s->stop_pending = false;
                } else {
                    fits = false;
                }
            }
            if (fits && s->max_data_pending) {
                if (put(MaxStreamDataFrame{id, s->recv_max}, RecKind::kMaxStreamData, id)) {
                    s->max_data_pending = false;
                } else {
                    fits = false;
                }
            }
            if (fits && s->blocked_pending) {
                if (put(StreamDataBlockedFrame{id, s->blocked_at}, RecKind::kOther, id)) {
                    s->blocked_pending = false;
                } else {
                    fits = false;
                }
            }
            if (!fits) {
                enqueue_ctrl(*s);
                break;
            }
            if (stream_mode) {
                maybe_free(*s);
            }
        }
        // Stream data, round-robin: at most one frame per stream per pass.
        n = send_queue.size();
        while (n-- > 0 && w.remaining() >= kMinFrameSpace) {
            const StreamId id = send_queue.front();
            send_queue.pop_front();
            Stream* s = find(id);
            if (!s) {
                continue;
            }
            s->in_send_queue = false;
            if (write_stream_frame(w, *s, recs, stream_mode)) {
                wrote = true;
            }
            if (Stream* again = find(id)) {
                enqueue_send(*again);
            }
        }
        if (ping_pending && put(PingFrame{}, RecKind::kOther)) {
            ping_pending = false;
        }
        return wrote;
    }

    bool write_stream_frame(Writer& w, Stream& s, std::vector<SentRec>& recs, bool stream_mode) {
        if (s.reset) {
            return false;
        }
        const std::size_t room = w.remaining();
        // 1. Retransmissions.
        if (!s.lost.empty()) {
            const Range r = s.lost.front();
            const std::size_t overhead = stream_frame_overhead(s.id, r.lo, room);
            if (room <= overhead) {
                return false;
            }
            const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(
                {r.size(), room - overhead, s.sbuf.contiguous(r.lo)}));
            const std::uint64_t end = r.lo + len;
            const bool fin = s.fin_pending && s.fin_requested && end == s.sbuf.end();
            StreamFrame f{s.id, r.lo, fin, s.sbuf.view(r.lo, len)};
            encode_frame(w, f);
            s.lost.remove(r.lo, end);
            if (fin) {
                s.fin_pending = false;
            }
            stats.retransmitted_bytes += len;
            recs.push_back({RecKind::kStream, fin, s.id, r.lo, static_cast<std::uint32_t>(len)});
            if (stream_mode) {
                stream_range_acked(s, r.lo, len, fin);
            }
            return true;
        }
        // 2. New data within stream and connection credit.
        const std::uint64_t end = s.sbuf.end();
        std::uint64_t avail = end - s.send_next;
        const std::uint64_t stream_credit = s.send_max > s.send_next ? s.send_max - s.send_next : 0;
        const std::uint64_t conn_credit = conn_send_max > conn_sent ? conn_send_max - conn_sent : 0;
        if (avail > 0 && (stream_credit == 0 || conn_credit == 0)) {
            if (stream_credit == 0 && s.blocked_at != s.send_max) {
                s.blocked_at = s.send_max;
                s.blocked_pending = true;
                enqueue_ctrl(s);
            }
            if (conn_credit == 0 && data_blocked_at != conn_send_max) {
                data_blocked_at = conn_send_max;
                data_blocked_pending = true;
            }
            avail = 0;
        }
        avail = std::min({avail, stream_credit, conn_credit});
        const bool fin_only = avail == 0 && s.fin_pending && s.send_next == end;
        if (avail == 0 && !fin_only) {
            return false;
        }
        const std::size_t overhead = stream_frame_overhead(s.id, s.send_next, room);
        if (room <= overhead) {
            return false;
        }
        const std::size_t unsplit =
            static_cast<std::size_t>(std::min<std::uint64_t>(avail, room - overhead));
        const std::size_t len = std::min(unsplit, s.sbuf.contiguous(s.send_next));
        const std::uint64_t off = s.send_next;
        const bool fin = s.fin_pending && off + len == end;
        StreamFrame f{s.id, off, fin, s.sbuf.view(off, len)};
        encode_frame(w, f);
        s.send_next += len;
        conn_sent += len;
        stats.stream_bytes_sent += len;
        if (fin) {
            s.fin_pending = false;
        }
        recs.push_back({RecKind::kStream, fin, s.id, off, static_cast<std::uint32_t>(len)});
        if (stream_mode) {
            stream_range_acked(s, off, len, fin);
        }
        if (len < unsplit && w.remaining() >= kMinFrameSpace) {
            // Cut at a send-buffer block boundary: continue from the next block.
            (void)write_stream_frame(w, s, recs, stream_mode);
        }
        return true;
    }

    bool write_ack(Writer& w) {
        if (!ack_needed || recv_pns.empty()) {
            return false;
        }
        AckFrame& a = scratch_ack;
        a.ranges.clear();
        const auto& rs = recv_pns.ranges();
        for (auto it = rs.rbegin(); it != rs.rend() && a.ranges.size() < kMaxAckRangesSent; ++it) {
            a.ranges.push_back({it->lo, it->hi - 1});
        }
        a.ack_delay_us = static_cast<std::uint64_t>((now_ - largest_recv_time).count());
        Writer probe = w;
        Frame f = std::move(a);
        const bool ok = encode_frame(probe, f);
        if (ok) {
            encode_frame(w, f);
            ack_needed = false;
            ack_immediate = false;
            has_ack_deadline = false;
            ack_eliciting_since_ack = 0;
        }
        scratch_ack = std::move(std::get<AckFrame>(f));
        return ok;
    }

    std::size_t write_close_packet(std::span<std::uint8_t> out) {
        // Both reasons are cut so that the packet fits the base packet size.
        constexpr std::size_t kMaxCloseText = 400;
        if (auth_fail_message.size() > kMaxCloseText) {
            auth_fail_message.resize(kMaxCloseText);
        }
        if (close_reason.size() > kMaxCloseText) {
            close_reason.resize(kMaxCloseText);
        }
        Writer w(out.first(std::min(out.size(), mtu)));
        w.u8(kPacketFlags);
        w.varint(next_pn++);
        if (auth_fail_pending) {
            encode_frame(w, AuthFailFrame{static_cast<std::uint64_t>(auth_fail_reason),
                                          auth_fail_message});
        }
        encode_frame(w,
                     ConnectionCloseFrame{static_cast<std::uint64_t>(close_code), close_reason});
        close_send_pending = false;
        if (!w.ok()) {
            return 0;
        }
        ++stats.packets_sent;
        stats.bytes_sent += w.size();
        return w.size();
    }

    std::size_t write_datagram(std::span<std::uint8_t> out) {
        if (!datagram()) {
            return 0;
        }
        if (state == State::kClosed || state == State::kDraining) {
            return 0;
        }
        if (state == State::kClosing) {
            return close_send_pending ? write_close_packet(out) : 0;
        }
        const std::size_t limit = std::min(out.size(), mtu);
        if (limit < 64) {
            return 0;
        }
        if (probe_due() && out.size() >= pmtud.next_size()) {
            return write_mtu_probe(out);
        }
        const bool probing = probes_to_send > 0;
        const bool cwnd_ok = probing || bytes_in_flight < cc->cwnd();
        const bool pace_ok = probing || pace_time <= now_ + pace_early;
        const bool may_send_data = cwnd_ok && pace_ok;
        const bool ack_due = ack_needed && (ack_immediate || (has_ack_deadline && now_ >= ack_deadline));
        const bool pending = has_pending_send() || probing;
        if (!ack_due && !(pending && may_send_data)) {
            if (cwnd_ok && pace_ok && !pending && state == State::kEstablished) {
                app_limited_until = std::max<std::uint64_t>(delivered + bytes_in_flight, 1);
            }
            return 0;
        }
        Writer w(out.first(limit));
        w.u8(kPacketFlags);
        const std::uint64_t pn = next_pn;
        w.varint(pn);
        const std::size_t header = w.size();
        write_ack(w);
        std::vector<SentRec> recs = take_recs();
        bool eliciting = false;
        if (may_send_data) {
            eliciting = write_frames(w, recs, false);
            if (probing && !eliciting) {
                encode_frame(w, PingFrame{});
                eliciting = true;
            }
        }
        if (w.size() == header) {
            recycle(recs);
            return 0;
        }
        ++next_pn;
        SentPacket p;
        p.pn = pn;
        p.time = now_;
        p.size = static_cast<std::uint32_t>(w.size());
        p.ack_eliciting = eliciting;
        p.in_flight = eliciting;
        p.done = !eliciting;
        p.recs = std::move(recs);
        if (eliciting) {
            on_eliciting_sent(p, probing);
        }
        sent.push_back(std::move(p));
        pop_done();
        ++stats.packets_sent;
        stats.bytes_sent += w.size();
        return w.size();
    }

    void on_eliciting_sent(SentPacket& p, bool probing) {
        if (bytes_in_flight == 0) {
            first_sent_time = now_;
            delivered_time = now_;
        }
        p.delivered = delivered;
        p.delivered_time = delivered_time;
        p.first_sent_time = first_sent_time;
        p.app_limited = app_limited_until > 0;
        bytes_in_flight += p.size;
        ++ack_eliciting_in_flight;
        last_ack_eliciting_sent = now_;
        last_ack_eliciting_send_time = now_;
        ack_eliciting_since_recv = true;
        cc->on_sent(now_, p.size, bytes_in_flight);
        if (probing) {
            --probes_to_send;
        } else {
            advance_pacer(p.size);
        }
    }

    void advance_pacer(std::size_t bytes) {
        double rate = cc->pacing_rate(rtt);
        rate = std::max(rate, 1000.0);
        const double burst_bytes = std::max(10.0 * static_cast<double>(mtu), rate * 1e-3);
        const Duration burst(static_cast<std::int64_t>(burst_bytes / rate * 1e6));
        const Duration gap(static_cast<std::int64_t>(std::ceil(static_cast<double>(bytes) / rate * 1e6)));
        pace_time = std::max(pace_time, now_ - burst) + gap;
        pace_early = rtt.smoothed() < kPacingGranularity ? pacing_quantum(rate) : Duration{0};
    }

    // The time one pacing quantum takes at `rate` bytes/s (see kPacingQuantumMax).
    Duration pacing_quantum(double rate) const {
        const double bytes = std::min(static_cast<double>(kPacingQuantumMax), rate * 1e-3);
        return std::max(rtt.smoothed() / 4, Duration(static_cast<std::int64_t>(bytes / rate * 1e6)));
    }

    std::size_t write_mtu_probe(std::span<std::uint8_t> out) {
        const std::size_t size = pmtud.next_size();
        Writer w(out.first(size));
        w.u8(kPacketFlags);
        const std::uint64_t pn = next_pn++;
        w.varint(pn);
        encode_frame(w, PingFrame{});
        w.zeros(w.remaining());
        SentPacket p;
        p.pn = pn;
        p.time = now_;
        p.size = static_cast<std::uint32_t>(w.size());
        p.ack_eliciting = true;
        p.in_flight = false;
        p.mtu_probe = true;
        sent.push_back(std::move(p));
        pmtud.probe_outstanding = true;
        pmtud.probe_pn = pn;
        pmtud.probe_size = size;
        pmtud.probe_deadline = now_ + 3 * pto_base();
        ++stats.packets_sent;
        stats.bytes_sent += w.size();
        return w.size();
    }

    std::size_t write_stream_bytes(std::span<std::uint8_t> out) {
        if (datagram() || state == State::kClosed || state == State::kDraining) {
            return 0;
        }
        std::size_t total = 0;
        if (state == State::kClosing) {
            if (!close_send_pending || out.size() < 64) {
                return 0;
            }
            Writer w(out.subspan(kStreamRecordPrefix));
            if (auth_fail_pending) {
                encode_frame(w, AuthFailFrame{static_cast<std::uint64_t>(auth_fail_reason),
                                              auth_fail_message});
            }
            encode_frame(w, ConnectionCloseFrame{static_cast<std::uint64_t>(close_code),
                                                 close_reason});
            if (!w.ok()) {
                return 0;
            }
            put_record_prefix(out, w.size());
            close_send_pending = false;
            state = State::kClosed;
            stats.bytes_sent += kStreamRecordPrefix + w.size();
            return kStreamRecordPrefix + w.size();
        }
        std::vector<SentRec> recs;
        while (out.size() - total > kStreamRecordPrefix + kMinFrameSpace && has_pending_send()) {
            const std::size_t cap =
                std::min(out.size() - total - kStreamRecordPrefix, cfg.max_record_size);
            Writer w(out.subspan(total + kStreamRecordPrefix, cap));
            recs.clear();
            write_frames(w, recs, true);
            if (w.size() == 0) {
                break;
            }
            put_record_prefix(out.subspan(total), w.size());
            total += kStreamRecordPrefix + w.size();
            last_ack_eliciting_send_time = now_;
            ++stats.packets_sent;
        }
        stats.bytes_sent += total;
        return total;
    }

    static void put_record_prefix(std::span<std::uint8_t> out, std::size_t len) {
        // Fixed 4-byte varint (prefix 0b10) so the header can be written after the body.
        out[0] = static_cast<std::uint8_t>(0x80 | ((len >> 24) & 0x3f));
        out[1] = static_cast<std::uint8_t>(len >> 16);
        out[2] = static_cast<std::uint8_t>(len >> 8);
        out[3] = static_cast<std::uint8_t>(len);
    }

    // ------------------------------------------------------------------ stream API helpers
    void local_reset(Stream& s, std::uint64_t code) {
        if (s.reset || s.send_done()) {
            return;
        }
        s.reset = true;
        s.reset_code = code;
        s.reset_final = s.send_next;
        s.reset_pending = true;
        send_buffered -= s.sbuf.size();
        s.sbuf.discard(s.send_next);
        recount_ahead(s);
        notify_budget_waiters();
        s.lost.clear();
        s.acked.clear();
        s.fin_pending = false;
        enqueue_ctrl(s);
    }

    void local_stop_sending(Stream& s, std::uint64_t code) {
        if (s.stopped || s.recv_done()) {
            return;
        }
        s.stopped = true;
        s.stop_code = code;
        s.stop_pending = !s.final_known || s.recv_highest < s.final_size;
        // Unread data is dropped and its credit returned at once.
        const std::uint64_t unread = s.recv_highest - s.rbuf.read_offset();
        s.rbuf.discard(s.recv_highest);
        conn_consumed += unread;
        update_conn_window();
        if (s.stop_pending) {
            enqueue_ctrl(s);
        }
    }

    Stream* api_stream(StreamId id, core::Status& st) {
        if (closing_or_worse()) {
            st = Errc::kClosed;
            return nullptr;
        }
        Stream* s = find(id);
        if (!s) {
            st = Errc::kUnknownStream;
        }
        return s;
    }
};

// ====================================================================== public API

Connection::Connection(const ConnectionConfig& cfg, Instant now)
    : impl_(std::make_unique<Impl>(cfg, now)) {}
Connection::~Connection() = default;

void Connection::on_datagram(std::span<const std::uint8_t> d, Instant now) {
    impl_->now_ = std::max(impl_->now_, now);
    if (impl_->cfg.mode != Mode::kDatagram) {
        return;
    }
    impl_->on_datagram(d);
}

void Connection::on_stream_bytes(std::span<const std::uint8_t> b, Instant now) {
    impl_->now_ = std::max(impl_->now_, now);
    if (impl_->cfg.mode != Mode::kStream) {
        return;
    }
    impl_->on_stream_bytes(b);
}

void Connection::on_transport_closed(std::string_view reason) {
    impl_->close_silently(WireError::kTransportClosed, reason);
}

void Connection::on_timeout(Instant now) {
    impl_->now_ = std::max(impl_->now_, now);
    impl_->on_timeout();
}

std::size_t Connection::write_datagram(std::span<std::uint8_t> out, Instant now) {
    impl_->now_ = std::max(impl_->now_, now);
    return impl_->write_datagram(out);
}

std::size_t Connection::write_stream_bytes(std::span<std::uint8_t> out, Instant now) {
    impl_->now_ = std::max(impl_->now_, now);
    return impl_->write_stream_bytes(out);
}

std::optional<Instant> Connection::next_timeout() const { return impl_->next_timeout(); }

bool Connection::poll_event(Event& out) {
    auto& m = *impl_;
    if (m.events_head == m.events.size()) {
        return false;
    }
    out = std::move(m.events[m.events_head++]);
    if (m.events_head == m.events.size()) {
        // Keep the capacity for the next events, unless a burst left it large.
        if (m.events.capacity() > kKeptEvents) {
            m.events = {};
        }
        m.events.clear();
        m.events_head = 0;
    }
    return true;
}

void Connection::accept_auth() {
    auto& m = *impl_;
    if (m.is_client() || m.hs != Hs::kServerDeciding || m.closing_or_worse()) {
        return;
    }
    m.auth_ok_pending = true;
    m.establish();
}

void Connection::reject_auth(AuthFailReason reason, std::string_view message) {
    auto& m = *impl_;
    if (m.is_client() || m.hs != Hs::kServerDeciding || m.closing_or_worse()) {
        return;
    }
    m.reject(reason, std::string(message.substr(0, kMaxReasonLen)));
}

core::Result<StreamId> Connection::open_stream(const StreamMeta& meta) {
    auto& m = *impl_;
    if (m.closing_or_worse()) {
        return Errc::kClosed;
    }
    if (m.state != State::kEstablished) {
        return Errc::kNotReady;
    }
    if (m.next_local_seq >= m.peer_max_streams) {
        if (m.streams_blocked_at != m.peer_max_streams) {
            m.streams_blocked_at = m.peer_max_streams;
            m.streams_blocked_pending = true;
        }
        return Errc::kStreamLimit;
    }
    std::vector<std::uint8_t> enc;
    if (!encode_meta(meta, enc, m.cfg.max_meta_size)) {
        return Errc::kTooLarge;
    }
    if (m.send_buffered + enc.size() > m.cfg.connection_send_buffer) {
        return Errc::kWouldBlock;
    }
    const StreamId id = m.local_id(m.next_local_seq++);
    Stream& s = m.create_stream(id, true);
    s.send_max = m.peer_params.initial_max_stream_data;
    s.meta_written = true;
    s.sbuf.append(enc);
    m.send_buffered += enc.size();
    m.recount_ahead(s);
    m.note_buffered();
    m.enqueue_send(s);
    return id;
}

core::Status Connection::send_meta(StreamId id, const StreamMeta& meta) {
    core::Status st;
    Stream* s = impl_->api_stream(id, st);
    if (!s) {
        return st;
    }
    if (s->meta_written || s->reset) {
        return Errc::kStreamState;
    }
    std::vector<std::uint8_t> enc;
    if (!encode_meta(meta, enc, impl_->cfg.max_meta_size)) {
        return Errc::kTooLarge;
    }
    // Heads are exempt from the send budget (an application must always be able to answer);
    // they are bounded on their own by max_meta_size per stream and max_streams.
    s->meta_written = true;
    s->sbuf.append(enc);
    impl_->send_buffered += enc.size();
    impl_->recount_ahead(*s);
    impl_->note_buffered();
    impl_->enqueue_send(*s);
    return {};
}

core::Result<std::size_t> Connection::stream_write(StreamId id,
                                                   std::span<const std::uint8_t> data, bool fin) {
    auto& m = *impl_;
    core::Status st;
    Stream* s = m.api_stream(id, st);
    if (!s) {
        return st.error();
    }
    if (!s->meta_written) {
        return Errc::kNotReady;
    }
    if (s->fin_requested || s->reset) {
        return Errc::kStreamState;
    }
    const std::uint64_t stream_room =
        m.cfg.stream_send_buffer > s->sbuf.size() ? m.cfg.stream_send_buffer - s->sbuf.size() : 0;
    const std::uint64_t conn_room = m.cfg.connection_send_buffer > m.send_buffered
                                        ? m.cfg.connection_send_buffer - m.send_buffered
                                        : 0;
    // Within the peer's credit a stream may fill its buffer; beyond it, only while all streams
    // together hold less than ahead_cap() there.
    const std::uint64_t end = s->sbuf.end();
    const std::uint64_t shared_room =
        m.ahead_cap() > m.send_ahead ? m.ahead_cap() - m.send_ahead : 0;
    const std::uint64_t ahead_room = (s->send_max > end ? s->send_max - end : 0) + shared_room;
    const std::size_t n = static_cast<std::size_t>(
        std::min<std::uint64_t>({data.size(), stream_room, conn_room, ahead_room}));
    if (n < data.size() && !s->want_writable) {
        // This stream may have nothing in flight whose acknowledgement would wake it, so queue it
        // for the connection-wide limit that binds (credit arriving wakes it too).
        if (conn_room <= stream_room && conn_room <= ahead_room) {
            m.budget_waiters.push_back(id);
        } else if (ahead_room < stream_room && !s->in_ahead_waiters) {
            s->in_ahead_waiters = true;  // once: credit may wake it before the cap frees up
            m.ahead_waiters.push_back(id);
        }
    }
    if (n == 0 && !data.empty()) {
        s->want_writable = true;
        return Errc::kWouldBlock;
    }
    s->sbuf.append(data.first(n));
    m.send_buffered += n;
    m.recount_ahead(*s);
    m.note_buffered();
    if (n < data.size()) {
        s->want_writable = true;
    } else if (fin) {
        s->fin_requested = true;
        s->fin_pending = true;
    }
    m.enqueue_send(*s);
    return n;
}

core::Status Connection::stream_finish(StreamId id) {
    auto r = stream_write(id, {}, true);
    if (!r) {
        return r.error();
    }
    return {};
}

core::Result<ReadResult> Connection::stream_read(StreamId id, std::span<std::uint8_t> out) {
    auto& m = *impl_;
    core::Status st;
    Stream* s = m.api_stream(id, st);
    if (!s) {
        return st.error();
    }
    s->readable_outstanding = false;
    ReadResult rr;
    if (!s->meta_parsed || s->stopped) {
        return rr;
    }
    rr.bytes = s->rbuf.read(out);
    if (rr.bytes > 0) {
        m.after_consume(*s, rr.bytes);
    }
    if (s->final_known && s->rbuf.read_offset() == s->final_size && !s->peer_reset) {
        rr.fin = true;
        s->fin_read = true;
        m.maybe_free(*s);
    }
    return rr;
}

std::size_t Connection::stream_readable(StreamId id) const {
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end() || !it->second.meta_parsed) {
        return 0;
    }
    return it->second.rbuf.readable();
}

core::Status Connection::stream_reset(StreamId id, std::uint64_t code) {
    core::Status st;
    Stream* s = impl_->api_stream(id, st);
    if (!s) {
        return st;
    }
    impl_->local_reset(*s, code);
    impl_->maybe_free(*s);
    return {};
}

core::Status Connection::stream_stop_sending(StreamId id, std::uint64_t code) {
    core::Status st;
    Stream* s = impl_->api_stream(id, st);
    if (!s) {
        return st;
    }
    impl_->local_stop_sending(*s, code);
    impl_->maybe_free(*s);
    return {};
}

void Connection::close(WireError code, std::string_view reason) { impl_->close_local(code, reason); }

void Connection::send_path_challenge(std::uint64_t data) {
    if (impl_->path_challenges.size() < 4) {
        impl_->path_challenges.push_back(data);
    }
}

void Connection::ping() { impl_->ping_pending = true; }

bool Connection::is_established() const { return impl_->state == State::kEstablished; }
bool Connection::is_closed() const { return impl_->state == State::kClosed; }
bool Connection::is_closing() const { return impl_->closing_or_worse(); }
Role Connection::role() const { return impl_->cfg.role; }
Mode Connection::mode() const { return impl_->cfg.mode; }
std::size_t Connection::open_streams() const { return impl_->streams.size(); }
std::uint64_t Connection::buffered_bytes() const { return impl_->buffered(); }
std::size_t Connection::max_packet_size() const { return impl_->mtu; }

const ConnectionStats& Connection::stats() const {
    auto& m = *impl_;
    m.stats.smoothed_rtt = m.rtt.smoothed();
    m.stats.min_rtt = m.rtt.min();
    m.stats.cwnd = m.cc->cwnd();
    m.stats.bytes_in_flight = m.bytes_in_flight;
    m.stats.path_mtu = m.mtu;
    m.stats.connection_window = m.conn_window;
    m.stats.credit_reserved = m.credit_reserved;
    m.stats.unread_cover = m.unread_cover;
    m.stats.send_ahead = m.send_ahead;
    return m.stats;
}

const TransportParams& Connection::peer_params() const { return impl_->peer_params; }

}  // namespace hopgate::proto
