#include "proto/congestion.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace hopgate::proto {
namespace {

constexpr std::uint64_t kInitialWindowPackets = 10;
constexpr std::uint64_t kMinWindowPackets = 2;
constexpr std::uint64_t kInfinite = std::numeric_limits<std::uint64_t>::max();

double secs(Duration d) { return core::to_seconds(d); }

// Shared bookkeeping of the two loss-based controllers: recovery period and window floor.
class LossBased : public CongestionController {
public:
    explicit LossBased(std::size_t mss)
        : mss_(mss), cwnd_(kInitialWindowPackets * mss), ssthresh_(kInfinite) {}

    void on_sent(Instant, std::size_t, std::uint64_t) override {}
    std::uint64_t cwnd() const override { return cwnd_; }
    double pacing_rate(const RttEstimator& rtt) const override {
        // RFC 9002 §7.7: N x cwnd / srtt, N > 1 so that pacing does not limit the window;
        // a larger N in slow start lets the window double each round trip.
        const double n = cwnd_ < ssthresh_ ? 2.0 : 1.25;
        const double srtt = std::max(secs(rtt.smoothed()), 1e-4);
        return n * static_cast<double>(cwnd_) / srtt;
    }
    void set_max_datagram_size(std::size_t mss) override {
        cwnd_ = cwnd_ / mss_ * mss;
        mss_ = mss;
        cwnd_ = std::max(cwnd_, min_window());
    }

protected:
    std::uint64_t min_window() const { return kMinWindowPackets * mss_; }
    bool in_recovery(Instant sent_time) const {
        return has_recovery_ && sent_time <= recovery_start_;
    }
    // Returns true if this loss starts a new congestion event.
    bool enter_recovery(const LossEvent& ev) {
        if (in_recovery(ev.largest_lost_sent_time)) {
            return false;
        }
        has_recovery_ = true;
        recovery_start_ = ev.now;
        return true;
    }

    std::size_t mss_;
    std::uint64_t cwnd_;
    std::uint64_t ssthresh_;
    bool has_recovery_ = false;
    Instant recovery_start_{};
};

class NewReno final : public LossBased {
public:
    using LossBased::LossBased;
    CcAlgorithm algorithm() const override { return CcAlgorithm::kNewReno; }

    void on_acked(const AckEvent& ev, const RttEstimator&) override {
        if (in_recovery(ev.largest_acked_sent_time) || ev.rate.is_app_limited) {
            return;
        }
        if (cwnd_ < ssthresh_) {
            cwnd_ += ev.acked_bytes;
            return;
        }
        acc_ += ev.acked_bytes;
        while (acc_ >= cwnd_) {
            acc_ -= cwnd_;
            cwnd_ += mss_;
        }
    }
    void on_lost(const LossEvent& ev, const RttEstimator&) override {
        if (ev.persistent_congestion) {
            cwnd_ = min_window();
            has_recovery_ = true;
            recovery_start_ = ev.now;
            return;
        }
        if (!enter_recovery(ev)) {
            return;
        }
        ssthresh_ = std::max(cwnd_ / 2, min_window());
        cwnd_ = ssthresh_;
        acc_ = 0;
    }

private:
    std::uint64_t acc_ = 0;
};

class Cubic final : public LossBased {
public:
    using LossBased::LossBased;
    CcAlgorithm algorithm() const override { return CcAlgorithm::kCubic; }

    void on_acked(const AckEvent& ev, const RttEstimator& rtt) override {
        if (in_recovery(ev.largest_acked_sent_time) || ev.rate.is_app_limited) {
            return;
        }
        if (cwnd_ < ssthresh_) {
            cwnd_ += ev.acked_bytes;
            return;
        }
        const double mss = static_cast<double>(mss_);
        if (!epoch_started_) {
            epoch_started_ = true;
            epoch_start_ = ev.now;
            const double cw = static_cast<double>(cwnd_);
            if (w_max_ < cw) {
                w_max_ = cw;
                k_ = 0;
            } else {
                k_ = std::cbrt((w_max_ - cw) / mss / kC);
            }
            w_est_ = cw;
        }
        const double t = secs(ev.now - epoch_start_);
        const double cw = static_cast<double>(cwnd_);
        const double target =
            std::clamp(w_cubic(t + secs(rtt.smoothed())), cw, 1.5 * cw);
        // Reno-friendly estimate (RFC 9438 §4.3).
        w_est_ += kAlpha * mss * static_cast<double>(ev.acked_bytes) / cw;
        double next = cw;
        if (w_cubic(t) < w_est_) {
            next = std::max(cw, w_est_);
        } else {
            next = cw + (target - cw) * static_cast<double>(ev.acked_bytes) / cw;
        }
        cwnd_ = static_cast<std::uint64_t>(next);
    }
    void on_lost(const LossEvent& ev, const RttEstimator&) override {
        if (ev.persistent_congestion) {
            cwnd_ = min_window();
            w_max_ = 0;
            epoch_started_ = false;
            has_recovery_ = true;
            recovery_start_ = ev.now;
            return;
        }
        if (!enter_recovery(ev)) {
            return;
        }
        const double cw = static_cast<double>(cwnd_);
        // Fast convergence (RFC 9438 §4.7).
        w_max_ = cw < w_max_ ? cw * (1.0 + kBeta) / 2.0 : cw;
        ssthresh_ = std::max(static_cast<std::uint64_t>(cw * kBeta), min_window());
        cwnd_ = ssthresh_;
        epoch_started_ = false;
    }

private:
    static constexpr double kC = 0.4;
    static constexpr double kBeta = 0.7;
    static constexpr double kAlpha = 3.0 * (1.0 - kBeta) / (1.0 + kBeta);

    double w_cubic(double t) const {
        const double d = t - k_;
        return kC * d * d * d * static_cast<double>(mss_) + w_max_;
    }

    bool epoch_started_ = false;
    Instant epoch_start_{};
    double w_max_ = 0;
    double k_ = 0;
    double w_est_ = 0;
};

// BBR after BBRv1 (Cardwell et al., draft-cardwell-iccrg-bbr-congestion-control-00).
class Bbr final : public CongestionController {
public:
    explicit Bbr(std::size_t mss) : mss_(mss), cwnd_(kInitialWindowPackets * mss) {}
    CcAlgorithm algorithm() const override { return CcAlgorithm::kBbr; }

    void on_sent(Instant, std::size_t, std::uint64_t) override {}

    void on_acked(const AckEvent& ev, const RttEstimator& rtt) override {
        // Round counting.
        round_start_ = false;
        if (ev.rate.prior_delivered >= next_round_delivered_) {
            next_round_delivered_ = ev.total_delivered;
            ++round_count_;
            round_start_ = true;
        }
        // Bottleneck bandwidth: windowed max over kBwWindowRounds rounds.
        if (ev.rate.delivery_rate > 0 &&
            (!ev.rate.is_app_limited || ev.rate.delivery_rate >= btl_bw())) {
            update_bw(ev.rate.delivery_rate);
        }
        check_full_pipe(ev);
        // Min RTT: windowed min over 10 s.
        bool min_rtt_expired = has_min_rtt_ && ev.now > min_rtt_stamp_ + kMinRttWindow;
        if (ev.has_rtt_sample && (!has_min_rtt_ || ev.latest_rtt <= min_rtt_ || min_rtt_expired)) {
            min_rtt_ = ev.latest_rtt;
            min_rtt_stamp_ = ev.now;
            has_min_rtt_ = true;
            min_rtt_expired = false;
        }
        // A gain cycle phase lasts at least one round trip as the application sees it. On
        // paths where batching (event loops, GSO/GRO, interrupt coalescing) dominates, the
        // smoothed RTT is many times min_rtt; a min_rtt-long probing phase would then end
        // before any ACK could show the higher rate, and BBR could never regain bandwidth it
        // lost to an application-limited spell.
        phase_len_ = std::max(min_rtt_, rtt.smoothed());
        update_state(ev, min_rtt_expired);
        update_pacing_rate(rtt);
        update_cwnd(ev, rtt);
    }

    void on_lost(const LossEvent& ev, const RttEstimator&) override {
        if (ev.persistent_congestion) {
            cwnd_ = kMinPipeCwndPackets * mss_;
        }
        // BBRv1 does not treat random loss as a congestion signal; that is the point.
    }

    std::uint64_t cwnd() const override {
        if (state_ == State::kProbeRtt) {
            return std::min<std::uint64_t>(cwnd_, kMinPipeCwndPackets * mss_);
        }
        return cwnd_;
    }

    double pacing_rate(const RttEstimator& rtt) const override {
        if (pacing_rate_ <= 0) {
            return initial_pacing_rate(rtt);
        }
        return pacing_rate_;
    }

    void set_max_datagram_size(std::size_t mss) override {
        cwnd_ = std::max<std::uint64_t>(cwnd_ / mss_ * mss, kMinPipeCwndPackets * mss);
        mss_ = mss;
    }

private:
    enum class State { kStartup, kDrain, kProbeBw, kProbeRtt };
    static constexpr double kHighGain = 2.885;  // 2/ln(2)
    static constexpr double kCwndGain = 2.0;
    static constexpr double kPacingMargin = 0.99;
    static constexpr std::size_t kBwWindowRounds = 10;
    static constexpr std::uint64_t kMinPipeCwndPackets = 4;
    static constexpr Duration kMinRttWindow = std::chrono::seconds(10);
    static constexpr Duration kProbeRttDuration = std::chrono::milliseconds(200);
    static constexpr std::array<double, 8> kCycleGains{1.25, 0.75, 1, 1, 1, 1, 1, 1};

    double btl_bw() const {
        double m = 0;
        for (const auto& s : bw_samples_) {
            if (s.round + kBwWindowRounds > round_count_) {
                m = std::max(m, s.bw);
            }
        }
        return m;
    }
    void update_bw(double bw) {
        auto& slot = bw_samples_[round_count_ % kBwWindowRounds];
        if (slot.round != round_count_) {
            slot = {round_count_, bw};
        } else {
            slot.bw = std::max(slot.bw, bw);
        }
    }
    std::uint64_t bdp(double gain) const {
        const double bw = btl_bw();
        if (bw <= 0 || !has_min_rtt_) {
            return kInitialWindowPackets * mss_;
        }
        return static_cast<std::uint64_t>(gain * bw * core::to_seconds(min_rtt_));
    }
    void check_full_pipe(const AckEvent& ev) {
        if (filled_pipe_ || !round_start_ || ev.rate.is_app_limited) {
            return;
        }
        const double bw = btl_bw();
        if (bw >= full_bw_ * 1.25) {
            full_bw_ = bw;
            full_bw_count_ = 0;
            return;
        }
        if (++full_bw_count_ >= 3) {
            filled_pipe_ = true;
        }
    }
    void enter_probe_bw(Instant now) {
        state_ = State::kProbeBw;
        cwnd_gain_ = kCwndGain;
        // Start in a cruising phase (deterministic stand-in for BBR's random phase choice).
        cycle_index_ = 2;
        pacing_gain_ = kCycleGains[cycle_index_];
        cycle_stamp_ = now;
    }
    void update_state(const AckEvent& ev, bool min_rtt_expired) {
        switch (state_) {
            case State::kStartup:
                if (filled_pipe_) {
                    state_ = State::kDrain;
                    pacing_gain_ = 1.0 / kHighGain;
                    cwnd_gain_ = kHighGain;
                }
                break;
            case State::kDrain:
                if (ev.bytes_in_flight <= bdp(1.0)) {
                    enter_probe_bw(ev.now);
                }
                break;
            case State::kProbeBw: {
                bool advance = ev.now - cycle_stamp_ > phase_len_;
                if (pacing_gain_ > 1.0) {
                    advance = advance && ev.bytes_in_flight >= bdp(pacing_gain_);
                } else if (pacing_gain_ < 1.0) {
                    advance = advance || ev.bytes_in_flight <= bdp(1.0);
                }
                if (advance) {
                    cycle_index_ = (cycle_index_ + 1) % kCycleGains.size();
                    pacing_gain_ = kCycleGains[cycle_index_];
                    cycle_stamp_ = ev.now;
                }
                break;
            }
            case State::kProbeRtt:
                if (!probe_rtt_done_set_ && ev.bytes_in_flight <= kMinPipeCwndPackets * mss_) {
                    probe_rtt_done_set_ = true;
                    probe_rtt_done_ = ev.now + std::max(kProbeRttDuration, min_rtt_);
                    probe_rtt_round_done_ = false;
                    next_round_delivered_ = ev.total_delivered;
                } else if (probe_rtt_done_set_) {
                    if (round_start_) {
                        probe_rtt_round_done_ = true;
                    }
                    if (probe_rtt_round_done_ && ev.now >= probe_rtt_done_) {
                        min_rtt_stamp_ = ev.now;
                        cwnd_ = std::max(cwnd_, prior_cwnd_);
                        if (filled_pipe_) {
                            enter_probe_bw(ev.now);
                        } else {
                            state_ = State::kStartup;
                            pacing_gain_ = kHighGain;
                            cwnd_gain_ = kHighGain;
                        }
                    }
                }
                break;
        }
        if (min_rtt_expired && state_ != State::kProbeRtt) {
            state_ = State::kProbeRtt;
            pacing_gain_ = 1.0;
            prior_cwnd_ = cwnd_;
            probe_rtt_done_set_ = false;
        }
    }
    double initial_pacing_rate(const RttEstimator& rtt) const {
        const double srtt = std::max(core::to_seconds(rtt.smoothed()), 1e-4);
        return kHighGain * static_cast<double>(kInitialWindowPackets * mss_) / srtt;
    }
    // BBRSetPacingRate: until the pipe is known to be full the rate only grows. A sender that
    // has been application-limited (a client that mostly acknowledges) has only tiny delivery
    // rate samples; pacing a sudden burst of window updates or an upload at that rate would
    // stall it for hundreds of milliseconds per packet.
    void update_pacing_rate(const RttEstimator& rtt) {
        if (pacing_rate_ <= 0 && rtt.has_sample()) {
            pacing_rate_ = initial_pacing_rate(rtt);
        }
        const double rate = pacing_gain_ * btl_bw() * kPacingMargin;
        if (rate > 0 && (filled_pipe_ || rate > pacing_rate_)) {
            pacing_rate_ = rate;
        }
    }

    // Send quantum as Linux BBR: about 1 ms of data at the pacing rate (64 KiB cap). Allowing
    // three quanta above the BDP keeps the pipe full when the RTT is dominated by batching
    // (loopback, GSO, interrupt coalescing) rather than by propagation.
    std::uint64_t send_quantum() const {
        const double q = pacing_gain_ * btl_bw() * 1e-3;
        return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(q), mss_, 64 * 1024);
    }

    void update_cwnd(const AckEvent& ev, const RttEstimator&) {
        const std::uint64_t target = bdp(cwnd_gain_) + 3 * send_quantum();
        if (filled_pipe_) {
            cwnd_ = std::min(cwnd_ + ev.acked_bytes, target);
        } else if (cwnd_ < target || ev.total_delivered < kInitialWindowPackets * mss_) {
            cwnd_ += ev.acked_bytes;
        }
        cwnd_ = std::max<std::uint64_t>(cwnd_, kMinPipeCwndPackets * mss_);
    }

    struct BwSample {
        std::uint64_t round = 0;
        double bw = 0;
    };

    std::size_t mss_;
    std::uint64_t cwnd_;
    State state_ = State::kStartup;
    double pacing_gain_ = kHighGain;
    double pacing_rate_ = 0;
    double cwnd_gain_ = kHighGain;
    std::array<BwSample, kBwWindowRounds> bw_samples_{};
    std::uint64_t round_count_ = 0;
    std::uint64_t next_round_delivered_ = 0;
    bool round_start_ = false;
    double full_bw_ = 0;
    int full_bw_count_ = 0;
    bool filled_pipe_ = false;
    bool has_min_rtt_ = false;
    Duration min_rtt_{0};
    Duration phase_len_{0};
    Instant min_rtt_stamp_{};
    std::size_t cycle_index_ = 0;
    Instant cycle_stamp_{};
    bool probe_rtt_done_set_ = false;
    bool probe_rtt_round_done_ = false;
    Instant probe_rtt_done_{};
    std::uint64_t prior_cwnd_ = 0;
};

}  // namespace

bool parse_cc_algorithm(std::string_view s, CcAlgorithm& out) {
    if (s == "newreno") {
        out = CcAlgorithm::kNewReno;
    } else if (s == "cubic") {
        out = CcAlgorithm::kCubic;
    } else if (s == "bbr") {
        out = CcAlgorithm::kBbr;
    } else {
        return false;
    }
    return true;
}

const char* cc_algorithm_name(CcAlgorithm a) {
    switch (a) {
        case CcAlgorithm::kNewReno: return "newreno";
        case CcAlgorithm::kCubic: return "cubic";
        case CcAlgorithm::kBbr: return "bbr";
    }
    return "?";
}

std::unique_ptr<CongestionController> make_congestion_controller(CcAlgorithm a, std::size_t mss) {
    switch (a) {
        case CcAlgorithm::kNewReno: return std::make_unique<NewReno>(mss);
        case CcAlgorithm::kCubic: return std::make_unique<Cubic>(mss);
        case CcAlgorithm::kBbr: return std::make_unique<Bbr>(mss);
    }
    return std::make_unique<Bbr>(mss);
}

}  // namespace hopgate::proto
