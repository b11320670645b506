#include "registry/domain.hpp"

#include <cstdint>

#include "registry/error.hpp"

namespace hopgate::registry {
namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}
bool is_ldh(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

core::Result<std::string> normalize_domain(std::string_view in) {
    while (!in.empty() && is_space(in.front())) {
        in.remove_prefix(1);
    }
    while (!in.empty() && is_space(in.back())) {
        in.remove_suffix(1);
    }
    if (in.empty()) {
        return Errc::kDomainEmpty;
    }
    // Checked before the length so a long Unicode name gets the actionable reason.
    for (char c : in) {
        if (static_cast<unsigned char>(c) >= 0x80) {
            return Errc::kDomainNonAscii;
        }
    }
    for (char c : in) {
        if (c == ':') {
            return Errc::kDomainHasPort;
        }
    }
    if (in.size() > 1 && in.back() == '.') {
        in.remove_suffix(1);  // "example.com." is the same name as "example.com"
    }
    if (in.size() > kMaxDomainLength) {
        return Errc::kDomainTooLong;
    }
    std::string out(in);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (!is_ldh(c) && c != '.') {
            return Errc::kDomainBadChar;
        }
    }
    std::size_t label_start = 0;
    bool has_dot = false;
    bool last_all_digits = true;
    for (std::size_t i = 0; i <= out.size(); ++i) {
        if (i < out.size() && out[i] != '.') {
            continue;
        }
        const std::string_view label(out.data() + label_start, i - label_start);
        if (label.empty()) {
            return Errc::kDomainEmptyLabel;
        }
        if (label.size() > kMaxLabelLength) {
            return Errc::kDomainLabelTooLong;
        }
        if (label.front() == '-' || label.back() == '-') {
            return Errc::kDomainHyphen;
        }
        if (i < out.size()) {
            has_dot = true;
        } else {
            last_all_digits = true;
            for (char c : label) {
                last_all_digits = last_all_digits && is_digit(c);
            }
        }
        label_start = i + 1;
    }
    if (!has_dot) {
        return Errc::kDomainNoDot;
    }
    if (last_all_digits) {
        return Errc::kDomainNumeric;
    }
    return out;
}

core::Status validate_memo(std::string_view memo) {
    if (memo.size() > kMaxMemoLength) {
        return Errc::kInvalidMemo;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(memo.data());
    const std::size_t n = memo.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return Errc::kInvalidMemo;
            }
            ++i;
            continue;
        }
        // Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
        std::size_t len = 0;
        std::uint32_t cp = 0;
        std::uint32_t min = 0;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2, cp = c & 0x1fu, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3, cp = c & 0x0fu, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4, cp = c & 0x07u, min = 0x10000;
        } else {
            return Errc::kInvalidMemo;
        }
        if (i + len > n) {
            return Errc::kInvalidMemo;
        }
        for (std::size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xc0u) != 0x80u) {
                return Errc::kInvalidMemo;
            }
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp <= 0x9f)) {
            return Errc::kInvalidMemo;
        }
        i += len;
    }
    return {};
}

bool is_valid_cursor(std::string_view s) {
    if (s.size() > kMaxDomainLength) {
        return false;
    }
    for (char c : s) {
        if (!is_ldh(c) && c != '.') {
            return false;
        }
    }
    return true;
}

}  // namespace hopgate::registry
