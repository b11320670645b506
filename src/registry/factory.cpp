#include "registry/factory.hpp"

#include <filesystem>
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

std::string describe_dsn(std::string_view dsn) {
    auto parsed = parse_dsn(dsn);
    if (!parsed) {
        return "invalid DSN";
    }
    if (parsed->backend == Backend::kSqlite) {
        std::error_code ec;
        auto abs = std::filesystem::absolute(parsed->target, ec);
        return "SQLite " + (ec ? parsed->target : abs.string());
    }
    // postgres://user:password@host/db?...: the userinfo ends at the last '@' before the path.
    std::string out = parsed->target;
    const std::size_t scheme_end = out.find("://") + 3;
    const std::size_t path_start = out.find_first_of("/?", scheme_end);
    const std::size_t at = out.rfind('@', path_start == std::string::npos ? out.size() : path_start);
    if (at != std::string::npos && at > scheme_end) {
        const std::size_t colon = out.find(':', scheme_end);
        if (colon != std::string::npos && colon < at) {
            out.replace(colon + 1, at - colon - 1, "***");
        }
    }
    // A password among the query parameters.
    for (std::size_t pos = out.find("password="); pos != std::string::npos;
         pos = out.find("password=", pos + 1)) {
        const std::size_t end = out.find('&', pos);
        out.replace(pos + 9, (end == std::string::npos ? out.size() : end) - pos - 9, "***");
    }
    return "PostgreSQL " + out;
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
    o.max_idle = config.max_idle_conns;
    o.max_lifetime = config.conn_max_lifetime;
    return std::make_unique<PgRegistry>(std::move(o));
}

}  // namespace hopgate::registry
