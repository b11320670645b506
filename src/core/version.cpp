#include "core/version.hpp"

namespace hopgate::core {

std::string_view version() { return HG_VERSION; }

}  // namespace hopgate::core
