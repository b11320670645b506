// JSON shapes shared by the admin API and the domain CLI (internal to the admin layer).
#pragma once

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "registry/registry.hpp"

namespace hopgate::admin::detail {

// "2025-11-22T19:30:00.123Z"
inline std::string format_time_ms(std::int64_t ms) {
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    const auto frac = static_cast<int>(((ms % 1000) + 1000) % 1000);
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return buf;
}

inline nlohmann::json record_json(const registry::DomainRecord& r) {
    return nlohmann::json{{"id", r.id},
                          {"domain", r.domain},
                          {"memo", r.memo},
                          {"created_at", format_time_ms(r.created_at_ms)},
                          {"updated_at", format_time_ms(r.updated_at_ms)}};
}

// Serialises without ever throwing on bad UTF-8 (replaced by U+FFFD).
inline std::string dump(const nlohmann::json& j, int indent = -1) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace hopgate::admin::detail
