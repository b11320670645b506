#include "registry/error.hpp"

#include <string>

namespace hopgate::registry {
namespace {
class RegistryCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "hopgate.registry"; }
    std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
            case Errc::kOk:
                return "ok";
            case Errc::kNotFound:
                return "domain not registered";
            case Errc::kDuplicate:
                return "domain already registered";
            case Errc::kKeyMismatch:
                return "client API key does not match";
            case Errc::kInvalidMemo:
                return "invalid memo: at most 1024 bytes of UTF-8 text without control characters";
            case Errc::kInvalidArgument:
                return "invalid argument";
            case Errc::kDbUnavailable:
                return "database unavailable";
            case Errc::kDbError:
                return "database error";
            case Errc::kInvalidDsn:
                return "invalid database DSN";
            case Errc::kSchemaTooNew:
                return "database schema is newer than this program";
            case Errc::kOverloaded:
                return "registry overloaded, retry later";
            case Errc::kRandomFailure:
                return "random number generator failed";
            case Errc::kDomainEmpty:
                return "invalid domain: empty";
            case Errc::kDomainTooLong:
                return "invalid domain: longer than 253 characters";
            case Errc::kDomainLabelTooLong:
                return "invalid domain: a label is longer than 63 characters";
            case Errc::kDomainNoDot:
                return "invalid domain: must contain a dot";
            case Errc::kDomainHasPort:
                return "invalid domain: must not contain a port or ':'";
            case Errc::kDomainNonAscii:
                return "invalid domain: non-ASCII characters; give internationalised names in "
                       "xn-- (punycode) form";
            case Errc::kDomainBadChar:
                return "invalid domain: only letters a-z, digits, '-' and '.' are allowed";
            case Errc::kDomainEmptyLabel:
                return "invalid domain: empty label (leading or double dot)";
            case Errc::kDomainHyphen:
                return "invalid domain: a label starts or ends with '-'";
            case Errc::kDomainNumeric:
                return "invalid domain: an IP address is not a domain";
        }
        return "unknown registry error";
    }
};
}  // namespace

const std::error_category& registry_category() {
    static const RegistryCategory cat;
    return cat;
}

bool is_invalid_domain(std::error_code ec) {
    return ec.category() == registry_category() && ec.value() >= 100 && ec.value() < 200;
}

bool is_unavailable(std::error_code ec) {
    return ec == Errc::kDbUnavailable || ec == Errc::kOverloaded;
}

}  // namespace hopgate::registry
