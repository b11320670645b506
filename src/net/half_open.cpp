#include "net/half_open.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace hopgate::net {

std::size_t SourceKeyHash::operator()(const SourceKey& k) const {
    std::size_t h = 1469598103934665603ULL;
    for (auto b : k.bytes) {
        h = (h ^ b) * 1099511628211ULL;
    }
    return h;
}

SourceKey source_key(const sockaddr_storage& addr) {
    SourceKey k;
    if (addr.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
        k.bytes[0] = 4;
        std::memcpy(&k.bytes[1], &a->sin_addr, 4);
    } else if (addr.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
        const std::uint8_t* b = a->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            k.bytes[0] = 4;
            std::memcpy(&k.bytes[1], b + 12, 4);
        } else {
            k.bytes[0] = 6;
            std::memcpy(&k.bytes[1], b, 8);  // the /64
        }
    }
    return k;
}

std::size_t HalfOpenTable::of_source(const SourceKey& src) const {
    const auto it = per_source_.find(src);
    return it == per_source_.end() ? 0 : it->second;
}

HalfOpenTable::Admission HalfOpenTable::admit(const SourceKey& src, core::Instant now) {
    Admission a;
    std::size_t remaining = size();
    std::uint64_t same_source = 0;
    bool have_same_source = false;
    if (of_source(src) >= limits_.max_per_source) {
        const auto it = std::find_if(by_age_.begin(), by_age_.end(),
                                     [&](const Entry& e) { return e.src == src; });
        if (it == by_age_.end() || now - it->started < limits_.same_source_min_age) {
            a.verdict = Verdict::kRefuseSource;
            ++stats_.refused_source;
            return a;
        }
        same_source = it->id;
        have_same_source = true;
        a.evict.push_back(it->id);
        --remaining;
    }
    // Under pressure (half full or more), old sessions go first, oldest first. Each session is
    // evicted at most once, so this costs O(1) per admission amortised.
    std::size_t pressure = 0;
    for (auto it = by_age_.begin();
         it != by_age_.end() && remaining > 0 && remaining >= limits_.max_total / 2; ++it) {
        if (have_same_source && it->id == same_source) {
            continue;
        }
        if (now - it->started < limits_.pressure_age) {
            break;
        }
        a.evict.push_back(it->id);
        --remaining;
        ++pressure;
    }
    if (remaining >= limits_.max_total) {
        // Nothing could be evicted (a same-source eviction always leaves room).
        a.verdict = Verdict::kRefuseFull;
        a.evict.clear();
        ++stats_.refused_full;
        return a;
    }
    stats_.evicted_same_source += have_same_source ? 1 : 0;
    stats_.evicted_pressure += pressure;
    return a;
}

void HalfOpenTable::add(std::uint64_t id, const SourceKey& src, core::Instant now) {
    if (by_id_.contains(id)) {
        return;
    }
    by_age_.push_back({id, src, now});
    by_id_.emplace(id, std::prev(by_age_.end()));
    ++per_source_[src];
}

void HalfOpenTable::remove(std::uint64_t id) {
    const auto it = by_id_.find(id);
    if (it == by_id_.end()) {
        return;
    }
    const auto src = it->second->src;
    by_age_.erase(it->second);
    by_id_.erase(it);
    if (const auto ps = per_source_.find(src); ps != per_source_.end() && --ps->second == 0) {
        per_source_.erase(ps);
    }
}

}  // namespace hopgate::net
