// Stream byte buffers of the protocol core. Both keep a contiguous vector with a moving head and
// compact when the consumed prefix dominates, so steady-state streaming does not allocate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <span>
#include <vector>

#include "proto/range_set.hpp"

namespace hopgate::proto {

// An allocator whose value-initialisation is default-initialisation: vector<uint8_t>::resize
// leaves the new bytes unwritten instead of zero-filling them (they are overwritten anyway).
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
    template <class U>
    struct rebind {
        using other = DefaultInitAllocator<U>;
    };
    using std::allocator<T>::allocator;
    template <class U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        std::construct_at(p, std::forward<Args>(args)...);
    }
};

// Bytes [base(), end()) of a stream's send direction that are not yet acknowledged, in a list of
// blocks (the first sized to the first write, doubling up to 64 KiB) so that releasing an
// acknowledged prefix never moves the rest: with the old single vector, compaction copied every
// byte once more. A frame takes at most contiguous(off) bytes from one block.
class SendBuffer {
public:
    static constexpr std::size_t kMaxBlock = 64 * 1024;
    static constexpr std::size_t kMinBlock = 1024;

    std::uint64_t base() const { return base_; }
    std::uint64_t end() const { return base_ + size_; }
    std::size_t size() const { return size_; }

    void append(std::span<const std::uint8_t> b) {
        while (!b.empty()) {
            if (blocks_.empty() || tail_used_ == blocks_.back().cap) {
                add_block(b.size());
            }
            Block& t = blocks_.back();
            const std::size_t n = std::min(b.size(), t.cap - tail_used_);
            std::memcpy(t.data.get() + tail_used_, b.data(), n);
            tail_used_ += n;
            size_ += n;
            b = b.subspan(n);
        }
    }
    // Bytes stored contiguously from `off` (which must lie within [base(), end()]).
    std::size_t contiguous(std::uint64_t off) const {
        if (off >= end()) {
            return 0;
        }
        const auto [i, in] = locate(off);
        return used(i) - in;
    }
    // View of [off, off+len); `len` must not exceed contiguous(off).
    std::span<const std::uint8_t> view(std::uint64_t off, std::size_t len) const {
        if (len == 0) {
            return {};
        }
        const auto [i, in] = locate(off);
        return {blocks_[i].data.get() + in, len};
    }
    // Drops bytes below `upto` (acknowledged prefix).
    void release(std::uint64_t upto) {
        if (upto <= base_) {
            return;
        }
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(upto - base_, size_));
        base_ = upto;
        size_ -= n;
        head_ += n;
        while (!blocks_.empty() && head_ >= used(0)) {
            if (blocks_.size() == 1) {
                // Everything is acknowledged: keep a small block for the next write.
                head_ = tail_used_ = 0;
                if (blocks_.front().cap > 16 * 1024) {
                    blocks_.clear();
                }
                break;
            }
            head_ -= blocks_.front().cap;
            blocks_.erase(blocks_.begin());
        }
    }
    // Empty again at offset 0, for a new stream: keeps the first block when it is a small one
    // (kMinBlock), so the new stream's first writes allocate nothing.
    void recycle() {
        if (!blocks_.empty() && blocks_.front().cap == kMinBlock) {
            blocks_.erase(blocks_.begin() + 1, blocks_.end());
        } else {
            blocks_.clear();
        }
        head_ = tail_used_ = size_ = 0;
        base_ = 0;
    }
    // Discards everything (stream reset); offsets continue from `new_base`.
    void discard(std::uint64_t new_base) {
        blocks_.clear();
        blocks_.shrink_to_fit();
        head_ = tail_used_ = size_ = 0;
        base_ = new_base;
    }

private:
    struct Block {
        std::unique_ptr<std::uint8_t[]> data;
        std::size_t cap = 0;
    };
    std::size_t used(std::size_t i) const {
        return i + 1 == blocks_.size() ? tail_used_ : blocks_[i].cap;
    }
    std::pair<std::size_t, std::size_t> locate(std::uint64_t off) const {
        std::size_t pos = head_ + static_cast<std::size_t>(off - base_);
        std::size_t i = 0;
        while (i + 1 < blocks_.size() && pos >= blocks_[i].cap) {
            pos -= blocks_[i].cap;
            ++i;
        }
        return {i, pos};
    }
    void add_block(std::size_t need) {
        std::size_t cap = kMinBlock;
        if (!blocks_.empty()) {
            cap = std::min(blocks_.back().cap * 2, kMaxBlock);
        } else {
            while (cap < need && cap < kMaxBlock) {
                cap *= 2;
            }
        }
        blocks_.push_back(Block{std::make_unique_for_overwrite<std::uint8_t[]>(cap), cap});
        tail_used_ = 0;
    }

    std::vector<Block> blocks_;  // few (a 4 MiB buffer is 64 blocks); erase at the front is cheap
    std::size_t head_ = 0;       // consumed bytes of the first block
    std::size_t tail_used_ = 0;  // filled bytes of the last block
    std::size_t size_ = 0;
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
    // Empty again at offset 0, for a new stream; keeps up to kRecycledBytes of capacity.
    void recycle() {
        static constexpr std::size_t kRecycledBytes = 1024;
        if (data_.capacity() > kRecycledBytes) {
            data_ = {};
        }
        data_.clear();
        head_ = 0;
        base_ = 0;
        have_.clear();
    }

private:
    // Bytes between received ranges are never read, so growing needs no zero-fill.
    std::vector<std::uint8_t, DefaultInitAllocator<std::uint8_t>> data_;
    std::size_t head_ = 0;
    std::uint64_t base_ = 0;
    RangeSet have_;
};

}  // namespace hopgate::proto
