// A progress bar on stderr when it is a terminal; silent otherwise (scripts, CI logs).
#pragma once

#include <string>

#include "afq/convert.h"

namespace afq::cli {

ProgressFn terminal_progress(std::string label);

}  // namespace afq::cli
