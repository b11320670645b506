// Receive-window credit shared by many connections (SPEC §4: "a global memory budget stops
// granting credit under pressure").
//
// What a connection may have buffered on its receive side is bounded by its connection window.
// Every connection always gets its initial window; growing past it (window auto-tuning) is
// reserved here first, and is refused once the budget is spent. Under pressure (more than three
// quarters reserved) a connection may not grow past its fair share (capacity / connections), and
// one that holds more halves its window at each credit update and gives the difference back, so
// busy tunnels share the budget while a lone tunnel may use all of it. (An idle tunnel keeps its
// reservation until it moves data again.) The reservation is returned in full when the connection
// ends. So, across all connections sharing one budget:
//     receive buffering <= sum of initial connection windows + capacity.
//
// Sans-I/O like the rest of proto; thread-safe because connections on different threads may share
// one budget (the counters are atomics, nothing blocks).
#pragma once

#include <atomic>
#include <cstdint>

namespace hopgate::proto {

class CreditBudget {
public:
    explicit CreditBudget(std::uint64_t capacity) : capacity_(capacity) {}
    CreditBudget(const CreditBudget&) = delete;
    CreditBudget& operator=(const CreditBudget&) = delete;

    // A member holding `held` bytes asks for `n` more. Refused (nothing reserved) when that would
    // exceed the capacity, or when it would put the budget under pressure while the member holds
    // more than its fair share afterwards.
    bool try_grow(std::uint64_t held, std::uint64_t n) {
        std::uint64_t cur = used_.load(std::memory_order_relaxed);
        do {
            if (n > capacity_ - cur ||
                (cur + n > pressure_mark() && held + n > fair_share())) {
                denied_.fetch_add(1, std::memory_order_relaxed);
                return false;
            }
        } while (!used_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
        return true;
    }

    // Under pressure a member holding more than its fair share should give some back.
    bool should_shrink(std::uint64_t held) const {
        return used_.load(std::memory_order_relaxed) > pressure_mark() && held > fair_share();
    }

    // Gives back `n` bytes reserved earlier.
    void release(std::uint64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }

    // A connection starts sharing the budget / ends, giving back what it still holds.
    void join() { members_.fetch_add(1, std::memory_order_relaxed); }
    void leave(std::uint64_t reserved) {
        release(reserved);
        members_.fetch_sub(1, std::memory_order_relaxed);
    }
    // What each member may keep under pressure.
    std::uint64_t fair_share() const {
        const std::uint64_t m = members_.load(std::memory_order_relaxed);
        return capacity_ / (m == 0 ? 1 : m);
    }
    std::uint64_t members() const { return members_.load(std::memory_order_relaxed); }

    // "Under pressure": more than three quarters reserved.
    std::uint64_t pressure_mark() const { return capacity_ / 4 * 3; }

    std::uint64_t capacity() const { return capacity_; }
    std::uint64_t used() const { return used_.load(std::memory_order_relaxed); }
    // Growth requests refused so far (a counter for metrics).
    std::uint64_t denied() const { return denied_.load(std::memory_order_relaxed); }

private:
    const std::uint64_t capacity_;
    std::atomic<std::uint64_t> used_{0};
    std::atomic<std::uint64_t> members_{0};
    std::atomic<std::uint64_t> denied_{0};
};

}  // namespace hopgate::proto
