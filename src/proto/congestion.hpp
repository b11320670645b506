// Congestion control behind one small interface (quiche-style), with three implementations:
//   - NewReno (RFC 9002 §7), the reference;
//   - CUBIC (RFC 9438);
//   - BBR (model-based, after BBRv1: windowed-max delivery rate, windowed-min RTT, pacing gain
//     cycle, cwnd = 2 x BDP) — the tunnel default, because loss-based controllers collapse under
//     random loss (see SPEC §4 and docs/BENCHMARKS.md).
// All sizes are bytes, rates bytes per second. Single-threaded; owned by one Connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/time.hpp"
#include "proto/rtt.hpp"

namespace hopgate::proto {

enum class CcAlgorithm { kNewReno, kCubic, kBbr };

// Parses "newreno", "cubic" or "bbr".
bool parse_cc_algorithm(std::string_view s, CcAlgorithm& out);
const char* cc_algorithm_name(CcAlgorithm a);

// Delivery-rate sample (draft-cheng-iccrg-delivery-rate-estimation) for one ACK.
struct RateSample {
    double delivery_rate = 0;         // bytes/s; 0 when the sample is invalid
    bool is_app_limited = false;      // the sender had nothing to send when the packet left
    std::uint64_t prior_delivered = 0;  // delivered count when the newest acked packet was sent
};

struct AckEvent {
    Instant now;
    std::uint64_t acked_bytes = 0;        // newly acknowledged in-flight bytes
    Instant largest_acked_sent_time;      // send time of the newest acknowledged packet
    std::uint64_t bytes_in_flight = 0;    // after removing the acknowledged packets
    std::uint64_t total_delivered = 0;    // cumulative delivered bytes after this ACK
    bool has_rtt_sample = false;
    Duration latest_rtt{0};
    RateSample rate;
};

struct LossEvent {
    Instant now;
    std::uint64_t lost_bytes = 0;
    Instant largest_lost_sent_time;
    std::uint64_t bytes_in_flight = 0;  // after removing the lost packets
    bool persistent_congestion = false;
};

class CongestionController {
public:
    virtual ~CongestionController() = default;
    virtual CcAlgorithm algorithm() const = 0;
    // An in-flight (congestion-controlled) packet left.
    virtual void on_sent(Instant now, std::size_t bytes, std::uint64_t bytes_in_flight) = 0;
    virtual void on_acked(const AckEvent& ev, const RttEstimator& rtt) = 0;
    virtual void on_lost(const LossEvent& ev, const RttEstimator& rtt) = 0;
    virtual std::uint64_t cwnd() const = 0;
    virtual double pacing_rate(const RttEstimator& rtt) const = 0;
    // The path MTU changed; windows are kept in packets' worth of the new size.
    virtual void set_max_datagram_size(std::size_t mss) = 0;
};

std::unique_ptr<CongestionController> make_congestion_controller(CcAlgorithm a, std::size_t mss);

}  // namespace hopgate::proto
