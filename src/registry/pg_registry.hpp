// PgRegistry: the registry in PostgreSQL over libpq, for `postgres://` DSNs.
//
// A bounded pool of connections (HOP_DB_MAX_OPEN_CONNS). Idle connections are checked before
// reuse without a round trip (a restarted server has closed them), broken ones are dropped and
// replaced, so the registry recovers by itself after the database restarts. While the database
// is down calls fail fast with kDbUnavailable (bounded by connect_timeout). Read-only calls retry
// once on a fresh connection when the connection broke under them; writes do not (their outcome
// is unknown) and report kDbUnavailable.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "registry/registry.hpp"

namespace hopgate::registry {

struct PgOptions {
    std::string dsn;  // a libpq URI (postgres://user:pass@host:port/db?...) or key=value string
    std::size_t pool_size = 4;
    std::size_t max_idle = 4;              // connections kept open while unused
    std::chrono::seconds max_lifetime{0};  // a connection this old is closed, not reused; 0 = never
    std::chrono::milliseconds acquire_timeout{5000};     // wait for a free pooled connection
    std::chrono::seconds connect_timeout{5};             // unless the DSN sets connect_timeout
    std::chrono::milliseconds statement_timeout{10000};  // unless the DSN sets options
};

class PgRegistry final : public Registry {
  public:
    // Connects once and applies pending migrations (under an advisory lock, so several servers
    // may start at once). Throws std::system_error (kDbUnavailable, kDbError, kSchemaTooNew) with
    // libpq's message, password removed.
    explicit PgRegistry(PgOptions options);
    ~PgRegistry() override;
    PgRegistry(const PgRegistry&) = delete;
    PgRegistry& operator=(const PgRegistry&) = delete;

    core::Result<Registration> register_domain(std::string_view domain,
                                               std::string_view memo) override;
    core::Status unregister_domain(std::string_view domain,
                                   std::optional<std::string_view> key) override;
    core::Result<bool> exists(std::string_view domain) override;
    core::Result<DomainRecord> status(std::string_view domain) override;
    core::Result<Page> list(const ListQuery& query) override;
    core::Result<std::string> rotate_key(std::string_view domain) override;
    core::Status validate(std::string_view domain, std::string_view key) override;

    core::Result<int> schema_version();
    // Connections currently open (leased + idle); for tests and metrics.
    std::size_t open_connections() const;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopgate::registry
