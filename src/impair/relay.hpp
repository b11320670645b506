// The run-time face of a relay, shared by the UDP and TCP implementations: what the control port
// and the signal handlers may do. All calls happen on the relay's io_context thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "impair/link_model.hpp"

namespace hopgate::impair {

// "up" is client -> target, "down" is target -> client.
enum class Direction : std::uint8_t { kUp = 0, kDown = 1 };
inline std::string_view to_string(Direction d) { return d == Direction::kUp ? "up" : "down"; }

// Counters of one direction. Datagram counts are 0 in TCP mode.
struct DirectionStats {
    std::uint64_t rx_datagrams = 0;  // received from the sender side
    std::uint64_t rx_bytes = 0;
    std::uint64_t tx_datagrams = 0;  // sent on to the receiver side (duplicates included)
    std::uint64_t tx_bytes = 0;
    std::uint64_t dropped_loss = 0;      // random loss
    std::uint64_t dropped_queue = 0;     // tail drop at the rate limiter's queue
    std::uint64_t dropped_cut = 0;       // dropped because the relay was cut
    std::uint64_t dropped_overflow = 0;  // the in-flight (delay queue) limit was reached
    std::uint64_t dropped_send = 0;      // the socket refused the datagram (buffer full, error)
    std::uint64_t duplicated = 0;        // extra copies made

    // `{"rx_datagrams":1,...}`
    std::string to_json() const;
};

class Relay {
  public:
    virtual ~Relay() = default;

    virtual std::string_view mode() const = 0;  // "udp" or "tcp"

    // Cut: UDP drops everything (arriving and in flight); TCP stops relaying bytes (they stay
    // buffered; the senders see backpressure). Restore resumes.
    virtual void set_cut(bool cut) = 0;
    virtual bool cut() const = 0;

    // Simulated NAT rebinding: every mapping gets a new upstream socket with a new source port.
    // Returns the number of mappings rebound, or -1 if the mode cannot rebind (TCP).
    virtual long rebind() = 0;

    virtual LinkParams params(Direction d) const = 0;
    // Throws std::invalid_argument on invalid parameters (nothing changes then).
    virtual void set_params(Direction d, const LinkParams& p) = 0;
    // Parameter names `set` accepts in this mode (e.g. TCP has no loss).
    virtual bool supports(std::string_view param) const = 0;

    // One JSON object on one line, no newline.
    virtual std::string stats_json() const = 0;

    // Stops accepting and receiving, closes every socket, cancels every timer.
    virtual void stop() = 0;
};

}  // namespace hopgate::impair
