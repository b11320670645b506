// Two endpoints joined by two simulated links, driven by a virtual-time event loop.
//
// The endpoints are sans-I/O state machines (see Endpoint). The network owns virtual time: it
// jumps straight from one event to the next (a datagram arriving, an endpoint timer, a scheduled
// test action), so a minute of simulated traffic runs in milliseconds, and a run is an exact
// function of the seed, the link configs, the endpoints and the scheduled actions.
// Single-threaded; no sockets, no clock reads.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/random.hpp"
#include "core/time.hpp"
#include "sim/link.hpp"

namespace hopgate::sim {

// Identifies the network path a datagram came over; changes when the sender is rebound (NAT
// rebinding). Starts at 0 for both sides.
using PathId = std::uint32_t;

// What the simulator drives. Implementations adapt the protocol core (or a test stub).
class Endpoint {
public:
    virtual ~Endpoint() = default;

    // A datagram arrived at virtual time `now`. The span is valid only during the call.
    virtual void on_datagram(std::span<const std::uint8_t> d, core::Instant now) = 0;

    // Same, also saying which path it came over. The default forwards to on_datagram for
    // endpoints that ignore paths. (A distinct name rather than an overload, so that overriding
    // only one of them does not trip -Woverloaded-virtual.)
    virtual void on_path_datagram(std::span<const std::uint8_t> d, core::Instant now,
                                  PathId /*path*/) {
        on_datagram(d, now);
    }

    // The timer from next_timeout() is due (it may be called a little late, never early).
    virtual void on_timeout(core::Instant now) = 0;

    // When on_timeout should next be called; nullopt = no timer. Must move past `now` once the
    // timer has fired, or the network reports a stall.
    virtual std::optional<core::Instant> next_timeout() const = 0;

    // Write every datagram the endpoint wants to send now; `send` may be called many times. The
    // span passed to `send` only needs to live until `send` returns.
    virtual void flush(core::Instant now,
                       const std::function<void(std::span<const std::uint8_t>)>& send) = 0;
};

enum class Side { kA, kB };

class Network {
public:
    using Action = std::function<void()>;
    using TraceFn = std::function<void(std::string_view)>;

    // Iterations without virtual time advancing before run_until gives up as stalled.
    static constexpr std::uint64_t kDefaultStallLimit = 1'000'000;

    // The endpoints must outlive the network. Link seeds are derived from `seed`. Throws
    // std::invalid_argument if a link config is invalid.
    Network(Endpoint& a, Endpoint& b, const LinkConfig& a_to_b, const LinkConfig& b_to_a,
            std::uint64_t seed);
    Network(const Network&) = delete;
    Network& operator=(const Network&) = delete;

    // Virtual time; starts at core::kInstantZero.
    core::Instant now() const { return now_; }

    Link& link_ab() { return ab_; }
    Link& link_ba() { return ba_; }
    const Link& link_ab() const { return ab_; }
    const Link& link_ba() const { return ba_; }

    // A seeded generator for tests that want randomness of their own (independent of the links).
    core::Random& rng() { return rng_; }

    // Runs `action` at virtual time `at` (at the current time if `at` is in the past), before
    // deliveries and timers of that instant. Actions at the same instant run in scheduling
    // order. Typical uses: set_config on a link (lower the MTU, cut, restore), rebind.
    void schedule(core::Instant at, Action action);

    // NAT rebinding: datagrams that `side` sends from now on carry a new path id, which the
    // receiver sees through Endpoint::on_path_datagram. Datagrams already in flight keep the old
    // one. Replies still reach `side`: the path id is a label, not routing.
    void rebind(Side side);
    PathId path(Side side) const { return side == Side::kA ? path_a_ : path_b_; }

    // The event loop. Flushes both endpoints, then repeatedly: advance virtual time to the
    // earliest pending event; run due actions, deliver due datagrams (a->b, then b->a), fire due
    // endpoint timers (a, then b); flush both endpoints; check `done`.
    // Returns true as soon as `done()` is true. Returns false, with now() == deadline (unless
    // that is in the past), when the next event is past `deadline` or nothing is pending; events
    // exactly at the deadline run.
    // Returns false with stalled() set if virtual time stops advancing for the stall limit's
    // number of iterations (e.g. an endpoint whose timer stays in the past); after a stall every
    // call returns false at once.
    bool run_until(const std::function<bool()>& done, core::Instant deadline);
    // run_until with a `done` that is never true; returns !stalled().
    bool run_for(core::Duration d);

    bool stalled() const { return stalled_; }
    // Why the run stalled, for the test's failure message; empty if it did not.
    const std::string& stall_reason() const { return stall_reason_; }
    void set_stall_limit(std::uint64_t iterations) { stall_limit_ = iterations; }

    // Datagrams delivered + timeouts fired + actions run, since construction.
    std::uint64_t events_processed() const { return events_; }

    // Receives one line per event (send and its fate, delivery, timeout, action, stall), with
    // the virtual time. For debugging a failing seed; costs nothing when unset.
    void set_trace(TraceFn trace) { trace_ = std::move(trace); }

private:
    struct Scheduled {
        core::Instant at;
        std::uint64_t order;
        Action action;
    };

    std::optional<core::Instant> next_event() const;
    void run_actions();
    void deliver(Link& link, Endpoint& to, const char* dir);
    void fire_timer(Endpoint& e, const char* name);
    void send_from(Side side, std::span<const std::uint8_t> d);
    [[gnu::format(printf, 2, 3)]] void trace(const char* fmt, ...) const;
    void declare_stall();

    Endpoint& a_;
    Endpoint& b_;
    Link ab_;
    Link ba_;
    core::Xoshiro256 rng_;

    core::Instant now_{};
    PathId path_a_ = 0;
    PathId path_b_ = 0;

    std::vector<Scheduled> actions_;  // Min-heap on (at, order).
    std::uint64_t next_action_order_ = 0;

    // Built once: the flush callbacks, and a recycled delivery buffer.
    std::function<void(std::span<const std::uint8_t>)> send_a_;
    std::function<void(std::span<const std::uint8_t>)> send_b_;
    Delivered scratch_;

    std::uint64_t events_ = 0;
    std::uint64_t stall_limit_ = kDefaultStallLimit;
    bool stalled_ = false;
    std::string stall_reason_;
    TraceFn trace_;
};

}  // namespace hopgate::sim
