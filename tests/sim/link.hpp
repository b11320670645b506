// A one-directional simulated network link with virtual time.
//
// A datagram offered to `send` goes through these stages, in order:
//   1. cut        - a cut link drops everything (and cutting it drops what is in flight);
//   2. MTU        - datagrams larger than `mtu` vanish silently (an MTU black hole);
//   3. queue      - with a rate limit, a finite FIFO sits in front of the serializer; a datagram
//                   that does not fit is tail-dropped;
//   4. serializer - datagrams leave one after another at `rate_bps`;
//   5. loss       - random loss, Bernoulli or bursty (Gilbert-Elliott); a lost datagram still
//                   used its serialization time, as on a real wire;
//   6. delay      - `delay` plus uniform jitter in [0, jitter], drawn per datagram (reorders);
//   7. dup        - with probability `dup` a second copy arrives, with its own jitter.
//
// Everything random comes from one seeded generator owned by the link, so a run replays exactly
// given the same seed and the same sequence of calls. Single-threaded; no clock reads, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "core/random.hpp"
#include "core/time.hpp"

namespace hopgate::sim {

// Impairments of one direction. The default is a perfect link: no delay, no loss, unlimited rate.
struct LinkConfig {
    core::Duration delay{0};   // One-way propagation delay.
    core::Duration jitter{0};  // Extra delay, uniform in [0, jitter] per datagram.
    double loss = 0.0;         // Drop probability (in the good state of the burst model).

    // Gilbert-Elliott bursty loss. Before each datagram the state moves good->bad with
    // probability `burst_enter` and bad->good with `burst_exit`; in the bad state datagrams drop
    // with probability `burst_loss`. burst_enter = 0 disables bursts. Mean burst length is
    // 1 / burst_exit datagrams.
    double burst_enter = 0.0;
    double burst_exit = 0.5;
    double burst_loss = 1.0;

    double dup = 0.0;  // Probability that a delivered datagram arrives twice.

    // Bottleneck rate in bits per second; 0 = unlimited (no serialization, no queueing).
    std::uint64_t rate_bps = 0;
    // Bounds of the FIFO in front of the serializer, counting every datagram accepted but not yet
    // fully serialized (including the one on the wire). 0 = unlimited. Only matter if rate_bps > 0.
    std::size_t queue_bytes = 0;
    std::size_t queue_packets = 0;

    std::size_t mtu = 0;  // Largest datagram that passes; 0 = no limit.
    bool cut = false;     // Drop everything.
    // Probability that a delivered datagram has one byte flipped (a broken middlebox or peer;
    // the real transport's DTLS/TLS integrity check would catch this, the bare core must not
    // silently deliver wrong bytes without the test noticing).
    double corrupt = 0.0;

    // Throws std::invalid_argument if a probability is outside [0, 1] or a duration is negative.
    void validate() const;
};

struct LinkStats {
    std::uint64_t sent = 0;             // Datagrams offered to send().
    std::uint64_t bytes_sent = 0;       // Their bytes.
    std::uint64_t delivered = 0;        // Datagrams handed out by pop_due(), copies included.
    std::uint64_t bytes_delivered = 0;  // Their bytes.
    std::uint64_t dropped_loss = 0;     // Random or bursty loss.
    std::uint64_t dropped_queue = 0;    // Tail drop at a full queue.
    std::uint64_t dropped_mtu = 0;      // Larger than the MTU.
    std::uint64_t dropped_cut = 0;      // Sent on a cut link, or in flight when it was cut.
    std::uint64_t duplicated = 0;       // Extra copies created.
    std::uint64_t max_queue_bytes = 0;  // High-water mark of the serializer queue.
    std::uint64_t max_queue_packets = 0;
};

// What happened to a datagram at send time.
enum class SendResult {
    kInFlight,      // On its way; will be delivered once.
    kDuplicated,    // On its way; will be delivered twice.
    kDroppedCut,    // The link is cut.
    kDroppedMtu,    // Larger than the MTU.
    kDroppedQueue,  // The serializer queue was full.
    kDroppedLoss,   // Lost on the wire.
};

// A datagram that reached the far end.
struct Delivered {
    core::Instant at;  // Delivery time.
    std::vector<std::uint8_t> data;
    std::uint64_t id = 0;   // Index of the send() call that produced it (copies share it).
    std::uint32_t tag = 0;  // Opaque label given to send() (the network uses a path id).
};

class Link {
public:
    // Throws std::invalid_argument if `config` is invalid.
    Link(const LinkConfig& config, std::uint64_t seed);

    // Offers a datagram at time `now`. Calls must not go back in time. The bytes are copied.
    SendResult send(std::span<const std::uint8_t> datagram, core::Instant now,
                    std::uint32_t tag = 0);

    // Delivery time of the earliest datagram in flight, if any.
    std::optional<core::Instant> next_delivery() const;

    // Moves the earliest datagram due at or before `now` into `out` and returns true; false if
    // none is due. Datagrams come out in delivery-time order, ties in the order they were
    // scheduled. `out.data`'s old buffer is recycled, so reusing one `Delivered` avoids
    // allocations.
    bool pop_due(core::Instant now, Delivered& out);

    // Changes the impairments from now on; datagrams already in flight keep their delivery time,
    // except that cutting a link drops everything in flight and empties its queue. Throws
    // std::invalid_argument if `config` is invalid (the old config stays).
    void set_config(const LinkConfig& config);
    const LinkConfig& config() const { return config_; }

    const LinkStats& stats() const { return stats_; }
    // Datagrams (copies included) scheduled for delivery and not yet popped.
    std::size_t in_flight() const { return flights_.size(); }

private:
    struct Flight {
        core::Instant at;
        std::uint64_t order;  // Tie-break: scheduling order.
        std::uint64_t id;
        std::uint32_t slot;  // Index into buffers_.
        std::uint32_t tag;
    };
    struct Queued {
        core::Instant done;  // When its serialization finishes.
        std::size_t size;
    };

    void drain_queue(core::Instant now);
    bool queue_has_room(std::size_t size) const;
    core::Instant serialize(std::size_t size, core::Instant now);
    bool lose();
    core::Duration draw_jitter();
    void schedule(std::span<const std::uint8_t> datagram, core::Instant at, std::uint64_t id,
                  std::uint32_t tag);
    void drop_in_flight();

    LinkConfig config_;
    core::Xoshiro256 rng_;
    LinkStats stats_;

    std::vector<Flight> flights_;  // Min-heap on (at, order).
    std::uint64_t next_order_ = 0;
    std::vector<std::vector<std::uint8_t>> buffers_;  // Payloads, recycled via free_buffers_.
    std::vector<std::uint32_t> free_buffers_;

    std::deque<Queued> queue_;  // Datagrams not yet fully serialized, in FIFO order.
    std::size_t queue_bytes_ = 0;
    core::Instant free_at_{};  // When the serializer finishes its last datagram.
    std::uint64_t carry_ = 0;  // Sub-microsecond remainder of serialization, in 1/rate_bps us.
    bool bad_state_ = false;   // Gilbert-Elliott state.
};

}  // namespace hopgate::sim
