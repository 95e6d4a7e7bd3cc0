#include "afq/tensor.h"

#include <gtest/gtest.h>

#include "afq/error.h"
#include "afq/half.h"

namespace afq {
namespace {

TEST(Tensor, ZerosOwnsWritableZeroedBytes) {
  Tensor t = Tensor::zeros(DType::F32, {2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
  t.mutable_data<float>()[5] = 2.5f;
  EXPECT_EQ(float_at(t, 5), 2.5f);
}

TEST(Tensor, BorrowedViewIsReadOnlyUntilCloned) {
  float values[4] = {1, 2, 3, 4};
  Tensor view = Tensor::borrow(DType::F32, {4}, values, nullptr);
  EXPECT_FALSE(view.writable());
  EXPECT_THROW(view.mutable_bytes(), Error);
  Tensor copy = view.clone();
  copy.mutable_data<float>()[0] = 9;
  EXPECT_EQ(values[0], 1.0f);
}

TEST(Tensor, TypedAccessChecksTheElementSize) {
  Tensor t = Tensor::zeros(DType::BF16, {4});
  EXPECT_THROW(t.data<float>(), Error);
  EXPECT_NO_THROW(t.data<uint16_t>());
}

TEST(Tensor, ReshapeKeepsTheElementCount) {
  Tensor t = Tensor::zeros(DType::F32, {2, 6});
  EXPECT_EQ(t.reshape({3, 4}).dim(-1), 4);
  EXPECT_THROW(t.reshape({5}), Error);
}

TEST(Tensor, ConvertsBetweenFloatDtypes) {
  Tensor t = Tensor::zeros(DType::F32, {3});
  float* p = t.mutable_data<float>();
  p[0] = 1.0f;
  p[1] = 1.00390625f;  // 1 + 2^-8: a bf16 tie, rounds to even (1.0)
  p[2] = -3.5f;
  Tensor b = to_dtype(t, DType::BF16);
  EXPECT_EQ(b.data<uint16_t>()[1], f32_to_bf16(1.0f));
  Tensor back = to_dtype(b, DType::F32);
  EXPECT_EQ(back.data<float>()[2], -3.5f);
  EXPECT_THROW(to_dtype(Tensor::zeros(DType::I32, {1}), DType::F32), Error);
}

}  // namespace
}  // namespace afq
