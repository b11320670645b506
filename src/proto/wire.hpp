// Byte-level primitives of the wire format: QUIC-style variable-length integers (RFC 9000 §16)
// and bounds-checked readers/writers over caller-owned spans. Never allocate, never throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace hopgate::proto {

inline constexpr std::uint64_t kVarintMax = (1ULL << 62) - 1;

// Number of bytes the varint encoding of v takes (1, 2, 4 or 8). v must be <= kVarintMax.
constexpr std::size_t varint_size(std::uint64_t v) {
    return v < (1ULL << 6) ? 1 : v < (1ULL << 14) ? 2 : v < (1ULL << 30) ? 4 : 8;
}

// Sequential reader. Every accessor returns false (and leaves the output unspecified) when the
// input is exhausted or malformed; after the first failure `ok()` stays false.
class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> data) : data_(data) {}

    bool varint(std::uint64_t& out) {
        if (pos_ >= data_.size()) {
            return fail();
        }
        const std::uint8_t first = data_[pos_];
        const std::size_t len = std::size_t{1} << (first >> 6);
        if (data_.size() - pos_ < len) {
            return fail();
        }
        std::uint64_t v = first & 0x3f;
        for (std::size_t i = 1; i < len; ++i) {
            v = (v << 8) | data_[pos_ + i];
        }
        pos_ += len;
        out = v;
        return true;
    }
    bool u8(std::uint8_t& out) {
        if (pos_ >= data_.size()) {
            return fail();
        }
        out = data_[pos_++];
        return true;
    }
    // A view of the next n bytes (no copy).
    bool bytes(std::size_t n, std::span<const std::uint8_t>& out) {
        if (data_.size() - pos_ < n) {
            return fail();
        }
        out = data_.subspan(pos_, n);
        pos_ += n;
        return true;
    }
    // A varint length followed by that many bytes, at most max_len.
    bool length_prefixed(std::size_t max_len, std::string_view& out) {
        std::uint64_t n = 0;
        if (!varint(n) || n > max_len) {
            return fail();
        }
        std::span<const std::uint8_t> b;
        if (!bytes(static_cast<std::size_t>(n), b)) {
            return false;
        }
        out = std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
        return true;
    }

    std::size_t remaining() const { return data_.size() - pos_; }
    std::size_t position() const { return pos_; }
    bool empty() const { return pos_ == data_.size(); }
    bool ok() const { return ok_; }
    std::span<const std::uint8_t> rest() const { return data_.subspan(pos_); }

private:
    bool fail() {
        ok_ = false;
        return false;
    }
    std::span<const std::uint8_t> data_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

// Sequential writer into a fixed span. Writes that do not fit fail and set !ok().
class Writer {
public:
    explicit Writer(std::span<std::uint8_t> out) : out_(out) {}

    bool varint(std::uint64_t v) {
        const std::size_t len = varint_size(v);
        if (v > kVarintMax || out_.size() - pos_ < len) {
            return fail();
        }
        const std::uint8_t prefix = len == 1 ? 0x00 : len == 2 ? 0x40 : len == 4 ? 0x80 : 0xc0;
        for (std::size_t i = 0; i < len; ++i) {
            out_[pos_ + len - 1 - i] = static_cast<std::uint8_t>(v & 0xff);
            v >>= 8;
        }
        out_[pos_] = static_cast<std::uint8_t>(out_[pos_] | prefix);
        pos_ += len;
        return true;
    }
    bool u8(std::uint8_t v) {
        if (pos_ >= out_.size()) {
            return fail();
        }
        out_[pos_++] = v;
        return true;
    }
    bool bytes(std::span<const std::uint8_t> b) {
        if (out_.size() - pos_ < b.size()) {
            return fail();
        }
        if (!b.empty()) {
            std::memcpy(out_.data() + pos_, b.data(), b.size());
        }
        pos_ += b.size();
        return true;
    }
    bool length_prefixed(std::string_view s) {
        return varint(s.size()) &&
               bytes({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
    }
    bool zeros(std::size_t n) {
        if (out_.size() - pos_ < n) {
            return fail();
        }
        std::memset(out_.data() + pos_, 0, n);
        pos_ += n;
        return true;
    }

    std::size_t size() const { return pos_; }
    std::size_t remaining() const { return out_.size() - pos_; }
    bool ok() const { return ok_; }
    std::span<std::uint8_t> written() const { return out_.first(pos_); }

private:
    bool fail() {
        ok_ = false;
        return false;
    }
    std::span<std::uint8_t> out_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

}  // namespace hopgate::proto
