// A set of disjoint half-open integer ranges [lo, hi), kept sorted and coalesced. Used for
// received packet numbers (ACK generation), acknowledged/lost stream byte ranges and receive
// reassembly. Backed by a small sorted vector: the common case (in-order arrival) appends to or
// extends the last range in O(1).
#pragma once

#include <cstdint>
#include <vector>

namespace hopgate::proto {

struct Range {
    std::uint64_t lo;
    std::uint64_t hi;  // exclusive
    std::uint64_t size() const { return hi - lo; }
    friend bool operator==(const Range&, const Range&) = default;
};

class RangeSet {
public:
    // Adds [lo, hi). Returns the number of values that were not already present.
    std::uint64_t add(std::uint64_t lo, std::uint64_t hi);
    // Removes [lo, hi).
    void remove(std::uint64_t lo, std::uint64_t hi);
    bool contains(std::uint64_t v) const;
    // True if every value of [lo, hi) is present.
    bool contains_all(std::uint64_t lo, std::uint64_t hi) const;

    bool empty() const { return ranges_.empty(); }
    std::size_t count() const { return ranges_.size(); }
    const Range& front() const { return ranges_.front(); }
    const Range& back() const { return ranges_.back(); }
    const std::vector<Range>& ranges() const { return ranges_; }
    void pop_front() { ranges_.erase(ranges_.begin()); }
    // Drops the lowest ranges until at most `n` remain.
    void keep_highest(std::size_t n);
    void clear() { ranges_.clear(); }

private:
    std::vector<Range> ranges_;
};

}  // namespace hopgate::proto
