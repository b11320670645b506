// Errors of the core layer (configuration, parsing of local input).
#pragma once

#include <system_error>

namespace hopgate::core {

enum class Errc {
    kOk = 0,
    kInvalidArgument = 1,  // a caller passed a value outside the documented range
    kParse = 2,            // text or bytes did not parse
    kTooLarge = 3,         // input exceeded a size limit
    kNotFound = 4,         // a named thing does not exist
    kIo = 5,               // a file could not be read or written
};

const std::error_category& core_category();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), core_category()}; }

}  // namespace hopgate::core

template <>
struct std::is_error_code_enum<hopgate::core::Errc> : std::true_type {};
