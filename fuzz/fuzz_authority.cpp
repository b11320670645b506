// libFuzzer target: http::parse_authority() and route_key()/to_string(), and
// http::request_authority() over the same bytes split into Host fields and a target.
// Links: hg_http.
//
// Properties checked: no crash or sanitizer report on any input; a rejected input carries an
// http::Errc; an accepted one has a non-empty host of at most kMaxHostLength bytes without
// upper-case letters, brackets, '@', '%', whitespace or controls, route_key() equals the host,
// and to_string() re-parses to the same Authority (normalisation is a fixed point).
// request_authority: the input is cut at '\n' into Host values, the last piece being the target
// (and the first byte's low bit the version); an accepted request never had two Host fields,
// its origin_target is empty or starts with '/', and its authority is a fixed point as above.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "http/authority.hpp"
#include "http/error.hpp"

namespace {

void check_request_authority(std::string_view in) {
    using namespace hopgate::http;
    const bool http11 = !in.empty() && (static_cast<unsigned char>(in.front()) & 1) != 0;
    std::vector<std::string_view> pieces;
    while (pieces.size() < 8) {
        const std::size_t nl = in.find('\n');
        pieces.push_back(in.substr(0, nl));
        if (nl == std::string_view::npos) {
            break;
        }
        in.remove_prefix(nl + 1);
    }
    const std::string_view target = pieces.back();
    pieces.pop_back();
    auto r = request_authority(pieces, target, http11);
    if (!r) {
        if (&r.error().category() != &http_category()) {
            std::abort();
        }
        return;
    }
    if (pieces.size() > 1 || (!r->origin_target.empty() && r->origin_target.front() != '/')) {
        std::abort();
    }
    auto again = parse_authority(to_string(r->authority));
    if (!again || !(*again == r->authority)) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace hopgate::http;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    check_request_authority(in);
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
