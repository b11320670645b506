// Conversions between the protocol core's Instant and Asio's steady clock, and the lazy timer
// a tunnel arms at its connection's next_timeout().
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>

#include "core/time.hpp"

namespace hopgate::net {

inline boost::asio::steady_timer::time_point to_steady(core::Instant t) {
    return boost::asio::steady_timer::time_point(
        std::chrono::duration_cast<boost::asio::steady_timer::duration>(t.time_since_epoch()));
}

// The decision part of LazyTimer, without Asio (unit-tested on its own).
//
// A tunnel asks for its deadline after every event, and the deadline mostly moves later (the
// idle timeout follows each received packet, the loss timer each ACK). Re-arming an OS timer
// each time costs a timerfd_settime and a cancelled wait. Instead the armed deadline stays
// while the wanted one is the same or later; when the armed one fires early, the timer is
// re-armed at the wanted deadline. Only an earlier wanted deadline re-arms at once.
class LazyDeadline {
  public:
    enum class Fire {
        kIdle,   // nothing wanted any more: leave the timer unarmed
        kRearm,  // fired early: re-arm the timer at armed()
        kDue,    // the wanted deadline has come: run the owner's timeout processing
    };

    // Records the wanted deadline (kInstantMax = none). True when the timer must be armed at
    // armed() now (nothing armed, or `want` is earlier than what is).
    bool want(core::Instant t) {
        want_ = t;
        if (t >= armed_) {
            return false;
        }
        armed_ = t;
        return true;
    }

    // The timer armed at armed() fired at `now`.
    Fire on_fire(core::Instant now) {
        armed_ = core::kInstantMax;
        if (want_ == core::kInstantMax) {
            return Fire::kIdle;
        }
        if (want_ <= now) {
            return Fire::kDue;
        }
        armed_ = want_;
        return Fire::kRearm;
    }

    // Forgets both deadlines (the timer was cancelled).
    void reset() {
        want_ = core::kInstantMax;
        armed_ = core::kInstantMax;
    }

    core::Instant wanted() const { return want_; }
    // When the OS timer is set to fire; kInstantMax when it is not armed.
    core::Instant armed() const { return armed_; }

  private:
    core::Instant want_ = core::kInstantMax;
    core::Instant armed_ = core::kInstantMax;
};

// A tunnel's one timer, armed lazily (see LazyDeadline). `fire(owner)` runs on the timer's
// executor when the wanted deadline has come and the owner (held weakly) is still alive; a
// tunnel gone means no call. The owner must own this timer, so that a live owner implies a live
// timer. Not thread-safe: use from the owner's strand.
class LazyTimer {
  public:
    template <class Executor>
    explicit LazyTimer(Executor&& ex) : timer_(std::forward<Executor>(ex)) {}

    // Wants `fire` to run at `t` (kInstantMax: no deadline; an armed timer is left to fire
    // harmlessly, it then finds nothing due).
    template <class T, class F>
    void arm(core::Instant t, const std::shared_ptr<T>& owner, F fire) {
        if (deadline_.want(t)) {
            start_wait(std::weak_ptr<T>(owner), std::move(fire));
        }
    }

    void cancel() {
        deadline_.reset();
        ++generation_;
        timer_.cancel();
    }

    // Times the OS timer was (re)armed; for tests and benchmarks.
    std::uint64_t arms() const { return arms_; }

  private:
    template <class T, class F>
    void start_wait(std::weak_ptr<T> weak, F fire) {
        ++arms_;
        const std::uint64_t gen = ++generation_;
        timer_.expires_at(to_steady(deadline_.armed()));
        timer_.async_wait([this, weak = std::move(weak), fire = std::move(fire),
                           gen](const boost::system::error_code& ec) mutable {
            if (ec) {
                return;
            }
            auto owner = weak.lock();
            // The owner owns this timer: alive owner, alive `this`. A wait superseded by a
            // later arm (its handler was already queued when it was re-armed) does nothing.
            if (!owner || gen != generation_) {
                return;
            }
            switch (deadline_.on_fire(core::steady_now())) {
                case LazyDeadline::Fire::kIdle:
                    return;
                case LazyDeadline::Fire::kRearm:
                    start_wait(std::move(weak), std::move(fire));
                    return;
                case LazyDeadline::Fire::kDue:
                    fire(*owner);
                    return;
            }
        });
    }

    boost::asio::steady_timer timer_;
    LazyDeadline deadline_;
    std::uint64_t generation_ = 0;
    std::uint64_t arms_ = 0;
};

}  // namespace hopgate::net
