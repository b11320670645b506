// Validation of the tunnel handshake's (domain, key), used by the gateway's AUTH step.
//
// Order of checks, cheapest and least abusable first:
//   1. per-source failure rate limit (FailureLimiter): a source over its budget is refused
//      without touching the database;
//   2. normalize_domain();
//   3. the registry, on its worker pool (AsyncRegistry) — wrong domain/key counts as a failure;
//   4. optional DNS gate (HOP_ACME_EXPECT_IPS): the domain's A/AAAA records must contain one of
//      the expected addresses. Only after the key matched, so unauthenticated peers cannot make
//      the server send DNS queries for names of their choice. Bounded by a timeout.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "admin/cidr.hpp"
#include "admin/failure_limiter.hpp"
#include "core/result.hpp"
#include "core/time.hpp"

namespace hopgate::registry {
class AsyncRegistry;
}

namespace hopgate::admin {

// Resolves a host name to its A and AAAA addresses. `done` is called exactly once, on any
// thread; the caller enforces its own deadline, so an implementation may answer late.
class Resolver {
  public:
    using Addresses = std::vector<IpAddr>;
    virtual ~Resolver() = default;
    virtual void resolve(const std::string& host,
                         std::function<void(core::Result<Addresses>)> done) = 0;
};

// The system resolver (getaddrinfo via Asio). Errors are core::Errc::kNotFound.
class AsioResolver final : public Resolver {
  public:
    explicit AsioResolver(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}
    void resolve(const std::string& host,
                 std::function<void(core::Result<Addresses>)> done) override;

  private:
    boost::asio::any_io_executor ex_;
};

enum class AuthCode {
    kAccepted,       // (domain, key) matches; the tunnel may open
    kRateLimited,    // too many failures from this source; retry later
    kInvalidDomain,  // the name is not a valid domain (message says why)
    kUnknownDomain,  // the domain is not registered
    kBadKey,         // the key does not match the domain
    kDnsMismatch,    // the domain does not resolve to any of HOP_ACME_EXPECT_IPS
    kDnsError,       // the DNS lookup failed or timed out
    kUnavailable,    // the registry is down or overloaded; retry later
};

struct AuthResult {
    AuthCode code = AuthCode::kUnavailable;
    std::string domain;   // normalised, when valid
    std::string message;  // for the client: clear, without secrets
};

struct AuthOptions {
    std::vector<IpAddr> expect_ips;  // HOP_ACME_EXPECT_IPS; empty disables the DNS gate
    std::chrono::milliseconds dns_timeout{3000};
    LimiterOptions limiter;
};

class AuthValidator {
  public:
    using Clock = std::function<core::Instant()>;
    // `registry` and `resolver` must outlive every check; `resolver` may be null when
    // expect_ips is empty.
    AuthValidator(registry::AsyncRegistry& registry, Resolver* resolver, AuthOptions options,
                  Clock clock = {});

    // Checks one handshake. `done` runs exactly once, on `ex`. Never blocks the caller.
    void check(const IpAddr& source, std::string domain, std::string key,
               boost::asio::any_io_executor ex, std::function<void(AuthResult)> done);

    FailureLimiter& limiter() { return limiter_; }

  private:
    void dns_gate(AuthResult accepted, boost::asio::any_io_executor ex,
                  std::function<void(AuthResult)> done);

    registry::AsyncRegistry& registry_;
    Resolver* resolver_;
    AuthOptions options_;
    Clock clock_;
    FailureLimiter limiter_;
};

}  // namespace hopgate::admin
