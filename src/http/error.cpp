#include "http/error.hpp"

#include <string>

namespace hopgate::http {
namespace {

class HttpCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "hopgate.http"; }
    std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
            case Errc::kOk:
                return "ok";
            case Errc::kAuthorityEmpty:
                return "empty host";
            case Errc::kAuthorityTooLong:
                return "authority too long";
            case Errc::kHostTooLong:
                return "host name or label too long";
            case Errc::kUserinfo:
                return "userinfo not allowed in host";
            case Errc::kBadChar:
                return "invalid character in host";
            case Errc::kEmptyLabel:
                return "empty label in host name";
            case Errc::kBadPort:
                return "invalid port";
            case Errc::kBadIpv4:
                return "invalid IPv4 address";
            case Errc::kBadIpv6:
                return "invalid IPv6 address";
            case Errc::kZoneId:
                return "IPv6 zone id not allowed";
            case Errc::kUnterminatedBracket:
                return "unbalanced '[' or ']' in host";
            case Errc::kTooManyHeaders:
                return "too many header fields";
            case Errc::kHeadersTooLarge:
                return "header section too large";
            case Errc::kBadHeaderName:
                return "invalid header field name";
            case Errc::kBadHeaderValue:
                return "invalid header field value";
            case Errc::kBadAssetPath:
                return "invalid asset path";
            case Errc::kAssetNotFound:
                return "asset not found";
            case Errc::kHostMissing:
                return "missing Host header";
            case Errc::kHostRepeated:
                return "more than one Host header";
            case Errc::kHostMismatch:
                return "Host header disagrees with the request target";
        }
        return "unknown http error";
    }
};

}  // namespace

const std::error_category& http_category() {
    static const HttpCategory cat;
    return cat;
}

}  // namespace hopgate::http
