// A fixed-size byte buffer that is not zero-filled when allocated (std::vector<uint8_t>(n) and
// make_unique<uint8_t[]>(n) memset every byte, which profiles of per-request buffers showed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace hopgate::core {

class ByteBlock {
public:
    ByteBlock() = default;
    explicit ByteBlock(std::size_t n) : p_(std::make_unique_for_overwrite<std::uint8_t[]>(n)), n_(n) {}

    std::uint8_t* data() { return p_.get(); }
    const std::uint8_t* data() const { return p_.get(); }
    std::size_t size() const { return n_; }
    operator std::span<std::uint8_t>() { return {p_.get(), n_}; }
    operator std::span<const std::uint8_t>() const { return {p_.get(), n_}; }

private:
    std::unique_ptr<std::uint8_t[]> p_;
    std::size_t n_ = 0;
};

}  // namespace hopgate::core
