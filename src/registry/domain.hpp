// Domain names and memos as the registry stores them. One function normalises every name that
// enters the system (admin API, CLI, tunnel handshake), so all of them agree on what a name is.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace hopgate::registry {

inline constexpr std::size_t kMaxDomainLength = 253;
inline constexpr std::size_t kMaxLabelLength = 63;
inline constexpr std::size_t kMaxMemoLength = 1024;

// Normalises a host name for storage and lookup:
//   - trims ASCII whitespace at both ends, lowercases A-Z, drops one trailing dot (FQDN form);
//   - rejects (with the kDomain* reason from registry/error.hpp): empty input, any byte >= 0x80
//     (no IDNA here: Unicode names must be given as xn-- labels), ':' (ports, IPv6 literals),
//     characters outside [a-z0-9.-] (wildcards, '_', '/', '@', control characters, spaces inside),
//     no dot, empty labels, labels over 63 or names over 253 characters, labels that start or end
//     with '-', and an all-numeric last label (IPv4 addresses).
// The result only contains [a-z0-9.-] and normalize_domain(result) == result.
core::Result<std::string> normalize_domain(std::string_view input);

// Checks a memo: at most kMaxMemoLength bytes of well-formed UTF-8 without C0/C1 controls or DEL
// (tab is allowed). Returns kInvalidMemo otherwise. Memos are stored verbatim.
core::Status validate_memo(std::string_view memo);

// True if `s` is a plausible paging cursor: empty, or at most 253 characters of [a-z0-9.-].
bool is_valid_cursor(std::string_view s);

}  // namespace hopgate::registry
