// The product version (CMake's project version), for --version and the logs.
#pragma once

#include <string_view>

namespace hopgate::core {

std::string_view version();

}  // namespace hopgate::core
