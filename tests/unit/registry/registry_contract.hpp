// The Registry contract: one typed test suite that every implementation must pass.
// Instantiated in registry_sqlite_test.cpp (MemoryRegistry, SqliteRegistry) and
// registry_pg_test.cpp (PgRegistry against a real server). A backend type B provides
//   static constexpr const char* kName;
//   std::unique_ptr<Registry> open();   // a fresh, empty store for this test
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "registry/error.hpp"
#include "registry/key.hpp"
#include "registry/registry.hpp"

namespace hopgate::registry::contract {

template <class B>
class RegistryContract : public ::testing::Test {
  protected:
    void SetUp() override {
        reg_ = backend_.open();
        ASSERT_NE(reg_, nullptr) << "backend " << B::kName << " did not open";
    }
    void TearDown() override { reg_.reset(); }

    Registration must_register(const std::string& d, const std::string& memo = "") {
        auto r = reg_->register_domain(d, memo);
        EXPECT_TRUE(r.ok()) << d << ": " << r.error().message();
        return r.ok() ? *r : Registration{};
    }

    B backend_;
    std::unique_ptr<Registry> reg_;
};

TYPED_TEST_SUITE_P(RegistryContract);

// Registration returns a fresh 64-hex key once, and the record reads back identically.
TYPED_TEST_P(RegistryContract, RegisterReturnsKeyAndRecord) {
    auto r = this->must_register("app.example.com", "team a");
    EXPECT_TRUE(is_well_formed_key(r.client_api_key));
    EXPECT_EQ(r.record.domain, "app.example.com");
    EXPECT_EQ(r.record.memo, "team a");
    EXPECT_EQ(r.record.id.size(), 36u);
    EXPECT_EQ(r.record.id[14], '4');  // UUID v4
    EXPECT_GT(r.record.created_at_ms, 1'600'000'000'000);
    EXPECT_EQ(r.record.created_at_ms, r.record.updated_at_ms);
    auto st = this->reg_->status("app.example.com");
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(*st, r.record);
    EXPECT_TRUE(this->reg_->validate("app.example.com", r.client_api_key).ok());
    auto other = this->must_register("other.example.com");
    EXPECT_NE(other.client_api_key, r.client_api_key);
    EXPECT_NE(other.record.id, r.record.id);
}

// Every entry point normalises: case, whitespace and a trailing dot do not make a new name.
TYPED_TEST_P(RegistryContract, NormalisesDomains) {
    auto r = this->must_register("  App.Example.COM. ");
    EXPECT_EQ(r.record.domain, "app.example.com");
    EXPECT_EQ(this->reg_->register_domain("APP.example.com", "").error(), Errc::kDuplicate);
    auto e = this->reg_->exists("app.EXAMPLE.com.");
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(*e);
    EXPECT_TRUE(this->reg_->validate("\tAPP.example.com\n", r.client_api_key).ok());
}

// A second registration of the same name is kDuplicate and leaves the first key valid.
TYPED_TEST_P(RegistryContract, DuplicateRejected) {
    auto r = this->must_register("dup.example.com");
    EXPECT_EQ(this->reg_->register_domain("dup.example.com", "x").error(), Errc::kDuplicate);
    EXPECT_TRUE(this->reg_->validate("dup.example.com", r.client_api_key).ok());
}

// Invalid names are refused with their reason and nothing is stored.
TYPED_TEST_P(RegistryContract, InvalidDomainsRefused) {
    const std::pair<std::string, Errc> cases[] = {
        {"", Errc::kDomainEmpty},
        {"localhost", Errc::kDomainNoDot},
        {"a..example.com", Errc::kDomainEmptyLabel},
        {"app.example.com:443", Errc::kDomainHasPort},
        {"b\xc3\xbc"
         "cher.de",
         Errc::kDomainNonAscii},
        {"1.2.3.4", Errc::kDomainNumeric},
        {"a.com'; DROP TABLE domains;--", Errc::kDomainBadChar},
        {std::string("a\0b.com", 7), Errc::kDomainBadChar},
        {"-a.example.com", Errc::kDomainHyphen},
        {std::string(64, 'a') + ".com", Errc::kDomainLabelTooLong},
    };
    for (const auto& [name, code] : cases) {
        EXPECT_EQ(this->reg_->register_domain(name, "").error(), code) << name;
        EXPECT_EQ(this->reg_->exists(name).error(), code) << name;
        EXPECT_EQ(this->reg_->validate(name, std::string(64, 'a')).error(), code) << name;
        EXPECT_TRUE(is_invalid_domain(make_error_code(code)));
    }
    auto page = this->reg_->list({});
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page->total, 0);
}

// Memos are stored verbatim (Unicode, quotes, SQL) but control characters and bad UTF-8 are not.
TYPED_TEST_P(RegistryContract, MemosStoredVerbatimOrRefused) {
    const std::string tricky = "caf\xc3\xa9 \xe2\x98\x95 x'); DROP TABLE domains;-- \"%_\\ \t";
    auto r = this->must_register("memo.example.com", tricky);
    auto st = this->reg_->status("memo.example.com");
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->memo, tricky);
    for (const std::string& bad :
         {std::string("a\x01"), std::string("a\nb"), std::string("\xff\xfe"),
          std::string("\xc0\xaf"), std::string(1025, 'm'), std::string("a\0b", 3)}) {
        EXPECT_EQ(this->reg_->register_domain("bad-memo.example.com", bad).error(),
                  Errc::kInvalidMemo);
    }
    EXPECT_FALSE(*this->reg_->exists("bad-memo.example.com"));
    EXPECT_TRUE(this->reg_->register_domain("max-memo.example.com", std::string(1024, 'm')).ok());
}

// validate() distinguishes an unknown domain from a wrong key; hex case does not matter.
TYPED_TEST_P(RegistryContract, ValidateChecksKey) {
    auto r = this->must_register("v.example.com");
    std::string upper = r.client_api_key;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    EXPECT_TRUE(this->reg_->validate("v.example.com", upper).ok());
    std::string wrong = r.client_api_key;
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    EXPECT_EQ(this->reg_->validate("v.example.com", wrong).error(), Errc::kKeyMismatch);
    EXPECT_EQ(this->reg_->validate("v.example.com", "").error(), Errc::kKeyMismatch);
    EXPECT_EQ(this->reg_->validate("v.example.com", "' OR '1'='1").error(), Errc::kKeyMismatch);
    EXPECT_EQ(this->reg_->validate("nope.example.com", r.client_api_key).error(), Errc::kNotFound);
}

// Unregistering with a key needs the right key; without one (operator) it always works.
TYPED_TEST_P(RegistryContract, Unregister) {
    auto r = this->must_register("u.example.com");
    EXPECT_EQ(this->reg_->unregister_domain("u.example.com", std::string(64, '0')).error(),
              Errc::kKeyMismatch);
    EXPECT_TRUE(*this->reg_->exists("u.example.com"));
    EXPECT_TRUE(this->reg_->unregister_domain("U.example.com", r.client_api_key).ok());
    EXPECT_FALSE(*this->reg_->exists("u.example.com"));
    EXPECT_EQ(this->reg_->unregister_domain("u.example.com", r.client_api_key).error(),
              Errc::kNotFound);
    EXPECT_EQ(this->reg_->validate("u.example.com", r.client_api_key).error(), Errc::kNotFound);
    this->must_register("op.example.com");
    EXPECT_TRUE(this->reg_->unregister_domain("op.example.com", std::nullopt).ok());
    EXPECT_EQ(this->reg_->unregister_domain("op.example.com", std::nullopt).error(),
              Errc::kNotFound);
    // The name can be registered again, with a new key.
    auto again = this->must_register("u.example.com");
    EXPECT_NE(again.client_api_key, r.client_api_key);
}

// Rotation invalidates the old key at once and returns a new one.
TYPED_TEST_P(RegistryContract, RotateKey) {
    auto r = this->must_register("rot.example.com", "m");
    auto k2 = this->reg_->rotate_key("rot.example.com");
    ASSERT_TRUE(k2.ok()) << k2.error().message();
    EXPECT_TRUE(is_well_formed_key(*k2));
    EXPECT_NE(*k2, r.client_api_key);
    EXPECT_EQ(this->reg_->validate("rot.example.com", r.client_api_key).error(),
              Errc::kKeyMismatch);
    EXPECT_TRUE(this->reg_->validate("rot.example.com", *k2).ok());
    auto st = this->reg_->status("rot.example.com");
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->created_at_ms, r.record.created_at_ms);
    EXPECT_GE(st->updated_at_ms, r.record.created_at_ms);
    EXPECT_EQ(st->memo, "m");
    EXPECT_EQ(this->reg_->rotate_key("nope.example.com").error(), Errc::kNotFound);
}

// Keyset paging walks every domain once, in byte order, with a stable total.
TYPED_TEST_P(RegistryContract, ListPages) {
    std::vector<std::string> names;
    for (int i = 0; i < 25; ++i) {
        names.push_back("d" + std::to_string(i) + ".example.com");
    }
    names.push_back("a-b.example.com");
    names.push_back("0.example.net");
    std::vector<std::string> shuffled = names;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
    for (const auto& n : shuffled) {
        this->must_register(n);
    }
    std::sort(names.begin(), names.end());
    std::vector<std::string> seen;
    ListQuery q;
    q.limit = 10;
    int pages = 0;
    for (;;) {
        auto page = this->reg_->list(q);
        ASSERT_TRUE(page.ok()) << page.error().message();
        EXPECT_EQ(page->total, 27);
        EXPECT_LE(page->items.size(), 10u);
        for (const auto& r : page->items) {
            seen.push_back(r.domain);
        }
        ++pages;
        if (page->next_after.empty()) {
            break;
        }
        EXPECT_EQ(page->next_after, seen.back());
        q.after = page->next_after;
    }
    EXPECT_EQ(pages, 3);
    EXPECT_EQ(seen, names);
    auto one = this->reg_->list({"", 1000});
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(one->items.size(), 27u);
    EXPECT_TRUE(one->next_after.empty());
    auto exact = this->reg_->list({"", 27});
    ASSERT_TRUE(exact.ok());
    EXPECT_TRUE(exact->next_after.empty());
    auto past = this->reg_->list({"zzz", 10});
    ASSERT_TRUE(past.ok());
    EXPECT_TRUE(past->items.empty());
    EXPECT_EQ(past->total, 27);
    EXPECT_EQ(this->reg_->list({"", 0}).error(), Errc::kInvalidArgument);
    EXPECT_EQ(this->reg_->list({"", 1001}).error(), Errc::kInvalidArgument);
    EXPECT_EQ(this->reg_->list({"a' OR 1=1", 10}).error(), Errc::kInvalidArgument);
}

// Unknown names: exists is false, status is kNotFound, list of an empty store is empty.
TYPED_TEST_P(RegistryContract, UnknownDomain) {
    auto e = this->reg_->exists("ghost.example.com");
    ASSERT_TRUE(e.ok());
    EXPECT_FALSE(*e);
    EXPECT_EQ(this->reg_->status("ghost.example.com").error(), Errc::kNotFound);
    auto page = this->reg_->list({});
    ASSERT_TRUE(page.ok());
    EXPECT_TRUE(page->items.empty());
    EXPECT_TRUE(page->next_after.empty());
}

// Many threads at once: every operation succeeds, and of N racing registrations of one name
// exactly one wins.
TYPED_TEST_P(RegistryContract, ConcurrentUse) {
    constexpr int kThreads = 6;
    constexpr int kPerThread = 15;
    std::atomic<int> errors{0};
    std::atomic<int> winners{0};
    std::atomic<int> duplicates{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                const std::string d =
                    "t" + std::to_string(t) + "-" + std::to_string(i) + ".example.com";
                auto r = this->reg_->register_domain(d, "");
                if (!r.ok()) {
                    ++errors;
                    continue;
                }
                if (!this->reg_->validate(d, r->client_api_key).ok()) {
                    ++errors;
                }
                auto k = this->reg_->rotate_key(d);
                if (!k.ok() || !this->reg_->validate(d, *k).ok()) {
                    ++errors;
                }
                if (!this->reg_->list({"", 50}).ok()) {
                    ++errors;
                }
                auto race =
                    this->reg_->register_domain("race" + std::to_string(i) + ".example.com", "");
                if (race.ok()) {
                    ++winners;
                } else if (race.error() == Errc::kDuplicate) {
                    ++duplicates;
                } else {
                    ++errors;
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(winners.load(), kPerThread);
    EXPECT_EQ(duplicates.load(), kPerThread * (kThreads - 1));
    auto page = this->reg_->list({"", 1000});
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page->total, kThreads * kPerThread + kPerThread);
}

REGISTER_TYPED_TEST_SUITE_P(RegistryContract, RegisterReturnsKeyAndRecord, NormalisesDomains,
                            DuplicateRejected, InvalidDomainsRefused, MemosStoredVerbatimOrRefused,
                            ValidateChecksKey, Unregister, RotateKey, ListPages, UnknownDomain,
                            ConcurrentUse);

}  // namespace hopgate::registry::contract
