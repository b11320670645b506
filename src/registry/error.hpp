// Errors of the registry layer. Expected failures are values (`core::Result<T>`, `core::Status`).
//
// Invalid-domain reasons are their own enumerators (kDomain*) so the admin API can answer 400 with
// the exact reason; `is_invalid_domain(ec)` groups them.
#pragma once

#include <system_error>

namespace hopgate::registry {

enum class Errc {
    kOk = 0,
    kNotFound = 1,         // the domain is not registered
    kDuplicate = 2,        // the domain is already registered
    kKeyMismatch = 3,      // the client API key does not match the domain's key
    kInvalidMemo = 4,      // memo too long, not UTF-8, or contains control characters
    kInvalidArgument = 5,  // a paging limit or cursor outside the documented range
    kDbUnavailable = 6,    // database unreachable, restarting, locked too long, or pool timed out
    kDbError = 7,          // the database answered with an unexpected error (bug or damaged schema)
    kInvalidDsn = 8,       // HOP_DB_DSN has an unknown scheme or a malformed path
    kSchemaTooNew = 9,     // the database was migrated by a newer HopGate; refusing to touch it
    kOverloaded = 10,      // the async worker queue is full; retry later
    kRandomFailure = 11,   // the CSPRNG (OpenSSL RAND_bytes) failed

    // Invalid domain: the reason a name was rejected by normalize_domain().
    kDomainEmpty = 100,         // empty after trimming
    kDomainTooLong = 101,       // more than 253 characters
    kDomainLabelTooLong = 102,  // a label longer than 63 characters
    kDomainNoDot = 103,         // a single label; a registrable name needs a dot
    kDomainHasPort = 104,       // contains ':' (a port or an IPv6 literal)
    kDomainNonAscii = 105,      // a byte >= 0x80; Unicode names must be given in xn-- form
    kDomainBadChar = 106,       // a character outside a-z 0-9 '-' '.' (control chars included)
    kDomainEmptyLabel = 107,    // leading dot or two dots in a row
    kDomainHyphen = 108,        // a label starts or ends with '-'
    kDomainNumeric = 109,       // all-numeric last label: an IP address, not a domain
};

const std::error_category& registry_category();
inline std::error_code make_error_code(Errc e) {
    return {static_cast<int>(e), registry_category()};
}

// True for the kDomain* reasons.
bool is_invalid_domain(std::error_code ec);
// True for errors a client may retry later (kDbUnavailable, kOverloaded): HTTP 503.
bool is_unavailable(std::error_code ec);

}  // namespace hopgate::registry

template <>
struct std::is_error_code_enum<hopgate::registry::Errc> : std::true_type {};
