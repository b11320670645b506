// normalize_domain(), validate_memo() and the key helpers: the one definition of a valid name
// and of a stored key.
#include "registry/domain.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "registry/error.hpp"
#include "registry/factory.hpp"
#include "registry/key.hpp"

namespace hopgate::registry {
namespace {

std::string norm(std::string_view s) {
    auto r = normalize_domain(s);
    return r.ok() ? *r : "ERR:" + r.error().message();
}
std::error_code err(std::string_view s) { return normalize_domain(s).error(); }

// Accepted names come out trimmed, lowercased, without the root dot.
TEST(NormalizeDomain, AcceptsAndCanonicalises) {
    EXPECT_EQ(norm("example.com"), "example.com");
    EXPECT_EQ(norm("  App.Example.COM  "), "app.example.com");
    EXPECT_EQ(norm("\t\r\nwww.example.com.\n"), "www.example.com");
    EXPECT_EQ(norm("a-b.c-d.example"), "a-b.c-d.example");
    EXPECT_EQ(norm("xn--bcher-kva.example"), "xn--bcher-kva.example");  // punycode is ASCII
    EXPECT_EQ(norm("123.example.com"), "123.example.com");  // numeric labels are fine ...
    EXPECT_EQ(norm("1.2.3.example4"), "1.2.3.example4");
    EXPECT_EQ(norm("a.b"), "a.b");
}

// Each rejection carries its own reason.
TEST(NormalizeDomain, RejectsWithReason) {
    EXPECT_EQ(err(""), Errc::kDomainEmpty);
    EXPECT_EQ(err(" \t\n"), Errc::kDomainEmpty);
    EXPECT_EQ(err("."), Errc::kDomainEmptyLabel);
    EXPECT_EQ(err("localhost"), Errc::kDomainNoDot);
    EXPECT_EQ(err("localhost."), Errc::kDomainNoDot);
    EXPECT_EQ(err("example.com:8080"), Errc::kDomainHasPort);
    EXPECT_EQ(err("[::1]"), Errc::kDomainHasPort);
    EXPECT_EQ(err("::1"), Errc::kDomainHasPort);
    EXPECT_EQ(err("b\xc3\xbc"
                  "cher.example"),
              Errc::kDomainNonAscii);
    EXPECT_EQ(err("\xe2\x80\x8b"
                  "example.com"),
              Errc::kDomainNonAscii);  // zero-width space
    EXPECT_EQ(err("ex\xff"
                  "ample.com"),
              Errc::kDomainNonAscii);
    EXPECT_EQ(err("*.example.com"), Errc::kDomainBadChar);
    EXPECT_EQ(err("under_score.example.com"), Errc::kDomainBadChar);
    EXPECT_EQ(err("exa mple.com"), Errc::kDomainBadChar);
    EXPECT_EQ(err("example.com/path"), Errc::kDomainBadChar);
    EXPECT_EQ(err("user@example.com"), Errc::kDomainBadChar);
    EXPECT_EQ(err("a.com';--"), Errc::kDomainBadChar);
    EXPECT_EQ(err("a\x01.com"), Errc::kDomainBadChar);
    EXPECT_EQ(err("a\x7f.com"), Errc::kDomainBadChar);
    EXPECT_EQ(err(std::string("a\0.com", 6)), Errc::kDomainBadChar);
    EXPECT_EQ(err("a..com"), Errc::kDomainEmptyLabel);
    EXPECT_EQ(err(".a.com"), Errc::kDomainEmptyLabel);
    EXPECT_EQ(err("a.com.."), Errc::kDomainEmptyLabel);
    EXPECT_EQ(err("-a.com"), Errc::kDomainHyphen);
    EXPECT_EQ(err("a-.com"), Errc::kDomainHyphen);
    EXPECT_EQ(err("a.-com"), Errc::kDomainHyphen);
    EXPECT_EQ(err("1.2.3.4"), Errc::kDomainNumeric);
    EXPECT_EQ(err("10.0.0.1."), Errc::kDomainNumeric);
    EXPECT_EQ(err("example.123"), Errc::kDomainNumeric);
    for (auto code : {Errc::kDomainEmpty, Errc::kDomainNumeric, Errc::kDomainBadChar}) {
        EXPECT_TRUE(is_invalid_domain(make_error_code(code)));
        EXPECT_NE(make_error_code(code).message().find("invalid domain"), std::string::npos);
    }
    EXPECT_FALSE(is_invalid_domain(make_error_code(Errc::kNotFound)));
}

// Label and name length limits are exact: 63 and 253.
TEST(NormalizeDomain, LengthLimits) {
    const std::string l63(63, 'a');
    EXPECT_EQ(norm(l63 + ".com"), l63 + ".com");
    EXPECT_EQ(err(std::string(64, 'a') + ".com"), Errc::kDomainLabelTooLong);
    // 253 characters: 3 labels of 63 + 1 of 61 + 3 dots.
    const std::string max = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
    ASSERT_EQ(max.size(), 253u);
    EXPECT_EQ(norm(max), max);
    EXPECT_EQ(norm(max + "."), max);  // the root dot does not count
    EXPECT_EQ(err(max + "b"), Errc::kDomainTooLong);
    EXPECT_EQ(err(std::string(100000, 'a') + ".com"), Errc::kDomainTooLong);
}

// The output is a fixed point and only holds [a-z0-9.-].
TEST(NormalizeDomain, IdempotentOverManyInputs) {
    const std::string alphabet = "aZ09-._ :\t\x80\xff*";
    std::string s;
    for (unsigned seed = 0; seed < 20000; ++seed) {
        s.clear();
        unsigned x = seed * 2654435761u + 1;
        const std::size_t len = x % 12;
        for (std::size_t i = 0; i < len; ++i) {
            x = x * 1103515245u + 12345u;
            s.push_back(alphabet[(x >> 16) % alphabet.size()]);
        }
        auto r = normalize_domain(s);
        if (!r) {
            EXPECT_TRUE(is_invalid_domain(r.error())) << s;
            continue;
        }
        EXPECT_EQ(*normalize_domain(*r), *r);
        for (char c : *r) {
            EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
        }
    }
}

// Memos: UTF-8 text up to 1024 bytes; no controls (tab allowed), no malformed sequences.
TEST(ValidateMemo, Rules) {
    EXPECT_TRUE(validate_memo("").ok());
    EXPECT_TRUE(validate_memo("team \"a\"; DROP TABLE x; -- caf\xc3\xa9 \xf0\x9f\x98\x80\t").ok());
    EXPECT_TRUE(validate_memo(std::string(1024, 'x')).ok());
    EXPECT_EQ(validate_memo(std::string(1025, 'x')).error(), Errc::kInvalidMemo);
    EXPECT_FALSE(validate_memo("a\nb").ok());
    EXPECT_FALSE(validate_memo(std::string("a\0b", 3)).ok());
    EXPECT_FALSE(validate_memo("\x7f").ok());
    EXPECT_FALSE(validate_memo("\xc2\x85").ok());          // C1 control (NEL)
    EXPECT_FALSE(validate_memo("\xc0\x80").ok());          // overlong NUL
    EXPECT_FALSE(validate_memo("\xed\xa0\x80").ok());      // surrogate
    EXPECT_FALSE(validate_memo("\xf4\x90\x80\x80").ok());  // above U+10FFFF
    EXPECT_FALSE(validate_memo("\xe2\x82").ok());          // truncated
    EXPECT_FALSE(validate_memo("\x80").ok());              // lone continuation
}

// Keys: 64 lowercase hex from the CSPRNG, all different; stored as SHA-256 (known vector).
TEST(Keys, GenerateHashCompare) {
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        auto k = generate_key();
        ASSERT_TRUE(k.ok());
        ASSERT_EQ(k->size(), 64u);
        EXPECT_TRUE(is_well_formed_key(*k));
        EXPECT_EQ(k->find_first_not_of("0123456789abcdef"), std::string::npos);
        seen.insert(*k);
    }
    EXPECT_EQ(seen.size(), 200u);
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const std::string k(64, 'a');
    EXPECT_EQ(hash_key(k), sha256_hex(k));
    EXPECT_EQ(hash_key(std::string(64, 'A')), sha256_hex(k));
    EXPECT_FALSE(is_well_formed_key(std::string(63, 'a')));
    EXPECT_FALSE(is_well_formed_key(std::string(64, 'g')));
    EXPECT_TRUE(constant_time_equal("abc", "abc"));
    EXPECT_FALSE(constant_time_equal("abc", "abd"));
    EXPECT_FALSE(constant_time_equal("abc", "abcd"));
    EXPECT_TRUE(constant_time_equal("", ""));
}

// UUIDs are version 4, RFC 4122 variant, canonical form.
TEST(Keys, Uuid) {
    auto u = new_uuid();
    ASSERT_TRUE(u.ok());
    ASSERT_EQ(u->size(), 36u);
    EXPECT_EQ((*u)[8], '-');
    EXPECT_EQ((*u)[14], '4');
    EXPECT_NE(std::string("89ab").find((*u)[19]), std::string::npos);
    EXPECT_NE(*new_uuid(), *u);
}

}  // namespace
// Pins: describe_dsn names the database for operators without ever showing a password.
TEST(DescribeDsn, NamesTheDatabaseWithoutPasswords) {
    EXPECT_EQ(describe_dsn("sqlite:///var/lib/hopgate/hg.db"), "SQLite /var/lib/hopgate/hg.db");
    EXPECT_EQ(describe_dsn(""), "SQLite " + (std::filesystem::current_path() / "hopgate.db").string());
    EXPECT_EQ(describe_dsn("postgres://hop:s3cret@db.internal:5432/hopgate?sslmode=require"),
              "PostgreSQL postgres://hop:***@db.internal:5432/hopgate?sslmode=require");
    EXPECT_EQ(describe_dsn("postgresql://hop@db/hopgate?password=s3cret&sslmode=disable"),
              "PostgreSQL postgresql://hop@db/hopgate?password=***&sslmode=disable");
    EXPECT_EQ(describe_dsn("postgres://db/hopgate"), "PostgreSQL postgres://db/hopgate");
    EXPECT_EQ(describe_dsn("mysql://x"), "invalid DSN");
    EXPECT_EQ(describe_dsn("postgres://a:p@ss@host/db").find("p@ss"), std::string::npos);
}

}  // namespace hopgate::registry
