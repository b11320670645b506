#include "core/error.hpp"

#include <string>

namespace hopgate::core {
namespace {
class CoreCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "hopgate.core"; }
    std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
            case Errc::kOk: return "ok";
            case Errc::kInvalidArgument: return "invalid argument";
            case Errc::kParse: return "parse error";
            case Errc::kTooLarge: return "input too large";
            case Errc::kNotFound: return "not found";
            case Errc::kIo: return "i/o error";
        }
        return "unknown core error";
    }
};
}  // namespace

const std::error_category& core_category() {
    static const CoreCategory cat;
    return cat;
}

}  // namespace hopgate::core
