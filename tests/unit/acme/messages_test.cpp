#include "acme/messages.hpp"

#include <gtest/gtest.h>

#include "acme/error.hpp"

namespace hopgate::acme {
namespace {

using namespace std::chrono_literals;

// A Pebble-shaped directory parses; missing required URLs or non-objects do not.
TEST(Messages, Directory) {
    auto d = parse_directory(R"({"newNonce":"https://c/n","newAccount":"https://c/a",
        "newOrder":"https://c/o","renewalInfo":"https://c/ari","meta":{"termsOfService":"t"}})");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->new_nonce, "https://c/n");
    EXPECT_EQ(d->renewal_info, "https://c/ari");
    EXPECT_EQ(d->terms_of_service, "t");
    EXPECT_FALSE(parse_directory(R"({"newNonce":"x"})"));
    EXPECT_FALSE(parse_directory("[]"));
    EXPECT_FALSE(parse_directory("{"));
    EXPECT_EQ(parse_directory(std::string(kMaxDocument + 1, ' ')).error(),
              make_error_code(Errc::kTooLarge));
    EXPECT_FALSE(parse_directory(std::string(100, '[')));
}

// Problem type matching and the operator summary line.
TEST(Messages, Problem) {
    auto p = parse_problem(
        R"({"type":"urn:ietf:params:acme:error:badNonce","detail":"stale","status":400})");
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->is("badNonce"));
    EXPECT_FALSE(p->is("badNonc"));
    EXPECT_EQ(p->status, 400);
    EXPECT_EQ(p->summary(), "badNonce: stale");
}

// Orders, authorizations with challenges, wrong member types.
TEST(Messages, OrderAndAuthorization) {
    auto o = parse_order(R"({"status":"pending","authorizations":["https://c/z/1"],
        "finalize":"https://c/f"})");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->authorizations.size(), 1u);
    EXPECT_FALSE(parse_order(R"({"status":"pending","authorizations":[1],"finalize":"f"})"));
    auto a = parse_authorization(R"({"status":"pending","identifier":{"type":"dns","value":"a.b"},
        "challenges":[{"type":"http-01","url":"https://c/ch/1","token":"t","status":"pending"},
                      {"type":"x"},
                      {"type":"tls-alpn-01","url":"https://c/ch/2","token":"t"}]})");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->identifier, "a.b");
    ASSERT_EQ(a->challenges.size(), 2u);
    EXPECT_EQ(a->challenges[1].type, "tls-alpn-01");
    auto r = parse_renewal_info(
        R"({"suggestedWindow":{"start":"2026-01-02T00:00:00Z","end":"2026-01-03T00:00:00.5+01:00"}})");
    ASSERT_TRUE(r);
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::hours>(r->end - r->start).count(), 23);
}

// Retry-After: delta-seconds, HTTP-date, clamping, garbage.
TEST(Messages, RetryAfter) {
    const auto now = std::chrono::system_clock::from_time_t(784111777);  // 1994-11-06 08:49:37
    EXPECT_EQ(parse_retry_after("3", now, 30s), 3s);
    EXPECT_EQ(parse_retry_after(" 120 ", now, 30s), 30s);
    EXPECT_EQ(parse_retry_after("99999999999999999999999", now, 30s), 30s);
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now, 30s), 10s);
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now, 30s), 0s);
    EXPECT_FALSE(parse_retry_after("", now, 30s));
    EXPECT_FALSE(parse_retry_after("-1", now, 30s));
    EXPECT_FALSE(parse_retry_after("soon", now, 30s));
}

}  // namespace
}  // namespace hopgate::acme
