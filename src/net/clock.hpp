// Conversions between the protocol core's Instant and Asio's steady clock.
#pragma once

#include <boost/asio/steady_timer.hpp>

#include "core/time.hpp"

namespace hopgate::net {

inline boost::asio::steady_timer::time_point to_steady(core::Instant t) {
    return boost::asio::steady_timer::time_point(
        std::chrono::duration_cast<boost::asio::steady_timer::duration>(t.time_since_epoch()));
}

}  // namespace hopgate::net
