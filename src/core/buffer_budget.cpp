#include "core/buffer_budget.hpp"

#include <algorithm>

namespace hopgate::core {

namespace {

std::size_t held(const auto& accounts, std::string_view key) {
    auto it = accounts.find(key);
    return it == accounts.end() ? 0 : it->second;
}

// Whether a key holding `have` bytes may take `bytes` more under `share`. A key holding nothing
// may always take one lease, so a share below one lease still lets every key progress.
bool within_share(std::size_t have, std::size_t bytes, std::size_t share) {
    return have == 0 || (have <= share && bytes <= share - have);
}

// Adds `bytes` to the key's account (made on first use); returns the account.
template <class Accounts>
typename Accounts::value_type& credit(Accounts& accounts, std::string_view key, std::size_t bytes) {
    auto it = accounts.find(key);  // no string is built for a key that has an account
    if (it == accounts.end()) {
        it = accounts.emplace(std::string(key), 0).first;
    }
    it->second += bytes;
    return *it;
}

// Takes `bytes` off the key's account; the account is erased once it holds nothing.
void debit(auto& accounts, auto* entry, std::size_t bytes) {
    entry->second -= bytes;
    if (entry->second == 0) {
        accounts.erase(accounts.find(entry->first));
    }
}

}  // namespace

BufferBudget::BufferBudget(std::size_t limit_bytes)
    : BufferBudget(limit_bytes, Shares{kUnlimited, kUnlimited}) {}

BufferBudget::BufferBudget(std::size_t limit_bytes, Shares shares)
    : state_(std::make_shared<State>()) {
    state_->limit = limit_bytes;
    state_->per_domain = shares.per_domain;
    state_->per_source = shares.per_source;
}

std::optional<BufferBudget::Lease> BufferBudget::refuse(Refusal why) {
    ++state_->refused[index(why)];
    last_refusal_ = why;
    return std::nullopt;
}

std::optional<BufferBudget::Lease> BufferBudget::try_acquire(std::size_t bytes, Owner owner) {
    State& s = *state_;
    if (!owner.source.empty() &&
        !within_share(held(s.sources, owner.source), bytes, s.per_source)) {
        return refuse(Refusal::kSource);
    }
    if (!owner.domain.empty() &&
        !within_share(held(s.domains, owner.domain), bytes, s.per_domain)) {
        return refuse(Refusal::kDomain);
    }
    if (bytes > s.limit - s.in_use) {
        return refuse(Refusal::kTotal);
    }
    Lease l;
    for (auto it = s.spare.rbegin(); it != s.spare.rend(); ++it) {
        if (it->first == bytes) {
            l.data_ = std::move(it->second);
            s.spare_bytes -= bytes;
            s.spare.erase(std::next(it).base());
            break;
        }
    }
    if (!l.data_) {
        l.data_ = std::make_unique_for_overwrite<std::uint8_t[]>(bytes);  // no zero-fill
    }
    // An empty lease holds nothing: it is counted against no share (an account exists only
    // while it is above zero).
    if (bytes > 0 && !owner.domain.empty()) {
        l.domain_ = &credit(s.domains, owner.domain, bytes);
    }
    if (bytes > 0 && !owner.source.empty()) {
        l.source_ = &credit(s.sources, owner.source, bytes);
    }
    l.size_ = bytes;
    l.state_ = state_;
    s.in_use += bytes;
    s.peak = std::max(s.peak, s.in_use);
    return l;
}

std::uint64_t BufferBudget::refused() const {
    const auto& r = state_->refused;
    return r[0] + r[1] + r[2];
}

std::size_t BufferBudget::held_by_domain(std::string_view domain) const {
    return held(state_->domains, domain);
}

std::size_t BufferBudget::held_by_source(std::string_view source) const {
    return held(state_->sources, source);
}

BufferBudget::Lease::Lease(Lease&& other) noexcept
    : state_(std::move(other.state_)),
      data_(std::move(other.data_)),
      size_(other.size_),
      domain_(other.domain_),
      source_(other.source_) {
    other.size_ = 0;
    other.domain_ = other.source_ = nullptr;
}

BufferBudget::Lease& BufferBudget::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        release();
        state_ = std::move(other.state_);
        data_ = std::move(other.data_);
        size_ = other.size_;
        domain_ = other.domain_;
        source_ = other.source_;
        other.size_ = 0;
        other.domain_ = other.source_ = nullptr;
    }
    return *this;
}

BufferBudget::Lease::~Lease() { release(); }

void BufferBudget::Lease::release() {
    if (state_) {
        State& s = *state_;
        s.in_use -= size_;
        if (domain_ != nullptr) {
            debit(s.domains, domain_, size_);
        }
        if (source_ != nullptr) {
            debit(s.sources, source_, size_);
        }
        if (data_ && s.spare_bytes + size_ <= kSpareBytes) {
            s.spare_bytes += size_;
            s.spare.emplace_back(size_, std::move(data_));
        }
        state_.reset();
    }
    data_.reset();
    size_ = 0;
    domain_ = source_ = nullptr;
}

}  // namespace hopgate::core
