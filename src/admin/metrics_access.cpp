#include "admin/metrics_access.hpp"

#include <stdexcept>

#include "admin/cidr.hpp"
#include "registry/key.hpp"

namespace hopgate::admin {
namespace {

constexpr std::size_t kMinTokenLength = 16;

bool is_bearer(std::string_view auth) {
    if (auth.size() < 7) {
        return false;
    }
    static constexpr std::string_view kScheme = "bearer ";
    for (std::size_t i = 0; i < kScheme.size(); ++i) {
        const char c = auth[i];
        const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        if (lower != kScheme[i]) {
            return false;
        }
    }
    return true;
}

}  // namespace

MetricsGuard::MetricsGuard(CidrList allow, std::string_view token) : allow_(std::move(allow)) {
    if (!token.empty()) {
        if (token.size() < kMinTokenLength) {
            throw std::invalid_argument("HOP_METRICS_TOKEN must be at least " +
                                        std::to_string(kMinTokenLength) + " characters");
        }
        token_hash_ = registry::sha256_hex(token);
    }
}

MetricsAccess MetricsGuard::check(const std::optional<IpAddr>& remote,
                                  std::string_view authorization) const {
    if (!allow_.empty() && (!remote || !allow_.contains(*remote))) {
        return MetricsAccess::kForbidden;
    }
    if (token_hash_.empty()) {
        return MetricsAccess::kAllowed;
    }
    const std::string_view auth = trim(authorization);
    if (!is_bearer(auth)) {
        return MetricsAccess::kUnauthorized;
    }
    return registry::constant_time_equal(registry::sha256_hex(trim(auth.substr(7))), token_hash_)
               ? MetricsAccess::kAllowed
               : MetricsAccess::kUnauthorized;
}

}  // namespace hopgate::admin
