#include "registry/sqlite_registry.hpp"

#include <sqlite3.h>

#include <string>
#include <system_error>
#include <utility>

#include "registry/detail.hpp"
#include "registry/migrations.hpp"
#include "registry/pool.hpp"

namespace hopgate::registry {
namespace {

std::error_code map_rc(int rc) {
    switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_NOMEM:
        case SQLITE_PROTOCOL:
            return Errc::kDbUnavailable;
        case SQLITE_CONSTRAINT:
            if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
                return Errc::kDuplicate;
            }
            return Errc::kDbError;
        default:
            return Errc::kDbError;
    }
}

struct Conn {
    sqlite3* db = nullptr;
    Conn() = default;
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    ~Conn() { sqlite3_close_v2(db); }
};

// A prepared statement; the first failing call's result code sticks in rc().
class Stmt {
  public:
    Stmt(sqlite3* db, std::string_view sql) {
        rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s_, nullptr);
    }
    ~Stmt() { sqlite3_finalize(s_); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, std::string_view v) {
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        }
        return *this;
    }
    Stmt& bind(int i, std::int64_t v) {
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_int64(s_, i, v);
        }
        return *this;
    }
    // SQLITE_ROW, SQLITE_DONE, or an error code.
    int step() {
        if (rc_ != SQLITE_OK && rc_ != SQLITE_ROW && rc_ != SQLITE_DONE) {
            return rc_;
        }
        rc_ = sqlite3_step(s_);
        return rc_;
    }
    std::string text(int col) const {
        const auto* p = sqlite3_column_text(s_, col);
        return p == nullptr ? std::string()
                            : std::string(reinterpret_cast<const char*>(p),
                                          static_cast<std::size_t>(sqlite3_column_bytes(s_, col)));
    }
    std::int64_t int64(int col) const { return sqlite3_column_int64(s_, col); }

  private:
    sqlite3_stmt* s_ = nullptr;
    int rc_ = SQLITE_OK;
};

int exec(sqlite3* db, const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }

// Rolls back unless committed; used by multi-statement operations.
class Txn {
  public:
    Txn(sqlite3* db, const char* begin) : db_(db), rc_(exec(db, begin)) {}
    ~Txn() {
        if (rc_ == SQLITE_OK && !done_) {
            exec(db_, "ROLLBACK");
        }
    }
    int begin_rc() const { return rc_; }
    int commit() {
        done_ = true;
        const int rc = exec(db_, "COMMIT");
        if (rc != SQLITE_OK) {
            exec(db_, "ROLLBACK");
        }
        return rc;
    }

  private:
    sqlite3* db_;
    int rc_;
    bool done_ = false;
};

constexpr const char* kRecordCols = "id, domain, memo, created_at, updated_at";

DomainRecord read_record(const Stmt& s) {
    return DomainRecord{s.text(0), s.text(1), s.text(2), s.int64(3), s.int64(4)};
}

[[noreturn]] void fail_open(std::error_code ec, const std::string& path, const std::string& what) {
    throw std::system_error(ec, "sqlite registry '" + path + "': " + what);
}

}  // namespace

struct SqliteRegistry::Impl {
    SqliteOptions opts;
    std::unique_ptr<detail::ConnPool<Conn>> pool;

    core::Result<std::unique_ptr<Conn>> open_conn() const {
        auto c = std::make_unique<Conn>();
        const int rc = sqlite3_open_v2(
            opts.path.c_str(), &c->db,
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
        if (rc != SQLITE_OK) {
            return map_rc(rc);
        }
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, static_cast<int>(opts.busy_timeout.count()));
        // FULL: a key shown to an operator must survive a power cut once the API answered.
        exec(c->db, "PRAGMA synchronous=FULL");
        return c;
    }

    template <class Fn>
    auto with_conn(Fn&& fn) -> decltype(fn(std::declval<sqlite3*>())) {
        auto lease = pool->acquire(opts.busy_timeout);
        if (!lease) {
            return lease.error();
        }
        return fn((**lease).db);
    }
};

SqliteRegistry::SqliteRegistry(SqliteOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->opts = std::move(options);
    if (impl_->opts.path.empty()) {
        impl_->opts.path = "hopgate.db";
    }
    if (impl_->opts.path == ":memory:") {
        impl_->opts.pool_size = 1;  // every connection would be its own database
    }
    const std::string& path = impl_->opts.path;
    auto first = impl_->open_conn();
    if (!first) {
        fail_open(first.error(), path, "cannot open the database file");
    }
    sqlite3* db = (*first)->db;
    {
        Stmt wal(db, "PRAGMA journal_mode=WAL");
        if (const int rc = wal.step(); rc != SQLITE_ROW) {
            fail_open(map_rc(rc), path, std::string("cannot enable WAL: ") + sqlite3_errmsg(db));
        }
    }
    // Migrations: BEGIN IMMEDIATE takes the write lock, so two processes starting at once apply
    // each migration exactly once.
    Txn txn(db, "BEGIN IMMEDIATE");
    if (txn.begin_rc() != SQLITE_OK) {
        fail_open(map_rc(txn.begin_rc()), path, std::string("cannot lock: ") + sqlite3_errmsg(db));
    }
    if (exec(db,
             "CREATE TABLE IF NOT EXISTS schema_migrations ("
             " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)") !=
        SQLITE_OK) {
        fail_open(Errc::kDbError, path, sqlite3_errmsg(db));
    }
    int current = 0;
    {
        Stmt q(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
        if (q.step() != SQLITE_ROW) {
            fail_open(Errc::kDbError, path, sqlite3_errmsg(db));
        }
        current = static_cast<int>(q.int64(0));
    }
    const auto migrations = detail::sqlite_migrations();
    if (current > migrations.back().version) {
        fail_open(Errc::kSchemaTooNew, path,
                  "schema version " + std::to_string(current) + " is newer than this program's " +
                      std::to_string(migrations.back().version));
    }
    for (const auto& m : migrations) {
        if (m.version <= current) {
            continue;
        }
        if (exec(db, std::string(m.sql).c_str()) != SQLITE_OK) {
            fail_open(Errc::kDbError, path,
                      "migration " + std::to_string(m.version) + " failed: " + sqlite3_errmsg(db));
        }
        Stmt ins(db, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
        ins.bind(1, std::int64_t{m.version}).bind(2, m.name).bind(3, detail::now_ms());
        if (ins.step() != SQLITE_DONE) {
            fail_open(Errc::kDbError, path, sqlite3_errmsg(db));
        }
    }
    if (const int rc = txn.commit(); rc != SQLITE_OK) {
        fail_open(map_rc(rc), path, std::string("cannot commit migrations: ") + sqlite3_errmsg(db));
    }
    if (path == ":memory:") {
        // The in-memory database lives only as long as this connection: it is the pool's only one
        // and is never discarded, so the factory runs once.
        auto holder = std::make_shared<std::unique_ptr<Conn>>(std::move(*first));
        impl_->pool = std::make_unique<detail::ConnPool<Conn>>(
            1,
            [holder]() -> core::Result<std::unique_ptr<Conn>> {
                if (*holder) {
                    return std::move(*holder);
                }
                return Errc::kDbUnavailable;
            },
            nullptr);
    } else {
        // The pool opens its connections lazily (cheap for SQLite); the migration one closes here.
        impl_->pool = std::make_unique<detail::ConnPool<Conn>>(
            impl_->opts.pool_size, [impl = impl_.get()] { return impl->open_conn(); }, nullptr);
    }
}

SqliteRegistry::~SqliteRegistry() = default;

core::Result<Registration> SqliteRegistry::register_domain(std::string_view domain,
                                                           std::string_view memo) {
    auto row = detail::prepare_new_row(domain, memo);
    if (!row) {
        return row.error();
    }
    return impl_->with_conn([&](sqlite3* db) -> core::Result<Registration> {
        Stmt s(db,
               "INSERT INTO domains (id, domain, client_api_key_hash, memo, created_at, "
               "updated_at) VALUES (?, ?, ?, ?, ?, ?)");
        const auto& r = row->record;
        s.bind(1, r.id).bind(2, r.domain).bind(3, row->key_hash).bind(4, r.memo);
        s.bind(5, r.created_at_ms).bind(6, r.updated_at_ms);
        if (const int rc = s.step(); rc != SQLITE_DONE) {
            return map_rc(rc);
        }
        return Registration{row->record, row->key};
    });
}

core::Status SqliteRegistry::unregister_domain(std::string_view domain,
                                               std::optional<std::string_view> key) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    return impl_->with_conn([&](sqlite3* db) -> core::Status {
        Txn txn(db, "BEGIN IMMEDIATE");
        if (txn.begin_rc() != SQLITE_OK) {
            return map_rc(txn.begin_rc());
        }
        Stmt q(db, "SELECT client_api_key_hash FROM domains WHERE domain = ?");
        q.bind(1, *name);
        const int rc = q.step();
        if (rc == SQLITE_DONE) {
            return Errc::kNotFound;
        }
        if (rc != SQLITE_ROW) {
            return map_rc(rc);
        }
        if (key && !constant_time_equal(hash_key(*key), q.text(0))) {
            return Errc::kKeyMismatch;
        }
        Stmt del(db, "DELETE FROM domains WHERE domain = ?");
        del.bind(1, *name);
        if (const int drc = del.step(); drc != SQLITE_DONE) {
            return map_rc(drc);
        }
        if (const int crc = txn.commit(); crc != SQLITE_OK) {
            return map_rc(crc);
        }
        return {};
    });
}

core::Result<bool> SqliteRegistry::exists(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    return impl_->with_conn([&](sqlite3* db) -> core::Result<bool> {
        Stmt q(db, "SELECT 1 FROM domains WHERE domain = ?");
        q.bind(1, *name);
        const int rc = q.step();
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
            return rc == SQLITE_ROW;
        }
        return map_rc(rc);
    });
}

core::Result<DomainRecord> SqliteRegistry::status(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    return impl_->with_conn([&](sqlite3* db) -> core::Result<DomainRecord> {
        Stmt q(db, std::string("SELECT ") + kRecordCols + " FROM domains WHERE domain = ?");
        q.bind(1, *name);
        const int rc = q.step();
        if (rc == SQLITE_ROW) {
            return read_record(q);
        }
        return rc == SQLITE_DONE ? std::error_code(Errc::kNotFound) : map_rc(rc);
    });
}

core::Result<Page> SqliteRegistry::list(const ListQuery& query) {
    if (auto st = detail::check_query(query); !st) {
        return st.error();
    }
    return impl_->with_conn([&](sqlite3* db) -> core::Result<Page> {
        Txn txn(db, "BEGIN");  // one snapshot for the page and the total
        if (txn.begin_rc() != SQLITE_OK) {
            return map_rc(txn.begin_rc());
        }
        Page page;
        Stmt q(db, std::string("SELECT ") + kRecordCols +
                       " FROM domains WHERE domain > ? ORDER BY domain LIMIT ?");
        q.bind(1, query.after).bind(2, static_cast<std::int64_t>(query.limit + 1));
        int rc = 0;
        while ((rc = q.step()) == SQLITE_ROW) {
            page.items.push_back(read_record(q));
        }
        if (rc != SQLITE_DONE) {
            return map_rc(rc);
        }
        if (page.items.size() > query.limit) {
            page.items.pop_back();
            page.next_after = page.items.back().domain;
        }
        Stmt c(db, "SELECT COUNT(*) FROM domains");
        if (rc = c.step(); rc != SQLITE_ROW) {
            return map_rc(rc);
        }
        page.total = c.int64(0);
        return page;
    });
}

core::Result<std::string> SqliteRegistry::rotate_key(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    auto key = generate_key();
    if (!key) {
        return key.error();
    }
    return impl_->with_conn([&](sqlite3* db) -> core::Result<std::string> {
        Stmt u(db, "UPDATE domains SET client_api_key_hash = ?, updated_at = ? WHERE domain = ?");
        u.bind(1, hash_key(*key)).bind(2, detail::now_ms()).bind(3, *name);
        if (const int rc = u.step(); rc != SQLITE_DONE) {
            return map_rc(rc);
        }
        if (sqlite3_changes(db) == 0) {
            return Errc::kNotFound;
        }
        return *key;
    });
}

core::Status SqliteRegistry::validate(std::string_view domain, std::string_view key) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    return impl_->with_conn([&](sqlite3* db) -> core::Status {
        Stmt q(db, "SELECT client_api_key_hash FROM domains WHERE domain = ?");
        q.bind(1, *name);
        const int rc = q.step();
        if (rc == SQLITE_DONE) {
            return Errc::kNotFound;
        }
        if (rc != SQLITE_ROW) {
            return map_rc(rc);
        }
        if (!constant_time_equal(hash_key(key), q.text(0))) {
            return Errc::kKeyMismatch;
        }
        return {};
    });
}

core::Result<int> SqliteRegistry::schema_version() {
    return impl_->with_conn([&](sqlite3* db) -> core::Result<int> {
        Stmt q(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
        if (const int rc = q.step(); rc != SQLITE_ROW) {
            return map_rc(rc);
        }
        return static_cast<int>(q.int64(0));
    });
}

core::Result<std::string> SqliteRegistry::journal_mode() {
    return impl_->with_conn([&](sqlite3* db) -> core::Result<std::string> {
        Stmt q(db, "PRAGMA journal_mode");
        if (const int rc = q.step(); rc != SQLITE_ROW) {
            return map_rc(rc);
        }
        return q.text(0);
    });
}

}  // namespace hopgate::registry
