#include "registry/factory.hpp"

#include <system_error>

#include "registry/error.hpp"
#include "registry/pg_registry.hpp"
#include "registry/sqlite_registry.hpp"

namespace hopgate::registry {

core::Result<ParsedDsn> parse_dsn(std::string_view dsn) {
    if (dsn.empty()) {
        return ParsedDsn{Backend::kSqlite, "hopgate.db"};
    }
    if (dsn.starts_with("sqlite://")) {
        std::string path(dsn.substr(9));
        if (path.empty() || path.find('?') != std::string::npos ||
            path.find('\0') != std::string::npos) {
            return Errc::kInvalidDsn;
        }
        return ParsedDsn{Backend::kSqlite, std::move(path)};
    }
    if (dsn.starts_with("postgres://") || dsn.starts_with("postgresql://")) {
        if (dsn.find('\0') != std::string_view::npos) {
            return Errc::kInvalidDsn;
        }
        return ParsedDsn{Backend::kPostgres, std::string(dsn)};
    }
    return Errc::kInvalidDsn;
}

std::unique_ptr<Registry> open_registry(const RegistryConfig& config) {
    auto parsed = parse_dsn(config.dsn);
    if (!parsed) {
        throw std::system_error(parsed.error(),
                                "HOP_DB_DSN: expected empty, sqlite://<path> or postgres://...");
    }
    if (parsed->backend == Backend::kSqlite) {
        SqliteOptions o;
        o.path = parsed->target;
        o.pool_size = config.max_open_conns;
        return std::make_unique<SqliteRegistry>(std::move(o));
    }
    PgOptions o;
    o.dsn = parsed->target;
    o.pool_size = config.max_open_conns;
    return std::make_unique<PgRegistry>(std::move(o));
}

}  // namespace hopgate::registry
