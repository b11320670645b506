// The Registry contract against MemoryRegistry and SqliteRegistry, plus SQLite specifics:
// WAL, migrations, persistence, two handles on one file, start-up errors, the DSN factory.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "registry/factory.hpp"
#include "registry/memory_registry.hpp"
#include "registry/sqlite_registry.hpp"
#include "registry_contract.hpp"

namespace hopgate::registry {
namespace {

namespace fs = std::filesystem;

// A private directory per test, removed afterwards.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "hg-reg-XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

struct MemoryBackend {
    static constexpr const char* kName = "memory";
    std::unique_ptr<Registry> open() { return std::make_unique<MemoryRegistry>(); }
};

struct SqliteBackend {
    static constexpr const char* kName = "sqlite";
    TempDir dir;
    std::unique_ptr<Registry> open() {
        return std::make_unique<SqliteRegistry>(SqliteOptions{(dir.path / "reg.db").string(), 4});
    }
};

}  // namespace

namespace contract {
using Backends = ::testing::Types<MemoryBackend, SqliteBackend>;
INSTANTIATE_TYPED_TEST_SUITE_P(Local, RegistryContract, Backends);
}  // namespace contract

namespace {

// A new file is created in WAL mode with every migration recorded.
TEST(SqliteRegistry, CreatesWalDatabaseWithMigrations) {
    TempDir dir;
    SqliteRegistry reg({(dir.path / "a.db").string()});
    EXPECT_EQ(*reg.journal_mode(), "wal");
    EXPECT_EQ(*reg.schema_version(), 1);
}

// Data survives closing and reopening, and reopening does not re-run migrations.
TEST(SqliteRegistry, PersistsAcrossReopen) {
    TempDir dir;
    const auto path = (dir.path / "p.db").string();
    std::string key;
    {
        SqliteRegistry reg({path});
        key = reg.register_domain("keep.example.com", "m")->client_api_key;
    }
    SqliteRegistry reg({path});
    EXPECT_TRUE(reg.validate("keep.example.com", key).ok());
    EXPECT_EQ(*reg.schema_version(), 1);
}

// The clear key never reaches the file; its SHA-256 does.
TEST(SqliteRegistry, StoresOnlyKeyHash) {
    TempDir dir;
    const auto path = (dir.path / "h.db").string();
    std::string key;
    {
        SqliteRegistry reg({path});
        key = reg.register_domain("hash.example.com", "")->client_api_key;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT client_api_key_hash FROM domains", -1, &s, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
    const std::string stored(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    sqlite3_close(db);
    EXPECT_EQ(stored, sha256_hex(key));
    EXPECT_NE(stored, key);
}

// A database migrated by a newer program is refused, not modified.
TEST(SqliteRegistry, RefusesNewerSchema) {
    TempDir dir;
    const auto path = (dir.path / "n.db").string();
    { SqliteRegistry reg({path}); }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (99, 'future', 0)", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    try {
        SqliteRegistry reg({path});
        FAIL() << "opened a newer schema";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), Errc::kSchemaTooNew);
        EXPECT_NE(std::string(e.what()).find("99"), std::string::npos);
    }
}

// An unusable path fails at start-up with the path in the message.
TEST(SqliteRegistry, UnopenablePathThrows) {
    try {
        SqliteRegistry reg({"/nonexistent-dir/x/reg.db"});
        FAIL() << "opened an impossible path";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), Errc::kDbUnavailable);
        EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x/reg.db"), std::string::npos);
    }
}

// Two handles on one file (server + CLI) see each other's writes, even when writing at once.
TEST(SqliteRegistry, TwoHandlesOneFile) {
    TempDir dir;
    const auto path = (dir.path / "shared.db").string();
    SqliteRegistry a({path}), b({path});
    auto r = a.register_domain("shared.example.com", "");
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(b.validate("shared.example.com", r->client_api_key).ok());
    auto k = b.rotate_key("shared.example.com");
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(a.validate("shared.example.com", r->client_api_key).error(), Errc::kKeyMismatch);
    std::atomic<int> errors{0};
    auto writer = [&](SqliteRegistry& reg, char tag) {
        for (int i = 0; i < 40; ++i) {
            if (!reg.register_domain(std::string(1, tag) + std::to_string(i) + ".example.com", "")
                     .ok()) {
                ++errors;
            }
        }
    };
    std::thread ta(writer, std::ref(a), 'a'), tb(writer, std::ref(b), 'b');
    ta.join();
    tb.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(a.list({})->total, 81);
}

// ":memory:" works (one connection, nothing on disk).
TEST(SqliteRegistry, InMemory) {
    SqliteRegistry reg({":memory:", 4});
    auto r = reg.register_domain("mem.example.com", "");
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(reg.validate("mem.example.com", r->client_api_key).ok());
}

// DSN forms: empty -> hopgate.db, sqlite://path, postgres(ql)://; anything else is an error.
TEST(Dsn, Parse) {
    EXPECT_EQ(parse_dsn("")->target, "hopgate.db");
    EXPECT_EQ(parse_dsn("")->backend, Backend::kSqlite);
    EXPECT_EQ(parse_dsn("sqlite:///var/lib/hopgate/reg.db")->target, "/var/lib/hopgate/reg.db");
    EXPECT_EQ(parse_dsn("sqlite://data/reg.db")->target, "data/reg.db");
    EXPECT_EQ(parse_dsn("postgres://u:p@h:5432/db")->backend, Backend::kPostgres);
    EXPECT_EQ(parse_dsn("postgresql://h/db")->target, "postgresql://h/db");
    EXPECT_EQ(parse_dsn("sqlite://").error(), Errc::kInvalidDsn);
    EXPECT_EQ(parse_dsn("sqlite:///x.db?mode=ro").error(), Errc::kInvalidDsn);
    EXPECT_EQ(parse_dsn("mysql://h/db").error(), Errc::kInvalidDsn);
    EXPECT_EQ(parse_dsn("/plain/path.db").error(), Errc::kInvalidDsn);
}

// The factory opens SQLite from a DSN and rejects a bad one with a clear exception.
TEST(Dsn, OpenRegistry) {
    TempDir dir;
    auto reg = open_registry({"sqlite://" + (dir.path / "f.db").string(), 2});
    ASSERT_NE(reg, nullptr);
    EXPECT_TRUE(reg->register_domain("factory.example.com", "").ok());
    EXPECT_TRUE(fs::exists(dir.path / "f.db"));
    try {
        open_registry({"redis://x", 2});
        FAIL();
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code(), Errc::kInvalidDsn);
        EXPECT_NE(std::string(e.what()).find("HOP_DB_DSN"), std::string::npos);
    }
}

}  // namespace
}  // namespace hopgate::registry
