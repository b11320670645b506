#include "acme/error.hpp"

#include <string>

namespace hopgate::acme {
namespace {

class Category : public std::error_category {
  public:
    const char* name() const noexcept override { return "acme"; }
    std::string message(int c) const override {
        switch (static_cast<Errc>(c)) {
            case Errc::kOk:
                return "ok";
            case Errc::kParse:
                return "malformed ACME document";
            case Errc::kTooLarge:
                return "ACME response too large";
            case Errc::kProblem:
                return "ACME server returned a problem";
            case Errc::kCrypto:
                return "ACME cryptographic operation failed";
            case Errc::kChallengeFailed:
                return "ACME challenge validation failed";
            case Errc::kOrderFailed:
                return "ACME order failed";
            case Errc::kHttp:
                return "ACME HTTP exchange failed";
            case Errc::kInvalidArgument:
                return "invalid ACME argument";
            case Errc::kNoChallenge:
                return "no supported ACME challenge offered";
        }
        return "unknown ACME error";
    }
};

}  // namespace

const std::error_category& acme_category() {
    static const Category c;
    return c;
}

}  // namespace hopgate::acme
