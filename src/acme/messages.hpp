// RFC 8555 resource documents as plain structs, and their parsers. Every parser rejects input
// larger than kMaxDocument (Errc::kTooLarge) and anything that is not the expected JSON shape
// (Errc::kParse); unknown members are ignored. Pure functions, fuzzed by fuzz/fuzz_acme.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace hopgate::acme {

inline constexpr std::size_t kMaxDocument = 1024 * 1024;

struct Directory {
    std::string new_nonce;
    std::string new_account;
    std::string new_order;
    std::string renewal_info;  // ARI (RFC 9773), empty when not offered
    std::string terms_of_service;
};

struct Problem {
    std::string type;  // e.g. "urn:ietf:params:acme:error:badNonce"
    std::string detail;
    int status = 0;
    bool is(std::string_view short_type) const;  // is("badNonce")
    std::string summary() const;                 // "badNonce: detail"
};

struct Challenge {
    std::string type;  // "http-01", "tls-alpn-01", ...
    std::string url;
    std::string token;
    std::string status;
    std::optional<Problem> error;
};

struct Authorization {
    std::string status;  // pending | valid | invalid | deactivated | expired | revoked
    std::string identifier;
    bool wildcard = false;
    std::vector<Challenge> challenges;
};

struct Order {
    std::string status;  // pending | ready | processing | valid | invalid
    std::vector<std::string> authorizations;
    std::string finalize;
    std::string certificate;
    std::optional<Problem> error;
};

struct Account {
    std::string status;  // valid | deactivated | revoked
};

// ARI renewal window (RFC 9773 §4.2).
struct RenewalInfo {
    std::chrono::system_clock::time_point start;
    std::chrono::system_clock::time_point end;
};

core::Result<Directory> parse_directory(std::string_view body);
core::Result<Problem> parse_problem(std::string_view body);
core::Result<Challenge> parse_challenge(std::string_view body);
core::Result<Authorization> parse_authorization(std::string_view body);
core::Result<Order> parse_order(std::string_view body);
core::Result<Account> parse_account(std::string_view body);
core::Result<RenewalInfo> parse_renewal_info(std::string_view body);

// RFC 3339 timestamp ("2026-01-02T03:04:05Z", fractional seconds and offsets accepted).
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

// Retry-After (RFC 9110 §10.2.3): delta-seconds or an IMF-fixdate; the delay from `now`,
// clamped to [0, cap]. nullopt when absent or malformed.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now,
                                                      std::chrono::seconds cap);

}  // namespace hopgate::acme
