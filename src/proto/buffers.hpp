// Stream byte buffers of the protocol core. Both keep a contiguous vector with a moving head and
// compact when the consumed prefix dominates, so steady-state streaming does not allocate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "proto/range_set.hpp"

namespace hopgate::proto {

// Bytes [base(), end()) of a stream's send direction that are not yet acknowledged.
class SendBuffer {
public:
    std::uint64_t base() const { return base_; }
    std::uint64_t end() const { return base_ + (data_.size() - head_); }
    std::size_t size() const { return data_.size() - head_; }

    void append(std::span<const std::uint8_t> b) { data_.insert(data_.end(), b.begin(), b.end()); }
    // View of [off, off+len); must lie within [base(), end()).
    std::span<const std::uint8_t> view(std::uint64_t off, std::size_t len) const {
        return {data_.data() + head_ + static_cast<std::size_t>(off - base_), len};
    }
    // Drops bytes below `upto` (acknowledged prefix).
    void release(std::uint64_t upto) {
        if (upto <= base_) {
            return;
        }
        head_ += static_cast<std::size_t>(upto - base_);
        base_ = upto;
        if (head_ == data_.size()) {
            data_.clear();
            head_ = 0;
        } else if (head_ >= 64 * 1024 && head_ * 2 >= data_.size()) {
            data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }
    // Discards everything (stream reset); offsets continue from `new_base`.
    void discard(std::uint64_t new_base) {
        data_.clear();
        data_.shrink_to_fit();
        head_ = 0;
        base_ = new_base;
    }

private:
    std::vector<std::uint8_t> data_;
    std::size_t head_ = 0;
    std::uint64_t base_ = 0;
};

// Reassembly buffer of a stream's receive direction: bytes from the read offset up to the highest
// received offset, with the ranges actually received.
class RecvBuffer {
public:
    std::uint64_t read_offset() const { return base_; }

    // Stores [off, off+b.size()); the part below the read offset is ignored. Returns the number
    // of bytes that were new.
    std::uint64_t write(std::uint64_t off, std::span<const std::uint8_t> b) {
        std::uint64_t end = off + b.size();
        if (end <= base_) {
            return 0;
        }
        if (off < base_) {
            b = b.subspan(static_cast<std::size_t>(base_ - off));
            off = base_;
        }
        const std::size_t need = head_ + static_cast<std::size_t>(end - base_);
        if (data_.size() < need) {
            data_.resize(need);
        }
        std::memcpy(data_.data() + head_ + (off - base_), b.data(), b.size());
        return have_.add(off, end);
    }
    // Contiguous bytes available at the read offset.
    std::size_t readable() const {
        if (have_.empty() || have_.front().lo > base_) {
            return 0;
        }
        return static_cast<std::size_t>(have_.front().hi - base_);
    }
    std::span<const std::uint8_t> peek() const { return {data_.data() + head_, readable()}; }
    std::size_t read(std::span<std::uint8_t> out) {
        const std::size_t n = std::min(out.size(), readable());
        if (n > 0) {
            std::memcpy(out.data(), data_.data() + head_, n);
            consume(n);
        }
        return n;
    }
    void consume(std::size_t n) {
        base_ += n;
        head_ += n;
        have_.remove(0, base_);
        if (head_ >= data_.size()) {
            data_.clear();
            head_ = 0;
        } else if (head_ >= 64 * 1024 && head_ * 2 >= data_.size()) {
            data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }
    // Drops everything and moves the read offset to `offset` (reset or stop-sending).
    void discard(std::uint64_t offset) {
        data_.clear();
        data_.shrink_to_fit();
        head_ = 0;
        base_ = std::max(base_, offset);
        have_.clear();
    }
    std::size_t allocated() const { return data_.size() - head_; }

private:
    std::vector<std::uint8_t> data_;
    std::size_t head_ = 0;
    std::uint64_t base_ = 0;
    RangeSet have_;
};

}  // namespace hopgate::proto
