#include "admin/failure_limiter.hpp"

namespace hopgate::admin {

std::string FailureLimiter::key_of(const IpAddr& ip) { return source_key(ip); }

FailureLimiter::Lru::iterator FailureLimiter::touch(const std::string& key, core::Instant now) {
    if (auto it = index_.find(key); it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second;
    }
    while (!lru_.empty() && lru_.size() >= opts_.max_entries) {
        index_.erase(lru_.back().key);
        lru_.pop_back();
    }
    lru_.push_front(Entry{key, now, 0, {}});
    index_.emplace(key, lru_.begin());
    return lru_.begin();
}

bool FailureLimiter::allowed(const IpAddr& source, core::Instant now) {
    std::lock_guard lock(mu_);
    auto it = index_.find(key_of(source));
    if (it == index_.end() || it->second->blocked_until <= now) {
        return true;
    }
    lru_.splice(lru_.begin(), lru_, it->second);  // a source still knocking stays remembered
    return false;
}

void FailureLimiter::record_failure(const IpAddr& source, core::Instant now) {
    std::lock_guard lock(mu_);
    auto e = touch(key_of(source), now);
    if (now - e->window_start >= opts_.window) {
        e->window_start = now;
        e->failures = 0;
    }
    if (++e->failures >= opts_.max_failures) {
        e->blocked_until = now + opts_.block;
        e->window_start = e->blocked_until;
        e->failures = 0;
    }
}

void FailureLimiter::record_success(const IpAddr& source) {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key_of(source)); it != index_.end()) {
        lru_.erase(it->second);
        index_.erase(it);
    }
}

std::size_t FailureLimiter::size() const {
    std::lock_guard lock(mu_);
    return lru_.size();
}

}  // namespace hopgate::admin
