#include "sim/link.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace hopgate::sim {

namespace {

void check_probability(double p, const char* name) {
    // Written so that NaN fails too.
    if (!(p >= 0.0 && p <= 1.0)) {
        throw std::invalid_argument(std::string("LinkConfig.") + name + " must be in [0, 1], got " +
                                    std::to_string(p));
    }
}

// std::push_heap builds a max-heap; "later" as "less" makes the earliest flight the top.
struct Later {
    template <typename F>
    bool operator()(const F& x, const F& y) const {
        return x.at != y.at ? x.at > y.at : x.order > y.order;
    }
};

}  // namespace

void LinkConfig::validate() const {
    check_probability(loss, "loss");
    check_probability(burst_enter, "burst_enter");
    check_probability(burst_exit, "burst_exit");
    check_probability(burst_loss, "burst_loss");
    check_probability(dup, "dup");
    check_probability(corrupt, "corrupt");
    if (delay.count() < 0 || jitter.count() < 0) {
        throw std::invalid_argument("LinkConfig.delay and .jitter must not be negative");
    }
}

Link::Link(const LinkConfig& config, std::uint64_t seed) : config_(config), rng_(seed) {
    config_.validate();
}

SendResult Link::send(std::span<const std::uint8_t> datagram, core::Instant now,
                      std::uint32_t tag) {
    const std::uint64_t id = stats_.sent;
    ++stats_.sent;
    stats_.bytes_sent += datagram.size();

    if (config_.cut) {
        ++stats_.dropped_cut;
        return SendResult::kDroppedCut;
    }
    if (config_.mtu != 0 && datagram.size() > config_.mtu) {
        ++stats_.dropped_mtu;
        return SendResult::kDroppedMtu;
    }

    core::Instant departure = now;
    if (config_.rate_bps != 0) {
        drain_queue(now);
        if (!queue_has_room(datagram.size())) {
            ++stats_.dropped_queue;
            return SendResult::kDroppedQueue;
        }
        departure = serialize(datagram.size(), now);
        queue_.push_back(Queued{departure, datagram.size()});
        queue_bytes_ += datagram.size();
        stats_.max_queue_bytes = std::max<std::uint64_t>(stats_.max_queue_bytes, queue_bytes_);
        stats_.max_queue_packets = std::max<std::uint64_t>(stats_.max_queue_packets, queue_.size());
    }

    if (lose()) {
        ++stats_.dropped_loss;
        return SendResult::kDroppedLoss;
    }
    schedule(datagram, departure + config_.delay + draw_jitter(), id, tag);
    if (config_.dup > 0.0 && rng_.chance(config_.dup)) {
        ++stats_.duplicated;
        schedule(datagram, departure + config_.delay + draw_jitter(), id, tag);
        return SendResult::kDuplicated;
    }
    return SendResult::kInFlight;
}

std::optional<core::Instant> Link::next_delivery() const {
    if (flights_.empty()) {
        return std::nullopt;
    }
    return flights_.front().at;
}

bool Link::pop_due(core::Instant now, Delivered& out) {
    if (flights_.empty() || flights_.front().at > now) {
        return false;
    }
    std::pop_heap(flights_.begin(), flights_.end(), Later{});
    const Flight f = flights_.back();
    flights_.pop_back();

    // Hand the payload over and keep the caller's old buffer for reuse.
    out.data.swap(buffers_[f.slot]);
    buffers_[f.slot].clear();
    free_buffers_.push_back(f.slot);

    if (config_.corrupt > 0.0 && !out.data.empty() && rng_.chance(config_.corrupt)) {
        out.data[rng_.uniform(out.data.size())] ^= static_cast<std::uint8_t>(1 + rng_.uniform(255));
    }
    out.at = f.at;
    out.id = f.id;
    out.tag = f.tag;
    ++stats_.delivered;
    stats_.bytes_delivered += out.data.size();
    return true;
}

void Link::set_config(const LinkConfig& config) {
    config.validate();
    const bool cutting = config.cut && !config_.cut;
    const bool rate_changed = config.rate_bps != config_.rate_bps;
    config_ = config;
    if (cutting) {
        drop_in_flight();
    }
    if (rate_changed) {
        // The remainder was in units of the old rate.
        carry_ = 0;
    }
}

void Link::drain_queue(core::Instant now) {
    while (!queue_.empty() && queue_.front().done <= now) {
        queue_bytes_ -= queue_.front().size;
        queue_.pop_front();
    }
}

bool Link::queue_has_room(std::size_t size) const {
    if (config_.queue_packets != 0 && queue_.size() + 1 > config_.queue_packets) {
        return false;
    }
    if (config_.queue_bytes != 0 && queue_bytes_ + size > config_.queue_bytes) {
        return false;
    }
    return true;
}

core::Instant Link::serialize(std::size_t size, core::Instant now) {
    if (free_at_ < now) {
        // The wire went idle: start fresh, forgetting the sub-microsecond remainder.
        free_at_ = now;
        carry_ = 0;
    }
    // Exact integer arithmetic so that N back-to-back datagrams take exactly N * size * 8 / rate.
    const std::uint64_t rate = config_.rate_bps;
    const std::uint64_t numerator = static_cast<std::uint64_t>(size) * 8u * 1'000'000u + carry_;
    free_at_ += core::Duration(static_cast<core::Duration::rep>(numerator / rate));
    carry_ = numerator % rate;
    return free_at_;
}

bool Link::lose() {
    // Random draws are skipped when a probability is zero; determinism only needs the same
    // draws for the same config and calls, which this keeps.
    if (bad_state_) {
        if (config_.burst_exit > 0.0 && rng_.chance(config_.burst_exit)) {
            bad_state_ = false;
        }
    } else if (config_.burst_enter > 0.0 && rng_.chance(config_.burst_enter)) {
        bad_state_ = true;
    }
    const double p = bad_state_ ? config_.burst_loss : config_.loss;
    return p > 0.0 && rng_.chance(p);
}

core::Duration Link::draw_jitter() {
    const auto j = config_.jitter.count();
    if (j <= 0) {
        return core::Duration(0);
    }
    return core::Duration(
        static_cast<core::Duration::rep>(rng_.uniform(static_cast<std::uint64_t>(j) + 1)));
}

void Link::schedule(std::span<const std::uint8_t> datagram, core::Instant at, std::uint64_t id,
                    std::uint32_t tag) {
    std::uint32_t slot;
    if (free_buffers_.empty()) {
        slot = static_cast<std::uint32_t>(buffers_.size());
        buffers_.emplace_back();
    } else {
        slot = free_buffers_.back();
        free_buffers_.pop_back();
    }
    buffers_[slot].assign(datagram.begin(), datagram.end());
    flights_.push_back(Flight{at, next_order_++, id, slot, tag});
    std::push_heap(flights_.begin(), flights_.end(), Later{});
}

void Link::drop_in_flight() {
    stats_.dropped_cut += flights_.size();
    for (const Flight& f : flights_) {
        buffers_[f.slot].clear();
        free_buffers_.push_back(f.slot);
    }
    flights_.clear();
    queue_.clear();
    queue_bytes_ = 0;
    free_at_ = core::Instant{};
    carry_ = 0;
}

}  // namespace hopgate::sim
