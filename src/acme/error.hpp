// Errors of the ACME layer.
#pragma once

#include <system_error>

namespace hopgate::acme {

enum class Errc {
    kOk = 0,
    kParse = 1,            // a CA document (JSON, PEM, header) did not parse or lacks a field
    kTooLarge = 2,         // a CA response exceeded the 1 MiB document limit
    kProblem = 3,          // the CA answered with an RFC 7807 problem document
    kCrypto = 4,           // key generation, signing or certificate building failed
    kChallengeFailed = 5,  // the CA marked an authorization or challenge invalid
    kOrderFailed = 6,      // the order became invalid, or its polling budget ran out
    kHttp = 7,             // transport failure: connect, TLS, timeout, unexpected status
    kInvalidArgument = 8,  // a caller passed a malformed domain or configuration
    kNoChallenge = 9,      // the CA offered none of the challenge types we can answer
};

const std::error_category& acme_category();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), acme_category()}; }

}  // namespace hopgate::acme

template <>
struct std::is_error_code_enum<hopgate::acme::Errc> : std::true_type {};
