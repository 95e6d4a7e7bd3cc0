// The one exception type of afq's API and CLI: its message names the file, tensor or field,
// the value received and what is allowed, so the CLI can print it as a one-line error.
#pragma once

#include <stdexcept>
#include <string>

namespace afq {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace afq
