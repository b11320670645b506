#include "registry/migrations.hpp"

namespace hopgate::registry::detail {
namespace {

// Timestamps: SQLite stores Unix milliseconds (INTEGER), PostgreSQL timestamptz. The registry
// computes both from the same clock, so records read back identically from either backend.
constexpr Migration kSqlite[] = {
    {1, "create domains",
     "CREATE TABLE domains ("
     "  id TEXT PRIMARY KEY NOT NULL,"
     "  domain TEXT NOT NULL UNIQUE,"
     "  client_api_key_hash TEXT NOT NULL CHECK (length(client_api_key_hash) = 64),"
     "  memo TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL"
     ");"},
};

// COLLATE "C" makes the unique index order bytes, so keyset paging (domain > $1 ORDER BY domain)
// agrees with SQLite whatever the database's default locale is.
constexpr Migration kPg[] = {
    {1, "create domains",
     "CREATE TABLE domains ("
     "  id uuid PRIMARY KEY,"
     "  domain text COLLATE \"C\" NOT NULL UNIQUE,"
     "  client_api_key_hash char(64) NOT NULL,"
     "  memo text NOT NULL DEFAULT '',"
     "  created_at timestamptz NOT NULL,"
     "  updated_at timestamptz NOT NULL"
     ");"},
};

}  // namespace

std::span<const Migration> sqlite_migrations() { return kSqlite; }
std::span<const Migration> pg_migrations() { return kPg; }

}  // namespace hopgate::registry::detail
