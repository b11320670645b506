// AuthValidator (tunnel handshake): registry check through the worker pool, per-source failure
// limit with bounded memory, and the DNS gate with its timeout, over fakes.
#include "admin/auth_validator.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <thread>

#include "core/error.hpp"
#include "fake_registry.hpp"
#include "registry/async_registry.hpp"
#include "registry/error.hpp"

namespace hopgate::admin {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Answers from a table; `hang` keeps the callback and never answers.
struct FakeResolver : Resolver {
    std::map<std::string, core::Result<Addresses>> answers;
    bool hang = false;
    int lookups = 0;
    std::vector<std::function<void(core::Result<Addresses>)>> parked;
    std::vector<std::thread> threads;
    ~FakeResolver() {
        for (auto& t : threads) {
            t.join();
        }
    }
    void resolve(const std::string& host,
                 std::function<void(core::Result<Addresses>)> done) override {
        ++lookups;
        if (hang) {
            parked.push_back(std::move(done));
            return;
        }
        auto it = answers.find(host);
        core::Result<Addresses> r =
            it == answers.end() ? core::Result<Addresses>(core::Errc::kNotFound) : it->second;
        // Answer from another thread, as a real resolver would.
        threads.emplace_back([done = std::move(done), r = std::move(r)]() { done(r); });
    }
};

IpAddr ip(std::string_view s) { return *parse_ip(s); }

class AuthValidatorTest : public ::testing::Test {
  protected:
    void make(AuthOptions o) {
        o.limiter.max_failures = 3;
        o.limiter.window = 60s;
        o.limiter.block = 300s;
        validator_ =
            std::make_unique<AuthValidator>(async_, &resolver_, o, [this] { return now_; });
    }
    AuthResult check(std::string_view source, std::string domain, std::string key) {
        std::optional<AuthResult> out;
        auto strand = asio::make_strand(ioc_);
        validator_->check(ip(source), std::move(domain), std::move(key), strand,
                          [&, strand](AuthResult r) {
                              EXPECT_TRUE(strand.running_in_this_thread());
                              out = std::move(r);
                          });
        ioc_.restart();
        ioc_.run();
        EXPECT_TRUE(out.has_value());
        return out.value_or(AuthResult{});
    }
    void SetUp() override {
        key_ = reg_.register_domain("app.example.com", "")->client_api_key;
        make({});
    }

    // Order matters: the worker pool (async_) and the resolver's threads finish before the
    // io_context they complete on is destroyed.
    testing::FakeRegistry reg_;
    asio::io_context ioc_;
    registry::AsyncRegistry async_{reg_, {2, 64}};
    FakeResolver resolver_;
    core::Instant now_ = core::Instant(std::chrono::hours(1));
    std::unique_ptr<AuthValidator> validator_;
    std::string key_;
};

// The right key is accepted with the normalised domain.
TEST_F(AuthValidatorTest, Accepts) {
    auto r = check("192.0.2.1", " APP.example.com ", key_);
    EXPECT_EQ(r.code, AuthCode::kAccepted);
    EXPECT_EQ(r.domain, "app.example.com");
    EXPECT_EQ(resolver_.lookups, 0);  // no DNS gate configured
}

// Each refusal has its own code and a clear message.
TEST_F(AuthValidatorTest, RefusalsAreSpecific) {
    auto bad = check("192.0.2.1", "app.example.com", std::string(64, 'f'));
    EXPECT_EQ(bad.code, AuthCode::kBadKey);
    EXPECT_EQ(bad.message, "client API key does not match the domain");
    auto unknown = check("192.0.2.2", "nope.example.com", key_);
    EXPECT_EQ(unknown.code, AuthCode::kUnknownDomain);
    auto invalid = check("192.0.2.3", "not a domain", key_);
    EXPECT_EQ(invalid.code, AuthCode::kInvalidDomain);
    EXPECT_NE(invalid.message.find("invalid domain"), std::string::npos);
    const int calls = reg_.calls.load();
    auto malformed = check("192.0.2.4", "app.example.com", "hunter2");
    EXPECT_EQ(malformed.code, AuthCode::kBadKey);
    EXPECT_EQ(reg_.calls.load(), calls);  // refused without a database round trip
}

// After max_failures a source is refused without a registry call, even with the right key; other
// sources are unaffected; the block expires; the IPv6 /64 counts as one source.
TEST_F(AuthValidatorTest, RateLimitsFailuresPerSource) {
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(check("198.51.100.7", "app.example.com", std::string(64, '0')).code,
                  AuthCode::kBadKey);
    }
    const int calls = reg_.calls.load();
    EXPECT_EQ(check("198.51.100.7", "app.example.com", key_).code, AuthCode::kRateLimited);
    EXPECT_EQ(reg_.calls.load(), calls);
    EXPECT_EQ(check("198.51.100.8", "app.example.com", key_).code, AuthCode::kAccepted);
    now_ += 301s;
    EXPECT_EQ(check("198.51.100.7", "app.example.com", key_).code, AuthCode::kAccepted);

    for (const char* src : {"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"}) {
        EXPECT_EQ(check(src, "x.example.com", key_).code, AuthCode::kUnknownDomain);
    }
    EXPECT_EQ(check("2001:db8:1:2::99", "app.example.com", key_).code, AuthCode::kRateLimited);
    EXPECT_EQ(check("2001:db8:1:3::1", "app.example.com", key_).code, AuthCode::kAccepted);
}

// Failures spread over more than the window do not add up; three within one window do.
TEST_F(AuthValidatorTest, WindowResets) {
    const std::string wrong(64, '0');
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 2; ++i) {
            EXPECT_EQ(check("203.0.113.1", "app.example.com", wrong).code, AuthCode::kBadKey);
        }
        now_ += 61s;
    }
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(check("203.0.113.1", "app.example.com", wrong).code, AuthCode::kBadKey);
    }
    EXPECT_EQ(check("203.0.113.1", "app.example.com", key_).code, AuthCode::kRateLimited);
}

// Database trouble is kUnavailable and does not count against the source.
TEST_F(AuthValidatorTest, RegistryOutage) {
    reg_.fail_with = registry::Errc::kDbUnavailable;
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(check("192.0.2.9", "app.example.com", key_).code, AuthCode::kUnavailable);
    }
    EXPECT_EQ(validator_->limiter().size(), 0u);
}

// DNS gate: accepted only if an A/AAAA record is one of the expected IPs.
TEST_F(AuthValidatorTest, DnsGate) {
    AuthOptions o;
    o.expect_ips = parse_ip_list("203.0.113.10, 2001:db8::10");
    o.dns_timeout = 200ms;
    make(o);
    resolver_.answers.emplace("app.example.com",
                              Resolver::Addresses{ip("198.51.100.1"), ip("2001:db8::10")});
    EXPECT_EQ(check("192.0.2.1", "app.example.com", key_).code, AuthCode::kAccepted);
    resolver_.answers.erase("app.example.com");
    resolver_.answers.emplace("app.example.com", Resolver::Addresses{ip("198.51.100.1")});
    auto mismatch = check("192.0.2.1", "app.example.com", key_);
    EXPECT_EQ(mismatch.code, AuthCode::kDnsMismatch);
    EXPECT_NE(mismatch.message.find("do not point to this server"), std::string::npos);
    resolver_.answers.clear();
    EXPECT_EQ(check("192.0.2.1", "app.example.com", key_).code, AuthCode::kDnsError);
    // Bad credentials never trigger a lookup.
    const int lookups = resolver_.lookups;
    EXPECT_EQ(check("192.0.2.1", "app.example.com", std::string(64, '0')).code, AuthCode::kBadKey);
    EXPECT_EQ(resolver_.lookups, lookups);
}

// A resolver that never answers is cut off by the timeout; its late answer is ignored.
TEST_F(AuthValidatorTest, DnsTimeout) {
    AuthOptions o;
    o.expect_ips = parse_ip_list("203.0.113.10");
    o.dns_timeout = 50ms;
    make(o);
    resolver_.hang = true;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = check("192.0.2.1", "app.example.com", key_);
    EXPECT_EQ(r.code, AuthCode::kDnsError);
    EXPECT_NE(r.message.find("timed out"), std::string::npos);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    ASSERT_EQ(resolver_.parked.size(), 1u);
    resolver_.parked[0](Resolver::Addresses{ip("203.0.113.10")});  // late: no second completion
    ioc_.restart();
    ioc_.run();
}

// The limiter's memory stays bounded under a flood of distinct sources.
TEST(FailureLimiter, BoundedMemory) {
    LimiterOptions o;
    o.max_entries = 100;
    o.max_failures = 2;
    FailureLimiter lim(o);
    const core::Instant t{std::chrono::seconds(10)};
    for (int i = 0; i < 10000; ++i) {
        IpAddr a;
        a.v4 = true;
        a.bytes[0] = 10;
        a.bytes[1] = static_cast<std::uint8_t>(i >> 16);
        a.bytes[2] = static_cast<std::uint8_t>(i >> 8);
        a.bytes[3] = static_cast<std::uint8_t>(i);
        lim.record_failure(a, t);
        EXPECT_LE(lim.size(), 100u);
    }
    // The most recent offender is still remembered.
    IpAddr last;
    last.v4 = true;
    last.bytes = {10, 0, 39, 15};  // i = 9999
    lim.record_failure(last, t);
    EXPECT_FALSE(lim.allowed(last, t));
    lim.record_success(last);
    EXPECT_TRUE(lim.allowed(last, t));
}

// The real resolver answers for "localhost" (no network needed) and fails for an invalid TLD.
TEST(AsioResolver, ResolvesLocalhost) {
    asio::io_context ioc;
    AsioResolver res(ioc.get_executor());
    std::optional<core::Result<Resolver::Addresses>> got;
    res.resolve("localhost", [&](core::Result<Resolver::Addresses> r) { got = std::move(r); });
    ioc.run();
    ASSERT_TRUE(got.has_value());
    ASSERT_TRUE(got->ok());
    bool loopback = false;
    for (const auto& a : **got) {
        loopback = loopback || a == *parse_ip("127.0.0.1") || a == *parse_ip("::1");
    }
    EXPECT_TRUE(loopback);
}

}  // namespace
}  // namespace hopgate::admin
