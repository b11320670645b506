// The domain registry: which domains may open tunnels, and the hash of each domain's client key.
//
// Contract shared by every implementation (SqliteRegistry, PgRegistry, MemoryRegistry; one typed
// test suite pins it down):
//   - every `domain` argument goes through normalize_domain() first; an invalid name returns its
//     kDomain* reason (see registry/error.hpp) and touches nothing;
//   - keys are generated here (256-bit, 64 hex chars), returned once, and stored as SHA-256 hex;
//     comparisons are constant-time;
//   - database trouble is kDbUnavailable (retryable, HTTP 503) or kDbError (unexpected);
//   - all methods block (disk or network) and are safe to call from several threads at once.
//     Network threads must not call them directly: use AsyncRegistry (registry/async_registry.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace hopgate::registry {

// One registered domain, without its key hash.
struct DomainRecord {
    std::string id;                  // UUID, canonical text form
    std::string domain;              // normalised
    std::string memo;                // free text given at registration
    std::int64_t created_at_ms = 0;  // Unix time, milliseconds
    std::int64_t updated_at_ms = 0;  // changes on key rotation
    bool operator==(const DomainRecord&) const = default;
};

// The answer to a registration: the record and the clear key, shown once.
struct Registration {
    DomainRecord record;
    std::string client_api_key;
};

inline constexpr std::size_t kDefaultPageSize = 100;
inline constexpr std::size_t kMaxPageSize = 1000;

// Keyset paging in byte order of the domain name.
struct ListQuery {
    std::string after;  // return domains strictly after this one ("" = first page)
    std::size_t limit = kDefaultPageSize;  // 1..kMaxPageSize, else kInvalidArgument
};

struct Page {
    std::vector<DomainRecord> items;
    std::string next_after;  // pass as `after` for the next page; empty on the last page
    std::int64_t total = 0;  // number of registered domains
};

class Registry {
  public:
    virtual ~Registry() = default;

    // Registers a new domain with a fresh key. kDuplicate if it exists, kInvalidMemo.
    virtual core::Result<Registration> register_domain(std::string_view domain,
                                                       std::string_view memo) = 0;

    // Removes a domain. With a key, the key must match (kKeyMismatch otherwise, nothing removed);
    // operators (the CLI) pass std::nullopt. kNotFound if absent.
    virtual core::Status unregister_domain(std::string_view domain,
                                           std::optional<std::string_view> key) = 0;

    virtual core::Result<bool> exists(std::string_view domain) = 0;

    // The record of a domain; kNotFound if absent.
    virtual core::Result<DomainRecord> status(std::string_view domain) = 0;

    virtual core::Result<Page> list(const ListQuery& query) = 0;

    // Replaces the key of a domain with a fresh one and returns it (shown once). kNotFound.
    virtual core::Result<std::string> rotate_key(std::string_view domain) = 0;

    // Ok if `key` is the current key of `domain`; kNotFound or kKeyMismatch otherwise.
    virtual core::Status validate(std::string_view domain, std::string_view key) = 0;
};

}  // namespace hopgate::registry
