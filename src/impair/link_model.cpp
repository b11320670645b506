#include "impair/link_model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace hopgate::impair {

std::string LinkParams::validate() const {
    if (!(loss_pct >= 0.0 && loss_pct <= 100.0)) {
        return "loss must be in [0, 100]";
    }
    if (!(dup_pct >= 0.0 && dup_pct <= 100.0)) {
        return "dup must be in [0, 100]";
    }
    if (delay.count() < 0 || delay > std::chrono::hours(1)) {
        return "delay-ms must be in [0, 3600000]";
    }
    if (jitter.count() < 0 || jitter > std::chrono::hours(1)) {
        return "jitter-ms must be in [0, 3600000]";
    }
    // NaN fails both comparisons; the upper bound keeps serialization times meaningful.
    if (!(rate_mbit >= 0.0 && rate_mbit <= 1'000'000.0)) {
        return "rate-mbit must be in [0, 1000000]";
    }
    if (rate_mbit > 0.0 && rate_mbit < 0.001) {
        return "rate-mbit must be 0 (unlimited) or at least 0.001";
    }
    if (queue_bytes < 1024 || queue_bytes > (std::size_t{1} << 30)) {
        return "queue-kb must be in [1, 1048576]";
    }
    return {};
}

core::Duration scale(core::Duration d, double u) {
    return core::Duration(
        static_cast<std::int64_t>(std::llround(static_cast<double>(d.count()) * u)));
}

LinkModel::LinkModel(const LinkParams& params, std::uint64_t seed) : rng_(seed) {
    set_params(params);
}

void LinkModel::set_params(const LinkParams& params) {
    if (auto why = params.validate(); !why.empty()) {
        throw std::invalid_argument(why);
    }
    params_ = params;
}

core::Duration LinkModel::serialization_time(std::size_t bytes) const {
    if (params_.rate_mbit <= 0.0) {
        return core::Duration(0);
    }
    // bits / (Mbit/s) = microseconds.
    const double us = static_cast<double>(bytes) * 8.0 / params_.rate_mbit;
    return core::Duration(static_cast<std::int64_t>(std::ceil(us)));
}

std::size_t LinkModel::backlog_bytes(core::Instant now) const {
    if (params_.rate_mbit <= 0.0 || link_free_at_ <= now) {
        return 0;
    }
    const double us = static_cast<double>((link_free_at_ - now).count());
    return static_cast<std::size_t>(us * params_.rate_mbit / 8.0);
}

Admission LinkModel::admit(std::size_t bytes, core::Instant now) {
    // Always four draws, so the n-th datagram's fate depends only on the seed and n.
    const double loss_u = rng_.unit();
    const double dup_u = rng_.unit();
    const double jitter_u0 = rng_.unit();
    const double jitter_u1 = rng_.unit();

    Admission a;
    if (cut_) {
        a.fate = Fate::kDropCut;
        return a;
    }
    core::Instant departs = now;
    if (params_.rate_mbit > 0.0) {
        const std::size_t backlog = backlog_bytes(now);
        if (backlog > 0 && backlog + bytes > params_.queue_bytes) {
            a.fate = Fate::kDropQueue;
            return a;
        }
        departs = std::max(now, link_free_at_) + serialization_time(bytes);
        link_free_at_ = departs;
    }
    if (loss_u * 100.0 < params_.loss_pct) {
        a.fate = Fate::kDropLoss;
        return a;
    }
    a.fate = Fate::kDeliver;
    a.copies = dup_u * 100.0 < params_.dup_pct ? 2 : 1;
    a.release[0] = departs + params_.delay + scale(params_.jitter, jitter_u0);
    a.release[1] = departs + params_.delay + scale(params_.jitter, jitter_u1);
    return a;
}

}  // namespace hopgate::impair
