// What an accept loop does after an accept completes, so that no listener spins.
//
// When the process is out of file descriptors (EMFILE), the system is (ENFILE) or the kernel is
// out of memory (ENOBUFS, ENOMEM), the pending connection stays in the listen queue and every
// accept fails at once: a loop that re-arms at once runs at 100 % CPU for as long as the
// shortage lasts, and logs nothing useful. AcceptBackoff re-arms at once after a success or an
// error that concerns only the one connection (those accept(2) says to treat like EAGAIN),
// and after `delay` after any other error; it logs such an error at most once per
// `log_interval` (warn "accept failed: pausing the listener", with the listener's name, the
// error and how many failures the line stands for).
//
// Usage, in the accept handler (after checking the owner is alive and not stopped):
//     backoff_.next(ec, [weak] { if (auto self = weak.lock()) self->do_accept(); });
// The re-arm function must check for itself whether the listener was stopped meanwhile.
// Destroying the AcceptBackoff (or cancel()) cancels a pending delayed re-arm.
//
// Threading: one strand (the listener's).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "core/log.hpp"

namespace hopgate::net {

enum class AcceptErrorKind {
    kNone,           // success: re-arm at once
    kAborted,        // the acceptor was closed: do not re-arm
    kPerConnection,  // that connection failed (reset before accept, ...): re-arm at once
    kResource,       // out of descriptors/memory, or unexpected: re-arm after a pause
};

AcceptErrorKind classify_accept_error(const boost::system::error_code& ec);

class AcceptBackoff {
  public:
    static constexpr std::chrono::milliseconds kDefaultDelay{50};
    static constexpr std::chrono::seconds kDefaultLogInterval{10};

    AcceptBackoff(boost::asio::any_io_executor ex, std::string listener, core::Logger log,
                  std::chrono::milliseconds delay = kDefaultDelay,
                  std::chrono::steady_clock::duration log_interval = kDefaultLogInterval);

    // Calls `rearm` now, later (after the delay) or never (kAborted), per `ec`.
    void next(const boost::system::error_code& ec, std::function<void()> rearm);
    void cancel();

    // Accept errors that paused the listener (kResource), since construction.
    std::uint64_t pauses() const { return pauses_; }
    // Sets a function called once per pause (e.g. a metric's inc()).
    void on_pause(std::function<void()> f) { on_pause_ = std::move(f); }

  private:
    boost::asio::steady_timer timer_;
    std::string listener_;
    core::Logger log_;
    std::chrono::milliseconds delay_;
    std::chrono::steady_clock::duration log_interval_;
    std::chrono::steady_clock::time_point last_log_{};
    bool logged_ = false;
    std::uint64_t unlogged_ = 0;  // pauses since the last log line
    std::uint64_t pauses_ = 0;
    std::function<void()> on_pause_;
};

}  // namespace hopgate::net
