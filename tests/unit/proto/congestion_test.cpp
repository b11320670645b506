// Congestion controllers in isolation: BBR's pacing-rate rule.
#include <gtest/gtest.h>

#include "proto/congestion.hpp"
#include "proto/rtt.hpp"

namespace hopgate::proto {
namespace {

using namespace std::chrono_literals;

// Feeds one acknowledgement of `bytes` with a delivery-rate sample to `cc`.
void ack(CongestionController& cc, const RttEstimator& rtt, Instant now, std::uint64_t bytes,
         std::uint64_t& delivered, double rate, bool app_limited) {
    AckEvent ev;
    ev.now = now;
    ev.acked_bytes = bytes;
    ev.largest_acked_sent_time = now - rtt.smoothed();
    ev.bytes_in_flight = 0;
    ev.rate.prior_delivered = delivered;
    delivered += bytes;
    ev.total_delivered = delivered;
    ev.has_rtt_sample = true;
    ev.latest_rtt = rtt.smoothed();
    ev.rate.delivery_rate = rate;
    ev.rate.is_app_limited = app_limited;
    cc.on_acked(ev, rtt);
}

// A sender that has only ever been application-limited (a tunnel client that mostly sends ACKs
// and window updates) has tiny delivery-rate samples. Before the pipe is known to be full its
// pacing rate must not fall to them: a sudden burst would otherwise be paced at a few kB/s.
TEST(Bbr, AppLimitedSamplesDoNotThrottlePacingBeforeThePipeIsFull) {
    auto cc = make_congestion_controller(CcAlgorithm::kBbr, 1200);
    RttEstimator rtt(100ms);
    rtt.update(2ms, 0us);
    Instant now{};
    std::uint64_t delivered = 0;
    const double initial = cc->pacing_rate(rtt);
    EXPECT_GT(initial, 10e6);  // 2.885 x 10 packets / 2 ms
    for (int i = 0; i < 50; ++i) {
        now += 100ms;
        ack(*cc, rtt, now, 100, delivered, 2000.0, true);  // 2 kB/s samples
    }
    EXPECT_GE(cc->pacing_rate(rtt), initial);
    // Real, non-app-limited samples above the initial rate raise it.
    for (int i = 0; i < 5; ++i) {
        now += 2ms;
        ack(*cc, rtt, now, 120000, delivered, 60e6, false);
    }
    EXPECT_GT(cc->pacing_rate(rtt), 50e6);
}

}  // namespace
}  // namespace hopgate::proto
