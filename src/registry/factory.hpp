// Opening the configured registry from HOP_DB_DSN.
//
//   ""                      SQLite file "hopgate.db" in the working directory
//   sqlite:///var/lib/x.db  SQLite, absolute path (everything after "sqlite://" is the path)
//   sqlite://data/x.db      SQLite, relative path
//   postgres://user:pw@host:5432/db?sslmode=require   PostgreSQL (also postgresql://)
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "registry/registry.hpp"

namespace hopgate::registry {

enum class Backend { kSqlite, kPostgres };

struct ParsedDsn {
    Backend backend = Backend::kSqlite;
    std::string target;  // SQLite path, or the PostgreSQL DSN unchanged
};

// kInvalidDsn for an unknown scheme, an empty SQLite path, or a path with '?' or NUL.
core::Result<ParsedDsn> parse_dsn(std::string_view dsn);

// The database a DSN names, for messages: "SQLite <absolute path>" or the PostgreSQL URL with
// its password replaced by "***". Never contains a password; "invalid DSN" when unparsable.
std::string describe_dsn(std::string_view dsn);

struct RegistryConfig {
    std::string dsn;                 // HOP_DB_DSN
    std::size_t max_open_conns = 4;  // HOP_DB_MAX_OPEN_CONNS: pool size of either backend
    std::size_t max_idle_conns = 4;  // HOP_DB_MAX_IDLE_CONNS: kept open while unused (PostgreSQL)
    std::chrono::seconds conn_max_lifetime{0};  // HOP_DB_CONN_MAX_LIFETIME (PostgreSQL), 0 = never
};

// Opens (and migrates) the registry. A start-up step: throws std::system_error with an Errc and
// a one-line message (no password) on a bad DSN or an unreachable or too-new database.
std::unique_ptr<Registry> open_registry(const RegistryConfig& config);

}  // namespace hopgate::registry
