// A pool of datagram buffers in two size classes (small for typical MTU-sized datagrams, large
// for anything up to the 64 KiB UDP maximum), so the relay's hot path allocates nothing once warm.
//
// `PooledBuffer` is a move-only handle that returns its storage to the pool on destruction; the
// pool must outlive every handle. Bound: the pool keeps at most `max_free_small` / `max_free_large`
// idle buffers and frees the rest; the number in use is bounded by the owner (in-flight limit).
// Single-threaded.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace hopgate::impair {

class BufferPool;

class PooledBuffer {
  public:
    PooledBuffer() = default;
    PooledBuffer(PooledBuffer&& other) noexcept { *this = std::move(other); }
    PooledBuffer& operator=(PooledBuffer&& other) noexcept;
    PooledBuffer(const PooledBuffer&) = delete;
    PooledBuffer& operator=(const PooledBuffer&) = delete;
    ~PooledBuffer() { reset(); }

    std::byte* data() { return storage_.get(); }
    const std::byte* data() const { return storage_.get(); }
    std::size_t size() const { return size_; }  // bytes of payload held
    std::span<const std::byte> bytes() const { return {storage_.get(), size_}; }
    explicit operator bool() const { return storage_ != nullptr; }

    // Returns the storage to the pool now.
    void reset();

  private:
    friend class BufferPool;
    BufferPool* pool_ = nullptr;
    std::unique_ptr<std::byte[]> storage_;
    std::size_t capacity_ = 0;
    std::size_t size_ = 0;
};

class BufferPool {
  public:
    static constexpr std::size_t kSmall = 2048;
    static constexpr std::size_t kLarge = 65536;

    explicit BufferPool(std::size_t max_free_small = 8192, std::size_t max_free_large = 256)
        : max_free_small_(max_free_small), max_free_large_(max_free_large) {}
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    // A buffer holding a copy of `data` (data.size() <= kLarge).
    PooledBuffer copy_of(std::span<const std::byte> data);

    std::size_t allocations() const { return allocations_; }  // storage ever allocated

  private:
    friend class PooledBuffer;
    void give_back(std::unique_ptr<std::byte[]> storage, std::size_t capacity);

    std::size_t max_free_small_;
    std::size_t max_free_large_;
    std::vector<std::unique_ptr<std::byte[]>> free_small_;
    std::vector<std::unique_ptr<std::byte[]>> free_large_;
    std::size_t allocations_ = 0;
};

}  // namespace hopgate::impair
