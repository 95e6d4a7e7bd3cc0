// rethrow_with_context: the message gains the context and the type survives, so that a GPU
// failure deep in loading still reaches --device auto's fallback as a DeviceError.
#include <gtest/gtest.h>

#include <string>

#include "afq/error.h"

namespace afq {
namespace {

template <class E>
void throw_with_context(const std::string& context) {
  try {
    throw E("the cause");
  } catch (const Error&) {
    rethrow_with_context(context);
  }
}

TEST(RethrowWithContext, KeepsADeviceErrorADeviceError) {
  try {
    throw_with_context<DeviceError>("model.layers.0.mlp.up_proj: ");
    FAIL() << "nothing was thrown";
  } catch (const DeviceError& e) {
    EXPECT_STREQ(e.what(), "model.layers.0.mlp.up_proj: the cause");
  }
}

TEST(RethrowWithContext, KeepsAnErrorOfTheInputAPlainError) {
  try {
    throw_with_context<Error>("dir: ");
    FAIL() << "nothing was thrown";
  } catch (const DeviceError&) {
    FAIL() << "an input error became a device error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "dir: the cause");
  }
}

}  // namespace
}  // namespace afq
