#include "afq/version.h"

namespace afq {

std::string_view version() { return AFQ_VERSION; }

}  // namespace afq
