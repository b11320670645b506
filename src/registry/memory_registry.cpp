#include "registry/memory_registry.hpp"

#include "registry/detail.hpp"

namespace hopgate::registry {

core::Result<Registration> MemoryRegistry::register_domain(std::string_view domain,
                                                           std::string_view memo) {
    auto row = detail::prepare_new_row(domain, memo);
    if (!row) {
        return row.error();
    }
    std::lock_guard lock(mu_);
    auto [it, inserted] = rows_.try_emplace(row->record.domain, Row{row->record, row->key_hash});
    if (!inserted) {
        return Errc::kDuplicate;
    }
    return Registration{row->record, row->key};
}

core::Status MemoryRegistry::unregister_domain(std::string_view domain,
                                               std::optional<std::string_view> key) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    std::lock_guard lock(mu_);
    auto it = rows_.find(*name);
    if (it == rows_.end()) {
        return Errc::kNotFound;
    }
    if (key && !constant_time_equal(hash_key(*key), it->second.key_hash)) {
        return Errc::kKeyMismatch;
    }
    rows_.erase(it);
    return {};
}

core::Result<bool> MemoryRegistry::exists(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    std::lock_guard lock(mu_);
    return rows_.count(*name) > 0;
}

core::Result<DomainRecord> MemoryRegistry::status(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    std::lock_guard lock(mu_);
    auto it = rows_.find(*name);
    if (it == rows_.end()) {
        return Errc::kNotFound;
    }
    return it->second.record;
}

core::Result<Page> MemoryRegistry::list(const ListQuery& query) {
    if (auto st = detail::check_query(query); !st) {
        return st.error();
    }
    std::lock_guard lock(mu_);
    Page page;
    page.total = static_cast<std::int64_t>(rows_.size());
    for (auto it = rows_.upper_bound(query.after); it != rows_.end(); ++it) {
        if (page.items.size() == query.limit) {
            page.next_after = page.items.back().domain;
            break;
        }
        page.items.push_back(it->second.record);
    }
    return page;
}

core::Result<std::string> MemoryRegistry::rotate_key(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    auto key = generate_key();
    if (!key) {
        return key.error();
    }
    std::lock_guard lock(mu_);
    auto it = rows_.find(*name);
    if (it == rows_.end()) {
        return Errc::kNotFound;
    }
    it->second.key_hash = hash_key(*key);
    it->second.record.updated_at_ms = detail::now_ms();
    return *key;
}

core::Status MemoryRegistry::validate(std::string_view domain, std::string_view key) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    std::lock_guard lock(mu_);
    auto it = rows_.find(*name);
    if (it == rows_.end()) {
        return Errc::kNotFound;
    }
    if (!constant_time_equal(hash_key(key), it->second.key_hash)) {
        return Errc::kKeyMismatch;
    }
    return {};
}

}  // namespace hopgate::registry
