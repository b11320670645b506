#include "registry/key.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>

#include "registry/error.hpp"

namespace hopgate::registry {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string to_hex(const unsigned char* p, std::size_t n) {
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(kHex[p[i] >> 4]);
        out.push_back(kHex[p[i] & 0x0f]);
    }
    return out;
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

core::Result<std::string> generate_key() {
    std::array<unsigned char, kKeyHexLength / 2> buf{};
    if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
        return Errc::kRandomFailure;
    }
    std::string key = to_hex(buf.data(), buf.size());
    OPENSSL_cleanse(buf.data(), buf.size());
    return key;
}

bool is_well_formed_key(std::string_view key) {
    if (key.size() != kKeyHexLength) {
        return false;
    }
    for (char c : key) {
        if (!is_hex(c)) {
            return false;
        }
    }
    return true;
}

std::string sha256_hex(std::string_view data) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> md{};
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data());
    return to_hex(md.data(), md.size());
}

std::string hash_key(std::string_view key) {
    std::string k(key);
    for (char& c : k) {
        if (c >= 'A' && c <= 'F') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    std::string h = sha256_hex(k);
    OPENSSL_cleanse(k.data(), k.size());
    return h;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

core::Result<std::string> new_uuid() {
    std::array<unsigned char, 16> b{};
    if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
        return Errc::kRandomFailure;
    }
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
    const std::string h = to_hex(b.data(), b.size());
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
           "-" + h.substr(20, 12);
}

}  // namespace hopgate::registry
