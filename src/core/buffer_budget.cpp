#include "core/buffer_budget.hpp"

#include <algorithm>

namespace hopgate::core {

BufferBudget::BufferBudget(std::size_t limit_bytes) : state_(std::make_shared<State>()) {
    state_->limit = limit_bytes;
}

std::optional<BufferBudget::Lease> BufferBudget::try_acquire(std::size_t bytes) {
    if (bytes > state_->limit - state_->in_use) {
        ++state_->refused;
        return std::nullopt;
    }
    Lease l;
    auto& spare = state_->spare;
    for (auto it = spare.rbegin(); it != spare.rend(); ++it) {
        if (it->first == bytes) {
            l.data_ = std::move(it->second);
            state_->spare_bytes -= bytes;
            spare.erase(std::next(it).base());
            break;
        }
    }
    if (!l.data_) {
        l.data_ = std::make_unique_for_overwrite<std::uint8_t[]>(bytes);  // no zero-fill
    }
    l.size_ = bytes;
    l.state_ = state_;
    state_->in_use += bytes;
    state_->peak = std::max(state_->peak, state_->in_use);
    return l;
}

BufferBudget::Lease& BufferBudget::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        release();
        state_ = std::move(other.state_);
        data_ = std::move(other.data_);
        size_ = other.size_;
        other.size_ = 0;
    }
    return *this;
}

BufferBudget::Lease::~Lease() { release(); }

void BufferBudget::Lease::release() {
    if (state_) {
        state_->in_use -= size_;
        if (data_ && state_->spare_bytes + size_ <= kSpareBytes) {
            state_->spare_bytes += size_;
            state_->spare.emplace_back(size_, std::move(data_));
        }
        state_.reset();
    }
    data_.reset();
    size_ = 0;
}

}  // namespace hopgate::core
