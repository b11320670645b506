// libFuzzer target: registry::normalize_domain() and validate_memo().
// Links: hg_registry (which brings hg_core).
//
// Properties checked: no crash or sanitizer report on any input; an accepted name only holds
// [a-z0-9.-], is at most 253 characters, contains a dot, and is a fixed point of the function;
// a rejected name always carries one of the kDomain* reasons.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "registry/domain.hpp"
#include "registry/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace hopgate::registry;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    auto r = normalize_domain(in);
    if (!r) {
        if (!is_invalid_domain(r.error())) {
            std::abort();
        }
    } else {
        const std::string& out = *r;
        if (out.empty() || out.size() > kMaxDomainLength || out.find('.') == std::string::npos) {
            std::abort();
        }
        for (char c : out) {
            const bool ok =
                (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
            if (!ok) {
                std::abort();
            }
        }
        auto again = normalize_domain(out);
        if (!again || *again != out) {
            std::abort();
        }
    }
    (void)validate_memo(in);
    (void)is_valid_cursor(in);
    return 0;
}
