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

// What the GPU refused rather than the input: no device or no CUDA build, too little device
// memory, a failed CUDA call. `--device auto` falls back to the CPU on these alone.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// Rethrows the exception being handled (an Error) with `context` before its message, keeping
// its type. Call only inside a catch block.
[[noreturn]] inline void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const DeviceError& e) {
    throw DeviceError(context + e.what());
  } catch (const Error& e) {
    throw Error(context + e.what());
  }
}

}  // namespace afq
