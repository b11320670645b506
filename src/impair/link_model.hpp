// The impairment of one direction of the relay, as a sans-I/O model: it is told the size of each
// datagram (or chunk) and the current time, and answers what happens to it and when it is due.
//
// A datagram offered to `admit` goes through these stages, in order (the same order as the
// simulator's link in tests/sim, so a scenario means the same thing on both):
//   1. cut        - a cut link drops everything;
//   2. queue      - with a rate limit, a FIFO of `queue_bytes` sits in front of the serializer;
//                   a datagram that does not fit is tail-dropped (an empty queue always takes one);
//   3. serializer - datagrams leave one after another at `rate_mbit`;
//   4. loss       - random loss; a lost datagram still used its serialization time;
//   5. delay      - `delay` plus uniform jitter in [0, jitter], drawn per datagram (reorders);
//   6. dup        - a second copy, with its own jitter.
//
// Determinism: every call to `admit` draws exactly four numbers from the generator, whatever the
// outcome, so the fate of the n-th datagram (lost? duplicated? how much jitter?) depends only on
// the seed and n, never on timing. Only tail drops depend on timing, as they must.
// Single-threaded; no clock reads, no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/random.hpp"
#include "core/time.hpp"

namespace hopgate::impair {

// Impairments of one direction. The default is a perfect link.
struct LinkParams {
    double loss_pct = 0.0;     // Drop probability in percent, 0..100 (fractional allowed).
    double dup_pct = 0.0;      // Probability in percent that a delivered datagram arrives twice.
    core::Duration delay{0};   // One-way delay.
    core::Duration jitter{0};  // Extra delay, uniform in [0, jitter] per datagram.
    double rate_mbit = 0.0;    // Serialization rate in Mbit/s (10^6 bit/s); 0 = unlimited.
    std::size_t queue_bytes = 256 * 1024;  // Queue in front of the serializer; only with a rate.

    // Empty if valid, else a one-line reason (e.g. "loss must be in [0, 100]").
    std::string validate() const;
    friend bool operator==(const LinkParams&, const LinkParams&) = default;
};

enum class Fate : std::uint8_t {
    kDeliver,    // one or two copies are due at `release`
    kDropCut,    // the link is cut
    kDropQueue,  // tail drop: the serializer queue is full
    kDropLoss,   // random loss
};

struct Admission {
    Fate fate = Fate::kDeliver;
    int copies = 0;  // 1 or 2 when delivered, else 0
    std::array<core::Instant, 2> release{};
};

class LinkModel {
  public:
    // Throws std::invalid_argument if `params` is invalid.
    LinkModel(const LinkParams& params, std::uint64_t seed);

    // Takes effect for the next datagram; the generator state and the serializer backlog stay.
    // Throws std::invalid_argument if `params` is invalid (the old parameters stay).
    void set_params(const LinkParams& params);
    const LinkParams& params() const { return params_; }

    void set_cut(bool cut) { cut_ = cut; }
    bool cut() const { return cut_; }

    // Decides the fate of a datagram of `bytes` bytes offered at `now` (non-decreasing).
    Admission admit(std::size_t bytes, core::Instant now);

    // Bytes accepted but not yet serialized at `now` (0 without a rate limit).
    std::size_t backlog_bytes(core::Instant now) const;

    // Time to serialize `bytes` at the current rate (0 without a rate limit).
    core::Duration serialization_time(std::size_t bytes) const;

  private:
    LinkParams params_;
    core::Xoshiro256 rng_;
    core::Instant link_free_at_{};  // when the serializer finishes what it holds
    bool cut_ = false;
};

// A uniform draw in [0, d] from a unit draw u in [0, 1).
core::Duration scale(core::Duration d, double u);

}  // namespace hopgate::impair
