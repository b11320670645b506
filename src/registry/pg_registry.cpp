#include "registry/pg_registry.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "registry/detail.hpp"
#include "registry/migrations.hpp"
#include "registry/pool.hpp"

namespace hopgate::registry {
namespace {

// pg_advisory_xact_lock key that serialises migrations across servers ("HopGate1").
constexpr const char* kMigrationLockKey = "5219485469488113969";

void ignore_notice(void* /*arg*/, const char* /*message*/) {}

struct Conn {
    PGconn* pg = nullptr;
    Conn() = default;
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    ~Conn() { PQfinish(pg); }
    bool broken() const { return PQstatus(pg) != CONNECTION_OK; }
};

// An idle connection is reusable only if the server has said nothing since: a restarted or
// stopped server sends a FATAL message and closes the socket, which shows as readable here.
// Checked with a zero-timeout poll, so reuse costs no round trip.
bool healthy(Conn& c) {
    if (c.broken() || PQtransactionStatus(c.pg) != PQTRANS_IDLE) {
        return false;
    }
    pollfd p{PQsocket(c.pg), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
}

class Res {
  public:
    explicit Res(PGresult* r) : r_(r) {}
    ~Res() { PQclear(r_); }
    Res(const Res&) = delete;
    Res& operator=(const Res&) = delete;
    PGresult* get() const { return r_; }
    int rows() const { return PQntuples(r_); }
    std::string text(int row, int col) const {
        return std::string(PQgetvalue(r_, row, col),
                           static_cast<std::size_t>(PQgetlength(r_, row, col)));
    }
    std::int64_t int64(int row, int col) const { return std::stoll(PQgetvalue(r_, row, col)); }
    int affected() const {
        const char* n = PQcmdTuples(r_);
        return (n == nullptr || *n == '\0') ? 0 : std::atoi(n);
    }

  private:
    PGresult* r_;
};

std::error_code classify(const Conn& c, PGresult* r) {
    if (r == nullptr) {
        return Errc::kDbUnavailable;
    }
    const auto st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return {};
    }
    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state == nullptr || c.broken()) {
        return Errc::kDbUnavailable;  // libpq's own error: the connection failed
    }
    const std::string_view s(state);
    if (s == "23505") {
        return Errc::kDuplicate;  // unique_violation
    }
    // 08 connection exception, 53 insufficient resources, 57P0x shutdown / cannot connect now,
    // 57014 statement timeout, 40001/40P01 serialization failure / deadlock: all retryable.
    if (s.starts_with("08") || s.starts_with("53") || s.starts_with("57P0") || s == "57014" ||
        s == "40001" || s == "40P01") {
        return Errc::kDbUnavailable;
    }
    return Errc::kDbError;
}

// Runs one statement with text parameters. Parameters never contain NUL: domains are
// normalised, memos validated, everything else is hex or digits.
struct Exec {
    std::error_code ec;
    std::unique_ptr<Res> res;
};

Exec run(Conn& c, const char* sql, std::initializer_list<std::string_view> params = {}) {
    std::vector<std::string> owned(params.begin(), params.end());
    std::vector<const char*> values;
    values.reserve(owned.size());
    for (const auto& p : owned) {
        values.push_back(p.c_str());
    }
    PGresult* r = params.size() == 0 ? PQexec(c.pg, sql)
                                     : PQexecParams(c.pg, sql, static_cast<int>(values.size()),
                                                    nullptr, values.data(), nullptr, nullptr, 0);
    Exec e;
    e.ec = classify(c, r);
    e.res = std::make_unique<Res>(r);
    return e;
}

constexpr const char* kRecordCols =
    "id::text, domain, memo, (extract(epoch from created_at) * 1000)::bigint, "
    "(extract(epoch from updated_at) * 1000)::bigint";

DomainRecord read_record(const Res& r, int row) {
    return DomainRecord{r.text(row, 0), r.text(row, 1), r.text(row, 2), r.int64(row, 3),
                        r.int64(row, 4)};
}

// Aborts an explicit transaction unless committed.
class Txn {
  public:
    explicit Txn(Conn& c) : c_(c), begin_(run(c, "BEGIN")) {}
    ~Txn() {
        if (!begin_.ec && !done_ && !c_.broken()) {
            PQclear(PQexec(c_.pg, "ROLLBACK"));
        }
    }
    std::error_code begin_error() const { return begin_.ec; }
    std::error_code commit() {
        done_ = true;
        return run(c_, "COMMIT").ec;
    }

  private:
    Conn& c_;
    Exec begin_;
    bool done_ = false;
};

std::string ms(std::int64_t v) { return std::to_string(v); }

}  // namespace

struct PgRegistry::Impl {
    PgOptions opts;
    std::unique_ptr<detail::ConnPool<Conn>> pool;

    // Connects; on failure returns kDbUnavailable and, if `why` is given, libpq's message.
    core::Result<std::unique_ptr<Conn>> connect(std::string* why = nullptr) const {
        const std::string timeout = std::to_string(opts.connect_timeout.count());
        const std::string options =
            "-c statement_timeout=" + std::to_string(opts.statement_timeout.count());
        // The DSN comes last: with expand_dbname its settings override these defaults.
        const char* keys[] = {"connect_timeout", "options", "application_name", "dbname", nullptr};
        const char* vals[] = {timeout.c_str(), options.c_str(), "hopgate", opts.dsn.c_str(),
                              nullptr};
        auto c = std::make_unique<Conn>();
        c->pg = PQconnectdbParams(keys, vals, 1);
        if (c->pg == nullptr || PQstatus(c->pg) != CONNECTION_OK) {
            if (why != nullptr) {
                *why = c->pg == nullptr ? "out of memory" : PQerrorMessage(c->pg);
                while (!why->empty() && (why->back() == '\n' || why->back() == ' ')) {
                    why->pop_back();
                }
            }
            return Errc::kDbUnavailable;
        }
        PQsetNoticeProcessor(c->pg, ignore_notice, nullptr);
        return c;
    }

    // Runs fn(Conn&) on a pooled connection. A connection that broke is discarded; read-only
    // operations (retry = true) then run once more on a fresh connection.
    template <class Fn>
    auto with_conn(bool retry, Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
        for (int attempt = 0;; ++attempt) {
            auto lease = pool->acquire(opts.acquire_timeout);
            if (!lease) {
                return lease.error();
            }
            auto r = fn(**lease);
            if (!(**lease).broken()) {
                return r;
            }
            lease->discard();
            if (!retry || attempt > 0) {
                return r;
            }
        }
    }

    [[noreturn]] void fail(std::error_code ec, const std::string& what) const {
        throw std::system_error(ec, "postgres registry: " + what);
    }

    void migrate(Conn& c) const {
        Txn txn(c);
        if (txn.begin_error()) {
            fail(txn.begin_error(), PQerrorMessage(c.pg));
        }
        const auto check = [&](const Exec& e, const std::string& what) {
            if (e.ec) {
                fail(e.ec, what + ": " + PQerrorMessage(c.pg));
            }
        };
        check(run(c, "SELECT pg_advisory_xact_lock($1::bigint)", {kMigrationLockKey}),
              "migration lock");
        check(run(c,
                  "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                  "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"),
              "schema_migrations");
        auto cur = run(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
        check(cur, "schema version");
        const int current = static_cast<int>(cur.res->int64(0, 0));
        const auto migrations = detail::pg_migrations();
        if (current > migrations.back().version) {
            fail(Errc::kSchemaTooNew, "schema version " + std::to_string(current) +
                                          " is newer than this program's " +
                                          std::to_string(migrations.back().version));
        }
        for (const auto& m : migrations) {
            if (m.version <= current) {
                continue;
            }
            check(run(c, std::string(m.sql).c_str()), "migration " + std::to_string(m.version));
            check(run(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                      {std::to_string(m.version), m.name}),
                  "record migration " + std::to_string(m.version));
        }
        if (auto ec = txn.commit()) {
            fail(ec, std::string("commit migrations: ") + PQerrorMessage(c.pg));
        }
    }
};

PgRegistry::PgRegistry(PgOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->opts = std::move(options);
    if (PQisthreadsafe() == 0) {
        impl_->fail(Errc::kDbError, "libpq was built without thread safety");
    }
    std::string why;
    auto first = impl_->connect(&why);
    if (!first) {
        impl_->fail(first.error(), "cannot connect: " + why);
    }
    impl_->migrate(**first);
    impl_->pool = std::make_unique<detail::ConnPool<Conn>>(
        impl_->opts.pool_size, [impl = impl_.get()] { return impl->connect(); }, healthy,
        impl_->opts.max_idle, impl_->opts.max_lifetime);
}

PgRegistry::~PgRegistry() = default;

core::Result<Registration> PgRegistry::register_domain(std::string_view domain,
                                                       std::string_view memo) {
    auto row = detail::prepare_new_row(domain, memo);
    if (!row) {
        return row.error();
    }
    const auto& r = row->record;
    return impl_->with_conn(false, [&](Conn& c) -> core::Result<Registration> {
        auto e =
            run(c,
                "INSERT INTO domains (id, domain, client_api_key_hash, memo, created_at, "
                "updated_at) VALUES ($1::uuid, $2, $3, $4, "
                "'epoch'::timestamptz + $5::bigint * interval '1 millisecond', "
                "'epoch'::timestamptz + $6::bigint * interval '1 millisecond')",
                {r.id, r.domain, row->key_hash, r.memo, ms(r.created_at_ms), ms(r.updated_at_ms)});
        if (e.ec) {
            return e.ec;
        }
        return Registration{r, row->key};
    });
}

core::Status PgRegistry::unregister_domain(std::string_view domain,
                                           std::optional<std::string_view> key) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    if (!key) {
        return impl_->with_conn(false, [&](Conn& c) -> core::Status {
            auto e = run(c, "DELETE FROM domains WHERE domain = $1", {*name});
            if (e.ec) {
                return e.ec;
            }
            return e.res->affected() == 0 ? core::Status(Errc::kNotFound) : core::Status();
        });
    }
    return impl_->with_conn(false, [&](Conn& c) -> core::Status {
        Txn txn(c);
        if (auto ec = txn.begin_error()) {
            return ec;
        }
        // FOR UPDATE: a concurrent rotation cannot slip in between the check and the delete.
        auto q =
            run(c, "SELECT client_api_key_hash FROM domains WHERE domain = $1 FOR UPDATE", {*name});
        if (q.ec) {
            return q.ec;
        }
        if (q.res->rows() == 0) {
            return Errc::kNotFound;
        }
        if (!constant_time_equal(hash_key(*key), q.res->text(0, 0))) {
            return Errc::kKeyMismatch;
        }
        if (auto d = run(c, "DELETE FROM domains WHERE domain = $1", {*name}); d.ec) {
            return d.ec;
        }
        if (auto ec = txn.commit()) {
            return ec;
        }
        return {};
    });
}

core::Result<bool> PgRegistry::exists(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    return impl_->with_conn(true, [&](Conn& c) -> core::Result<bool> {
        auto e = run(c, "SELECT 1 FROM domains WHERE domain = $1", {*name});
        if (e.ec) {
            return e.ec;
        }
        return e.res->rows() > 0;
    });
}

core::Result<DomainRecord> PgRegistry::status(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    const std::string sql =
        std::string("SELECT ") + kRecordCols + " FROM domains WHERE domain = $1";
    return impl_->with_conn(true, [&](Conn& c) -> core::Result<DomainRecord> {
        auto e = run(c, sql.c_str(), {*name});
        if (e.ec) {
            return e.ec;
        }
        if (e.res->rows() == 0) {
            return Errc::kNotFound;
        }
        return read_record(*e.res, 0);
    });
}

core::Result<Page> PgRegistry::list(const ListQuery& query) {
    if (auto st = detail::check_query(query); !st) {
        return st.error();
    }
    // One statement, so the page and the total come from the same snapshot.
    const std::string sql = std::string("SELECT ") + kRecordCols +
                            ", (SELECT COUNT(*) FROM domains) FROM domains WHERE domain > $1 "
                            "ORDER BY domain LIMIT $2";
    return impl_->with_conn(true, [&](Conn& c) -> core::Result<Page> {
        auto e = run(c, sql.c_str(), {query.after, std::to_string(query.limit + 1)});
        if (e.ec) {
            return e.ec;
        }
        Page page;
        const int n = e.res->rows();
        for (int i = 0; i < n; ++i) {
            page.items.push_back(read_record(*e.res, i));
        }
        if (page.items.size() > query.limit) {
            page.items.pop_back();
            page.next_after = page.items.back().domain;
        }
        if (n > 0) {
            page.total = e.res->int64(0, 5);
        } else {
            auto t = run(c, "SELECT COUNT(*) FROM domains");
            if (t.ec) {
                return t.ec;
            }
            page.total = t.res->int64(0, 0);
        }
        return page;
    });
}

core::Result<std::string> PgRegistry::rotate_key(std::string_view domain) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    auto key = generate_key();
    if (!key) {
        return key.error();
    }
    return impl_->with_conn(false, [&](Conn& c) -> core::Result<std::string> {
        auto e = run(c,
                     "UPDATE domains SET client_api_key_hash = $1, updated_at = "
                     "'epoch'::timestamptz + $2::bigint * interval '1 millisecond' "
                     "WHERE domain = $3",
                     {hash_key(*key), ms(detail::now_ms()), *name});
        if (e.ec) {
            return e.ec;
        }
        if (e.res->affected() == 0) {
            return Errc::kNotFound;
        }
        return *key;
    });
}

core::Status PgRegistry::validate(std::string_view domain, std::string_view key) {
    auto name = normalize_domain(domain);
    if (!name) {
        return name.error();
    }
    return impl_->with_conn(true, [&](Conn& c) -> core::Status {
        auto e = run(c, "SELECT client_api_key_hash FROM domains WHERE domain = $1", {*name});
        if (e.ec) {
            return e.ec;
        }
        if (e.res->rows() == 0) {
            return Errc::kNotFound;
        }
        if (!constant_time_equal(hash_key(key), e.res->text(0, 0))) {
            return Errc::kKeyMismatch;
        }
        return {};
    });
}

core::Result<int> PgRegistry::schema_version() {
    return impl_->with_conn(true, [&](Conn& c) -> core::Result<int> {
        auto e = run(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
        if (e.ec) {
            return e.ec;
        }
        return static_cast<int>(e.res->int64(0, 0));
    });
}

std::size_t PgRegistry::open_connections() const { return impl_->pool->open_count(); }

}  // namespace hopgate::registry
