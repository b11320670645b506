#include "impair/buffer_pool.hpp"

#include <cassert>
#include <cstring>

namespace hopgate::impair {

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& other) noexcept {
    if (this != &other) {
        reset();
        pool_ = other.pool_;
        storage_ = std::move(other.storage_);
        capacity_ = other.capacity_;
        size_ = other.size_;
        other.pool_ = nullptr;
        other.capacity_ = 0;
        other.size_ = 0;
    }
    return *this;
}

void PooledBuffer::reset() {
    if (storage_ && pool_ != nullptr) {
        pool_->give_back(std::move(storage_), capacity_);
    }
    storage_.reset();
    pool_ = nullptr;
    capacity_ = 0;
    size_ = 0;
}

PooledBuffer BufferPool::copy_of(std::span<const std::byte> data) {
    assert(data.size() <= kLarge);
    const bool small = data.size() <= kSmall;
    auto& free_list = small ? free_small_ : free_large_;
    PooledBuffer b;
    b.pool_ = this;
    b.capacity_ = small ? kSmall : kLarge;
    if (!free_list.empty()) {
        b.storage_ = std::move(free_list.back());
        free_list.pop_back();
    } else {
        b.storage_ = std::make_unique_for_overwrite<std::byte[]>(b.capacity_);
        ++allocations_;
    }
    if (!data.empty()) {
        std::memcpy(b.storage_.get(), data.data(), data.size());
    }
    b.size_ = data.size();
    return b;
}

void BufferPool::give_back(std::unique_ptr<std::byte[]> storage, std::size_t capacity) {
    auto& free_list = capacity == kSmall ? free_small_ : free_large_;
    const std::size_t max_free = capacity == kSmall ? max_free_small_ : max_free_large_;
    if (free_list.size() < max_free) {
        free_list.push_back(std::move(storage));
    }
}

}  // namespace hopgate::impair
