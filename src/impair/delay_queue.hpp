// A priority queue of values by release time; equal release times leave in push order (so a
// link without jitter never reorders). Sans-I/O: the driver arms one timer at `next_release()`.
// Bound: none of its own; the owner bounds what it pushes (see UdpRelay's in-flight limit).
// Single-threaded. After warm-up, push/pop allocate nothing (the heap's vector keeps capacity).
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/time.hpp"

namespace hopgate::impair {

template <class T>
class DelayQueue {
  public:
    explicit DelayQueue(std::size_t reserve = 1024) { heap_.reserve(reserve); }

    void push(core::Instant release, T value) {
        heap_.push_back(Entry{release, next_seq_++, std::move(value)});
        std::push_heap(heap_.begin(), heap_.end(), Later{});
    }

    bool empty() const { return heap_.empty(); }
    std::size_t size() const { return heap_.size(); }

    // Release time of the earliest entry; kInstantMax when empty.
    core::Instant next_release() const {
        return heap_.empty() ? core::kInstantMax : heap_.front().release;
    }

    // Removes and returns the earliest entry. Precondition: !empty().
    T pop() {
        assert(!heap_.empty());
        std::pop_heap(heap_.begin(), heap_.end(), Later{});
        T value = std::move(heap_.back().value);
        heap_.pop_back();
        return value;
    }

    void clear() { heap_.clear(); }

  private:
    struct Entry {
        core::Instant release;
        std::uint64_t seq;
        T value;
    };
    // std::*_heap build a max-heap; "greater" puts the earliest (then lowest seq) on top.
    struct Later {
        bool operator()(const Entry& a, const Entry& b) const {
            return a.release != b.release ? a.release > b.release : a.seq > b.seq;
        }
    };

    std::vector<Entry> heap_;
    std::uint64_t next_seq_ = 0;
};

}  // namespace hopgate::impair
