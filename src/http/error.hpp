// Errors of the http layer. Expected failures on the data path are values (`core::Result<T>`,
// `core::Status`); every one of them is the visitor's fault and maps to HTTP 400 (or 431 for the
// header limits), except kAssetNotFound (404).
#pragma once

#include <system_error>

namespace hopgate::http {

enum class Errc {
    kOk = 0,
    // Authority (Host header, absolute-form target).
    kAuthorityEmpty = 1,        // empty input, or an empty host before the port
    kAuthorityTooLong = 2,      // more than kMaxAuthorityLength bytes in total
    kHostTooLong = 3,           // host longer than kMaxHostLength, or a label longer than 63
    kUserinfo = 4,              // contains '@' (userinfo is not allowed in Host)
    kBadChar = 5,               // whitespace, control, non-ASCII, '%', or a character outside the
                                // allowed set for a reg-name
    kEmptyLabel = 6,            // leading dot, two dots in a row, or two trailing dots
    kBadPort = 7,               // port not all digits, or above 65535
    kBadIpv4 = 8,               // only digits and dots but not a dotted-quad of 0..255
    kBadIpv6 = 9,               // '[' ... ']' that is not a valid IPv6 address (IPvFuture included)
    kZoneId = 10,               // IPv6 zone id ("%25eth0"): meaningless on a public front door
    kUnterminatedBracket = 11,  // '[' without ']', or ']' without '['
    // Header checks.
    kTooManyHeaders = 20,   // more header fields than HeaderLimits::max_count
    kHeadersTooLarge = 21,  // names + values exceed HeaderLimits::max_total_bytes
    kBadHeaderName = 22,    // empty name or a character outside RFC 9110 tchar
    kBadHeaderValue = 23,   // CR, LF, NUL or another control character (tab allowed) in a value
    // Assets.
    kBadAssetPath = 30,   // '..', absolute, empty, or a character outside [A-Za-z0-9._-/]
    kAssetNotFound = 31,  // no such embedded or override asset
    // Request routing (RFC 9112 §3.2).
    kHostMissing = 40,   // no Host field (HTTP/1.1, or an origin-form target that needs it)
    kHostRepeated = 41,  // more than one Host field
    kHostMismatch = 42,  // Host disagrees with the authority of an absolute-form target
};

const std::error_category& http_category();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), http_category()}; }

}  // namespace hopgate::http

template <>
struct std::is_error_code_enum<hopgate::http::Errc> : std::true_type {};
