// Conversions between the protocol core's Instant and Asio's steady clock.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "core/time.hpp"

namespace hopgate::net {

inline boost::asio::steady_timer::time_point to_steady(core::Instant t) {
    return boost::asio::steady_timer::time_point(
        std::chrono::duration_cast<boost::asio::steady_timer::duration>(t.time_since_epoch()));
}

// Arms a tunnel's one timer for `t` (cancels it when t is kInstantMax). On expiry `fire` runs
// with the tunnel, if it is still alive; a timer re-armed or cancelled meanwhile does nothing.
template <class T, class F>
void arm_timer_at(boost::asio::steady_timer& timer, core::Instant t, const std::shared_ptr<T>& self,
                  F fire) {
    if (t == core::kInstantMax) {
        timer.cancel();
        return;
    }
    timer.expires_at(to_steady(t));
    timer.async_wait([weak = std::weak_ptr<T>(self), fire](const boost::system::error_code& ec) {
        if (ec) {
            return;
        }
        if (auto s = weak.lock()) {
            fire(*s);
        }
    });
}

}  // namespace hopgate::net
