// Names the server uses itself and that so can never be tenant domains: the control domain
// (HOP_SERVER_DOMAIN) and HOP_SERVER_PROXY_DOMAINS. Registering one would let a tenant's tunnel
// receive requests meant for the server (for the control domain: admin calls with the admin
// Bearer key), so the admin API (409) and `hopgate-server domain add` (exit 1) refuse them.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hopgate::admin {

struct ReservedName {
    std::string domain;   // normalised like registry::normalize_domain (lower case, no dot)
    std::string setting;  // the setting that reserves it, e.g. "HOP_SERVER_DOMAIN"
};

// The refusal message if `normalized` (a registry::normalize_domain result) is reserved.
inline std::optional<std::string> reserved_message(std::span<const ReservedName> reserved,
                                                   std::string_view normalized) {
    for (const auto& r : reserved) {
        if (r.domain == normalized) {
            return "'" + r.domain + "' is reserved by " + r.setting +
                   (r.setting == "HOP_SERVER_DOMAIN" ? " (the server's control domain)"
                                                     : " (a name the server serves itself)") +
                   " and cannot be registered as a tenant domain";
        }
    }
    return std::nullopt;
}

}  // namespace hopgate::admin
