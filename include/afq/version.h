#pragma once

#include <string_view>

namespace afq {

std::string_view version();  // "0.1.0"

}  // namespace afq
