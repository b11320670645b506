// Client API keys and the small amount of cryptography the registry needs (OpenSSL underneath;
// this header does not include OpenSSL).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace hopgate::registry {

inline constexpr std::size_t kKeyHexLength = 64;  // 256-bit keys as lowercase hex

// A fresh client API key: 32 bytes from RAND_bytes as 64 lowercase hex characters.
// kRandomFailure if the CSPRNG fails.
core::Result<std::string> generate_key();

// True if `key` is 64 hex characters (either case).
bool is_well_formed_key(std::string_view key);

// Lowercase hex SHA-256 of `data` (64 characters). The registry stores
// sha256_hex(lowercase(key)) and never the key itself.
std::string sha256_hex(std::string_view data);

// The stored form of a key: SHA-256 of the key with hex digits lowercased, so a key typed in
// upper case still matches.
std::string hash_key(std::string_view key);

// Equality in time that depends only on the lengths (CRYPTO_memcmp). Callers compare hashes of
// equal length, so nothing about the secret leaks.
bool constant_time_equal(std::string_view a, std::string_view b);

// A random (version 4) UUID in canonical text form, e.g. "0b7c...-4...-a...-...".
core::Result<std::string> new_uuid();

}  // namespace hopgate::registry
