// SqliteRegistry: the default registry, a single SQLite file (zero set-up).
//
// WAL mode, so readers never wait for the writer; a bounded pool of connections, so several
// threads run queries at once; write transactions start with BEGIN IMMEDIATE and wait up to
// `busy_timeout` for the write lock (then kDbUnavailable). Several processes may share the file
// (e.g. the server and `hopgate-server domain ...`).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "registry/registry.hpp"

namespace hopgate::registry {

struct SqliteOptions {
    std::string path = "hopgate.db";  // ":memory:" works too (then one connection)
    std::size_t pool_size = 4;        // connections, >= 1
    std::chrono::milliseconds busy_timeout{5000};
};

class SqliteRegistry final : public Registry {
  public:
    // Opens or creates the file, enables WAL, applies pending migrations. Start-up errors throw
    // std::system_error carrying an Errc (kDbUnavailable, kDbError, kSchemaTooNew) and a message
    // with the path and SQLite's reason.
    explicit SqliteRegistry(SqliteOptions options);
    ~SqliteRegistry() override;
    SqliteRegistry(const SqliteRegistry&) = delete;
    SqliteRegistry& operator=(const SqliteRegistry&) = delete;

    core::Result<Registration> register_domain(std::string_view domain,
                                               std::string_view memo) override;
    core::Status unregister_domain(std::string_view domain,
                                   std::optional<std::string_view> key) override;
    core::Result<bool> exists(std::string_view domain) override;
    core::Result<DomainRecord> status(std::string_view domain) override;
    core::Result<Page> list(const ListQuery& query) override;
    core::Result<std::string> rotate_key(std::string_view domain) override;
    core::Status validate(std::string_view domain, std::string_view key) override;

    // Diagnostics: highest applied migration, and the journal mode ("wal" for a file).
    core::Result<int> schema_version();
    core::Result<std::string> journal_mode();

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopgate::registry
