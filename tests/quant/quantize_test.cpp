#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <random>

#include "afq/error.h"
#include "afq/half.h"
#include "afq/quant.h"

namespace afq {
namespace {

Tensor random_weight(int64_t n, int64_t k, DType dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  Tensor f = Tensor::zeros(DType::F32, {n, k});
  for (int64_t i = 0; i < f.numel(); ++i) f.mutable_data<float>()[i] = normal(rng);
  return dtype == DType::F32 ? f : to_dtype(f, dtype);
}

TEST(Quantize, DequantizedWeightsLieWithinHalfAStepOfTheirGrid) {
  // Each group's grid is bias + scale * [0, 2^bits - 1]. Inside it, dequantization is off by at
  // most half a step; MLX's rule snaps one edge onto the grid, which can leave the other edge
  // outside, where values clamp to the grid's end.
  for (auto method : {QuantMethod::Mlx, QuantMethod::MinMax})
    for (int bits : kSupportedBits)
      for (int group : kSupportedGroupSizes) {
        Tensor w = random_weight(8, 256, DType::F32, bits * 1000 + group);
        QuantizedWeight q = quantize(w, bits, group, method);
        Tensor d = dequantize(q, DType::F32);
        for (int64_t i = 0; i < w.numel(); ++i) {
          const int64_t g = (i / 256) * (256 / group) + (i % 256) / group;
          const float scale = float_at(q.scales, g), bias = float_at(q.biases, g);
          const float end = bias + scale * static_cast<float>((1 << bits) - 1);
          const float lo = std::min(bias, end), hi = std::max(bias, end), x = float_at(w, i);
          const float outside = std::max({0.0f, lo - x, x - hi});
          if (method == QuantMethod::MinMax) ASSERT_LE(outside, 1e-5f * std::fabs(scale) + 1e-7f);  // rounding only
          ASSERT_LE(std::fabs(x - float_at(d, i)), 0.5f * std::fabs(scale) * (1 + 1e-5f) + outside + 1e-7f)
              << quant_method_name(method) << " bits " << bits << " group " << group << " element " << i;
        }
      }
}

TEST(QuantizeMlx, ReproducesEdgeAndZeroExactly) {
  Tensor w = Tensor::zeros(DType::F32, {1, 64});
  float* p = w.mutable_data<float>();
  for (int i = 0; i < 64; ++i) p[i] = -0.3f + 0.01f * static_cast<float>(i);  // spans zero; |min| < |max|
  p[5] = 0.0f;
  QuantizedWeight q = quantize(w, 4, 64, QuantMethod::Mlx);
  Tensor d = dequantize(q, DType::F32);
  float hi = 0;
  int hi_at = 0;
  for (int i = 0; i < 64; ++i)
    if (p[i] > hi) hi = p[i], hi_at = i;
  EXPECT_EQ(d.data<float>()[hi_at], hi);     // the larger-magnitude edge
  EXPECT_LT(float_at(q.scales, 0), 0.0f);    // the edge is the maximum: a negative scale
}

TEST(QuantizeMlx, AllZeroGroupGivesTheSpecsConstants) {
  Tensor w = Tensor::zeros(DType::F32, {1, 32});
  QuantizedWeight q = quantize(w, 4, 32, QuantMethod::Mlx);
  EXPECT_EQ(float_at(q.scales, 0), -1e-7f);
  EXPECT_EQ(float_at(q.biases, 0), 0.0f);
  EXPECT_EQ(q.weight.data<uint32_t>()[0], 0u);
  QuantizedWeight m = quantize(w, 4, 32, QuantMethod::MinMax);
  EXPECT_EQ(float_at(m.scales, 0), 1e-8f);
}

TEST(Quantize, ScalesAndBiasesKeepTheWeightsDtype) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    QuantizedWeight q = quantize(random_weight(4, 64, dtype, 1), 4, 64);
    EXPECT_EQ(q.scales.dtype(), dtype);
    EXPECT_EQ(q.biases.dtype(), dtype);
    EXPECT_EQ(q.weight.shape(), (Shape{4, 8}));
    EXPECT_NO_THROW(validate(q, "w"));
  }
}

TEST(Quantize, LargeWeightsSplitOverThreadsGiveTheSameResult) {
  Tensor w = random_weight(1024, 1024, DType::BF16, 9);  // over the threading threshold
  QuantizedWeight whole = quantize(w, 4, 64);
  QuantizedWeight rows = quantize(Tensor::borrow(DType::BF16, {8, 1024}, w.bytes(), nullptr), 4, 64);
  EXPECT_EQ(std::memcmp(whole.weight.bytes(), rows.weight.bytes(), rows.weight.nbytes()), 0);
}

TEST(Quantize, RejectsBadInputWithTheValueAndWhatIsAllowed) {
  Tensor w = random_weight(2, 64, DType::F32, 2);
  try {
    quantize(w, 4, 48);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[quantize] The requested group size 48 is not supported. The supported group sizes are 32, 64, and 128.");
  }
  EXPECT_THROW(quantize(w, 7, 64), Error);
  EXPECT_THROW(quantize(random_weight(2, 96, DType::F32, 2), 4, 64), Error);                   // K % group
  EXPECT_THROW(quantize(Tensor::zeros(DType::F32, {64}), 4, 64), Error);                       // 1-D
  EXPECT_THROW(quantize(Tensor::zeros(DType::F32, {2, 2, 64}), 4, 64), Error);                 // 3-D
  EXPECT_THROW(quantize(Tensor::zeros(DType::I32, {2, 64}), 4, 64), Error);                    // not float
  Tensor nan = w.clone();
  nan.mutable_data<float>()[70] = std::numeric_limits<float>::quiet_NaN();
  try {
    quantize(nan, 4, 64);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN in the weight at [1, 6]"), std::string::npos) << e.what();
  }
  Tensor inf = w.clone();
  inf.mutable_data<float>()[3] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(quantize(inf, 4, 64), Error);
}

TEST(Validate, CatchesTensorsThatDoNotFitTogether) {
  QuantizedWeight q = quantize(random_weight(4, 128, DType::F32, 5), 4, 64);
  QuantizedWeight bad = q;
  bad.group_size = 32;  // scales would need 4 groups
  EXPECT_THROW(validate(bad, "layer"), Error);
  bad = q;
  bad.scales = Tensor::zeros(DType::F32, {4, 3});
  EXPECT_THROW(validate(bad, "layer"), Error);
  bad = q;
  bad.biases = to_dtype(q.biases, DType::BF16);
  EXPECT_THROW(validate(bad, "layer"), Error);
}

TEST(ReferenceQmm, MatchesAFloat64MatmulOfTheDequantizedWeight) {
  for (int bits : kSupportedBits) {
    QuantizedWeight q = quantize(random_weight(7, 128, DType::BF16, bits), bits, 32);
    Tensor x = random_weight(3, 128, DType::F32, 100 + bits);
    Tensor bias = random_weight(1, 7, DType::F32, 200).reshape({7});
    Tensor y = reference_affine_qmm_t(x, q, &bias);
    Tensor d = dequantize(q, DType::F32);
    ASSERT_EQ(y.shape(), (Shape{3, 7}));
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 7; ++j) {
        double s = float_at(bias, j);
        for (int c = 0; c < 128; ++c) s += double(float_at(x, i * 128 + c)) * float_at(d, j * 128 + c);
        EXPECT_NEAR(float_at(y, i * 7 + j), s, 1e-6 * (1 + std::fabs(s)));
      }
  }
  QuantizedWeight q = quantize(random_weight(4, 64, DType::F32, 1), 4, 64);
  EXPECT_THROW(reference_affine_qmm_t(Tensor::zeros(DType::F32, {2, 32}), q), Error);
}

}  // namespace
}  // namespace afq
