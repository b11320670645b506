// libFuzzer target: http::parse_authority() and route_key()/to_string().
// Links: hg_http.
//
// Properties checked: no crash or sanitizer report on any input; a rejected input carries an
// http::Errc; an accepted one has a non-empty host of at most kMaxHostLength bytes without
// upper-case letters, brackets, '@', '%', whitespace or controls, route_key() equals the host,
// and to_string() re-parses to the same Authority (normalisation is a fixed point).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/authority.hpp"
#include "http/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace hopgate::http;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    auto r = parse_authority(in);
    if (!r) {
        if (&r.error().category() != &http_category()) {
            std::abort();
        }
        return 0;
    }
    const Authority& a = *r;
    if (a.host.empty() || a.host.size() > kMaxHostLength || route_key(a) != a.host) {
        std::abort();
    }
    for (char c : a.host) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || (c >= 'A' && c <= 'Z') || c == '[' || c == ']' || c == '@' ||
            c == '%') {
            std::abort();
        }
    }
    auto again = parse_authority(to_string(a));
    if (!again || !(*again == a)) {
        std::abort();
    }
    return 0;
}
