#include "proto/range_set.hpp"

#include <algorithm>

namespace hopgate::proto {

std::uint64_t RangeSet::add(std::uint64_t lo, std::uint64_t hi) {
    if (lo >= hi) {
        return 0;
    }
    // Fast path: extends or follows the last range.
    if (ranges_.empty() || lo > ranges_.back().hi) {
        ranges_.push_back({lo, hi});
        return hi - lo;
    }
    if (lo >= ranges_.back().lo) {
        auto& b = ranges_.back();
        const std::uint64_t added = hi > b.hi ? hi - b.hi : 0;
        b.hi = std::max(b.hi, hi);
        return added;
    }
    // General case: find ranges that overlap or touch [lo, hi) and merge them.
    auto first = std::lower_bound(ranges_.begin(), ranges_.end(), lo,
                                  [](const Range& r, std::uint64_t v) { return r.hi < v; });
    auto last = first;
    std::uint64_t covered = 0;
    std::uint64_t nlo = lo, nhi = hi;
    while (last != ranges_.end() && last->lo <= hi) {
        const std::uint64_t olo = std::max(last->lo, lo), ohi = std::min(last->hi, hi);
        if (ohi > olo) {
            covered += ohi - olo;
        }
        nlo = std::min(nlo, last->lo);
        nhi = std::max(nhi, last->hi);
        ++last;
    }
    if (first == last) {
        ranges_.insert(first, {lo, hi});
        return hi - lo;
    }
    *first = {nlo, nhi};
    ranges_.erase(first + 1, last);
    return (hi - lo) - covered;
}

void RangeSet::remove(std::uint64_t lo, std::uint64_t hi) {
    if (lo >= hi || ranges_.empty()) {
        return;
    }
    auto it = std::lower_bound(ranges_.begin(), ranges_.end(), lo,
                               [](const Range& r, std::uint64_t v) { return r.hi <= v; });
    while (it != ranges_.end() && it->lo < hi) {
        if (it->lo < lo && it->hi > hi) {
            // Split.
            const Range right{hi, it->hi};
            it->hi = lo;
            ranges_.insert(it + 1, right);
            return;
        }
        if (it->lo < lo) {
            it->hi = lo;
            ++it;
        } else if (it->hi > hi) {
            it->lo = hi;
            return;
        } else {
            it = ranges_.erase(it);
        }
    }
}

bool RangeSet::contains(std::uint64_t v) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), v,
                               [](std::uint64_t x, const Range& r) { return x < r.hi; });
    return it != ranges_.end() && it->lo <= v;
}

bool RangeSet::contains_all(std::uint64_t lo, std::uint64_t hi) const {
    if (lo >= hi) {
        return true;
    }
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), lo,
                               [](std::uint64_t x, const Range& r) { return x < r.hi; });
    return it != ranges_.end() && it->lo <= lo && it->hi >= hi;
}

void RangeSet::keep_highest(std::size_t n) {
    if (ranges_.size() > n) {
        ranges_.erase(ranges_.begin(), ranges_.end() - static_cast<std::ptrdiff_t>(n));
    }
}

}  // namespace hopgate::proto
