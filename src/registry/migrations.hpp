// Numbered schema migrations (internal to the registry layer).
//
// Each backend applies, in order and each inside a transaction, every migration whose version is
// above the highest one recorded in `schema_migrations (version, name, applied_at)`. Migrations
// are append-only: never edit a shipped one, add the next number. A database whose recorded
// version is above the newest one known here is refused (kSchemaTooNew) instead of being touched.
#pragma once

#include <span>
#include <string_view>

namespace hopgate::registry::detail {

struct Migration {
    int version;
    std::string_view name;
    std::string_view sql;  // may hold several statements
};

std::span<const Migration> sqlite_migrations();
std::span<const Migration> pg_migrations();

}  // namespace hopgate::registry::detail
