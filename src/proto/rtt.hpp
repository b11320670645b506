// RTT estimation as RFC 9002 §5.
#pragma once

#include <algorithm>

#include "core/time.hpp"

namespace hopgate::proto {

using core::Duration;
using core::Instant;

inline constexpr Duration kGranularity = std::chrono::milliseconds(1);

class RttEstimator {
public:
    explicit RttEstimator(Duration initial_rtt) : smoothed_(initial_rtt), rttvar_(initial_rtt / 2) {}

    // `ack_delay` is already clamped to the peer's max_ack_delay by the caller.
    void update(Duration latest, Duration ack_delay) {
        latest_ = latest;
        if (!has_sample_) {
            has_sample_ = true;
            min_ = latest;
            smoothed_ = latest;
            rttvar_ = latest / 2;
            return;
        }
        min_ = std::min(min_, latest);
        Duration adjusted = latest;
        if (latest >= min_ + ack_delay) {
            adjusted = latest - ack_delay;
        }
        const Duration diff = smoothed_ > adjusted ? smoothed_ - adjusted : adjusted - smoothed_;
        rttvar_ = (3 * rttvar_ + diff) / 4;
        smoothed_ = (7 * smoothed_ + adjusted) / 8;
    }

    // Probe timeout before backoff: srtt + max(4*rttvar, granularity) + max_ack_delay.
    Duration pto(Duration max_ack_delay) const {
        return smoothed_ + std::max(4 * rttvar_, kGranularity) + max_ack_delay;
    }

    bool has_sample() const { return has_sample_; }
    Duration smoothed() const { return smoothed_; }
    Duration rttvar() const { return rttvar_; }
    Duration latest() const { return latest_; }
    Duration min() const { return has_sample_ ? min_ : smoothed_; }

private:
    bool has_sample_ = false;
    Duration smoothed_;
    Duration rttvar_;
    Duration latest_{0};
    Duration min_{0};
};

}  // namespace hopgate::proto
