#include "sim/network.hpp"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

namespace hopgate::sim {

namespace {

// splitmix64 of (seed, stream): independent, well-mixed seeds for each random stream.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) {
    std::uint64_t z = seed + stream * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

long long micros(core::Instant t) { return static_cast<long long>(t.time_since_epoch().count()); }

struct LaterAction {
    template <typename S>
    bool operator()(const S& x, const S& y) const {
        return x.at != y.at ? x.at > y.at : x.order > y.order;
    }
};

const char* describe(SendResult r) {
    switch (r) {
        case SendResult::kInFlight:
            return "in-flight";
        case SendResult::kDuplicated:
            return "duplicated";
        case SendResult::kDroppedCut:
            return "dropped-cut";
        case SendResult::kDroppedMtu:
            return "dropped-mtu";
        case SendResult::kDroppedQueue:
            return "dropped-queue";
        case SendResult::kDroppedLoss:
            return "dropped-loss";
    }
    return "?";
}

}  // namespace

Network::Network(Endpoint& a, Endpoint& b, const LinkConfig& a_to_b, const LinkConfig& b_to_a,
                 std::uint64_t seed)
    : a_(a),
      b_(b),
      ab_(a_to_b, derive_seed(seed, 1)),
      ba_(b_to_a, derive_seed(seed, 2)),
      rng_(derive_seed(seed, 3)),
      send_a_([this](std::span<const std::uint8_t> d) { send_from(Side::kA, d); }),
      send_b_([this](std::span<const std::uint8_t> d) { send_from(Side::kB, d); }) {}

void Network::schedule(core::Instant at, Action action) {
    actions_.push_back(Scheduled{std::max(at, now_), next_action_order_++, std::move(action)});
    std::push_heap(actions_.begin(), actions_.end(), LaterAction{});
}

void Network::rebind(Side side) {
    PathId& p = side == Side::kA ? path_a_ : path_b_;
    ++p;
    trace("t=%lld rebind %s path=%u", micros(now_), side == Side::kA ? "a" : "b", p);
}

bool Network::run_until(const std::function<bool()>& done, core::Instant deadline) {
    if (stalled_) {
        return false;
    }
    a_.flush(now_, send_a_);
    b_.flush(now_, send_b_);
    if (done()) {
        return true;
    }
    std::uint64_t idle = 0;  // Consecutive iterations at the same virtual time.
    for (;;) {
        const std::optional<core::Instant> next = next_event();
        if (!next || *next > deadline) {
            now_ = std::max(now_, deadline);
            return false;
        }
        if (*next > now_) {
            now_ = *next;
            idle = 0;
        } else if (++idle > stall_limit_) {
            declare_stall();
            return false;
        }

        run_actions();
        deliver(ab_, b_, "a>b");
        deliver(ba_, a_, "b>a");
        fire_timer(a_, "a");
        fire_timer(b_, "b");
        a_.flush(now_, send_a_);
        b_.flush(now_, send_b_);
        if (done()) {
            return true;
        }
    }
}

bool Network::run_for(core::Duration d) {
    run_until([] { return false; }, now_ + d);
    return !stalled_;
}

std::optional<core::Instant> Network::next_event() const {
    std::optional<core::Instant> next;
    auto consider = [&next](std::optional<core::Instant> t) {
        if (t && (!next || *t < *next)) {
            next = t;
        }
    };
    consider(ab_.next_delivery());
    consider(ba_.next_delivery());
    consider(a_.next_timeout());
    consider(b_.next_timeout());
    if (!actions_.empty()) {
        consider(actions_.front().at);
    }
    return next;
}

void Network::run_actions() {
    // Actions scheduled by these actions wait for the next iteration, so one that keeps
    // rescheduling itself "now" is caught by the stall check instead of looping here.
    const std::uint64_t limit = next_action_order_;
    while (!actions_.empty() && actions_.front().at <= now_ && actions_.front().order < limit) {
        std::pop_heap(actions_.begin(), actions_.end(), LaterAction{});
        Action action = std::move(actions_.back().action);
        const std::uint64_t order = actions_.back().order;
        actions_.pop_back();
        ++events_;
        trace("t=%lld action #%llu", micros(now_), static_cast<unsigned long long>(order));
        action();
    }
}

void Network::deliver(Link& link, Endpoint& to, const char* dir) {
    while (link.pop_due(now_, scratch_)) {
        ++events_;
        if (trace_) {
            trace("t=%lld %s deliver id=%llu len=%zu path=%u", micros(now_), dir,
                  static_cast<unsigned long long>(scratch_.id), scratch_.data.size(), scratch_.tag);
        }
        to.on_path_datagram(scratch_.data, now_, scratch_.tag);
    }
}

void Network::fire_timer(Endpoint& e, const char* name) {
    const std::optional<core::Instant> t = e.next_timeout();
    if (t && *t <= now_) {
        ++events_;
        trace("t=%lld timeout %s (due t=%lld)", micros(now_), name, micros(*t));
        e.on_timeout(now_);
    }
}

void Network::send_from(Side side, std::span<const std::uint8_t> d) {
    const bool from_a = side == Side::kA;
    Link& link = from_a ? ab_ : ba_;
    const SendResult r = link.send(d, now_, from_a ? path_a_ : path_b_);
    if (!trace_) {
        return;
    }
    trace("t=%lld %s send id=%llu len=%zu -> %s", micros(now_), from_a ? "a>b" : "b>a",
          static_cast<unsigned long long>(link.stats().sent - 1), d.size(), describe(r));
}

void Network::trace(const char* fmt, ...) const {
    if (!trace_) {
        return;
    }
    char line[256];
    va_list args;
    va_start(args, fmt);
    const int n = std::vsnprintf(line, sizeof line, fmt, args);
    va_end(args);
    if (n < 0) {
        return;
    }
    trace_(std::string_view(line, std::min(static_cast<std::size_t>(n), sizeof line - 1)));
}

void Network::declare_stall() {
    stalled_ = true;
    std::string who;
    for (const auto& [e, name] : {std::pair<Endpoint*, const char*>{&a_, "a"}, {&b_, "b"}}) {
        const std::optional<core::Instant> t = e->next_timeout();
        if (t && *t <= now_) {
            who += std::string(" endpoint ") + name +
                   "'s next_timeout() (t=" + std::to_string(micros(*t)) +
                   "us) stays at or before now after on_timeout;";
        }
    }
    if (who.empty()) {
        who =
            " events keep arriving at this instant (zero-delay ping-pong, or an action that "
            "reschedules itself now);";
    }
    stall_reason_ =
        "hopgate::sim::Network stalled: virtual time stuck at t=" + std::to_string(micros(now_)) +
        "us for " + std::to_string(stall_limit_) + " iterations;" + who + " aborting run_until";
    if (trace_) {
        trace_(stall_reason_);
    }
    std::fprintf(stderr, "%s\n", stall_reason_.c_str());
}

}  // namespace hopgate::sim
