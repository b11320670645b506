// Per-source failure counting with bounded memory, shared by the tunnel handshake
// (AuthValidator) and the admin API's bearer-token check.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "admin/cidr.hpp"
#include "core/time.hpp"

namespace hopgate::admin {

struct LimiterOptions {
    std::size_t max_failures = 10;  // failures allowed per window ...
    core::Duration window = std::chrono::minutes(1);
    core::Duration block = std::chrono::minutes(5);  // ... then refused for this long
    std::size_t max_entries = 10000;                 // memory bound; least recently seen evicted
};

// Counts authentication failures per source. IPv4 sources count per address, IPv6 per /64
// (one host usually owns a whole /64). Memory is bounded by max_entries. Time is a parameter.
// Thread-safe.
class FailureLimiter {
  public:
    explicit FailureLimiter(LimiterOptions options = {}) : opts_(options) {}

    // False while `source` is blocked.
    bool allowed(const IpAddr& source, core::Instant now);
    void record_failure(const IpAddr& source, core::Instant now);
    // A successful login clears the source's record.
    void record_success(const IpAddr& source);
    std::size_t size() const;

  private:
    struct Entry {
        std::string key;
        core::Instant window_start{};
        std::size_t failures = 0;
        core::Instant blocked_until{};
    };
    using Lru = std::list<Entry>;  // front = most recently seen
    static std::string key_of(const IpAddr& ip);
    Lru::iterator touch(const std::string& key, core::Instant now);

    LimiterOptions opts_;
    mutable std::mutex mu_;
    Lru lru_;
    std::unordered_map<std::string, Lru::iterator> index_;
};

}  // namespace hopgate::admin
