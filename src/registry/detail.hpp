// Helpers shared by the registry implementations (internal).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "registry/domain.hpp"
#include "registry/error.hpp"
#include "registry/key.hpp"
#include "registry/registry.hpp"

namespace hopgate::registry::detail {

inline std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Everything a new row needs, with the checks every backend does before touching storage.
struct NewRow {
    DomainRecord record;
    std::string key;       // clear, returned once
    std::string key_hash;  // stored
};

inline core::Result<NewRow> prepare_new_row(std::string_view domain, std::string_view memo) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    if (auto st = validate_memo(memo); !st) {
        return st.error();
    }
    auto key = generate_key();
    auto id = new_uuid();
    if (!key || !id) {
        return Errc::kRandomFailure;
    }
    NewRow row;
    row.record.id = std::move(*id);
    row.record.domain = std::move(*name);
    row.record.memo = std::string(memo);
    row.record.created_at_ms = row.record.updated_at_ms = now_ms();
    row.key_hash = hash_key(*key);
    row.key = std::move(*key);
    return row;
}

inline core::Status check_query(const ListQuery& q) {
    if (q.limit == 0 || q.limit > kMaxPageSize || !is_valid_cursor(q.after)) {
        return Errc::kInvalidArgument;
    }
    return {};
}

}  // namespace hopgate::registry::detail
