#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <random>
#include <string>
#include <vector>

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
          if (method == QuantMethod::MinMax) {
            ASSERT_LE(outside, 1e-5f * std::fabs(scale) + 1e-7f);  // rounding only
          }
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

TEST(Quantize, CodesFollowTheSpecFormulaWithTheFloat32ScaleAndBias) {
  // For F32 weights the stored scale and bias are the float32 ones, so every code must be
  // clamp(round_half_even((w - bias) / scale), 0, 2^bits - 1), computed here with std::nearbyint.
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> magnitude(-9.0f, 3.0f);
  for (auto method : {QuantMethod::Mlx, QuantMethod::MinMax})
    for (int bits : kSupportedBits) {
      Tensor w = random_weight(16, 128, DType::F32, 40 + bits);
      float* p = w.mutable_data<float>();
      for (int64_t r = 0; r < 16; ++r) {
        const float row_scale = std::pow(10.0f, magnitude(rng));
        for (int64_t c = 0; c < 128; ++c) p[r * 128 + c] *= row_scale;
      }
      QuantizedWeight q = quantize(w, bits, 32, method);
      std::vector<uint8_t> codes(128);
      for (int64_t r = 0; r < 16; ++r) {
        unpack_row(q.weight.data<uint32_t>() + r * q.weight.dim(1), 128, bits, codes.data());
        for (int64_t c = 0; c < 128; ++c) {
          const float scale = float_at(q.scales, r * 4 + c / 32), bias = float_at(q.biases, r * 4 + c / 32);
          const float expected =
              std::clamp(std::nearbyint((p[r * 128 + c] - bias) / scale), 0.0f, static_cast<float>((1 << bits) - 1));
          ASSERT_EQ(codes[c], expected) << quant_method_name(method) << " bits " << bits << " at " << r << ", " << c;
        }
      }
    }
}

TEST(QuantizeMinMax, RoundsExactTiesToEven) {
  // min 0 and max 15/16 give the 2-bit scale 5/16 exactly, so 5/32, 15/32 and 25/32 sit on the
  // ties 0.5, 1.5 and 2.5, which round to 0, 2 and 2.
  Tensor w = Tensor::zeros(DType::F32, {1, 32});
  float* p = w.mutable_data<float>();
  p[1] = 15.0f / 16;
  p[2] = 5.0f / 32;
  p[3] = 15.0f / 32;
  p[4] = 25.0f / 32;
  QuantizedWeight q = quantize(w, 2, 32, QuantMethod::MinMax);
  EXPECT_EQ(float_at(q.scales, 0), 5.0f / 16);
  std::vector<uint8_t> codes(32);
  unpack_row(q.weight.data<uint32_t>(), 32, 2, codes.data());
  EXPECT_EQ((std::vector<int>{codes[0], codes[1], codes[2], codes[3], codes[4]}), (std::vector<int>{0, 3, 0, 2, 2}));
}

TEST(Quantize, RefusesAGroupWhoseSpanOverflowsFloat32) {
  Tensor w = Tensor::zeros(DType::F32, {2, 64});
  w.mutable_data<float>()[64 + 40] = 3e38f;
  w.mutable_data<float>()[64 + 41] = -3e38f;
  for (auto method : {QuantMethod::Mlx, QuantMethod::MinMax}) {
    try {
      quantize(w, 4, 32, method);
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("row 1, columns [32, 64)"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("overflows float32"), std::string::npos) << e.what();
    }
  }
}

TEST(Quantize, KeepsTheSignOfAZeroMinimumAsTheFirstOfEqualValues) {
  // min/max keep the first of equal values, as torch's and MLX's reductions do here; minmax's bias
  // is the minimum, so a group starting with -0.0 stores -0.0.
  for (float first : {0.0f, -0.0f}) {
    Tensor w = Tensor::zeros(DType::F32, {1, 32});
    for (int i = 0; i < 32; ++i) w.mutable_data<float>()[i] = i % 2 ? -first : first;
    QuantizedWeight q = quantize(w, 4, 32, QuantMethod::MinMax);
    EXPECT_EQ(std::signbit(float_at(q.biases, 0)), std::signbit(first));
  }
}

TEST(Quantize, MessagesNameTheValueAndWhatIsAllowed) {
  Tensor w = random_weight(2, 64, DType::F32, 2);
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([&] { quantize(w, 7, 64); }),
            "[quantize] The requested number of bits 7 is not supported. The supported bits are 2, 3, 4, 5, 6 and 8.");
  EXPECT_EQ(message([&] { quantize(random_weight(2, 96, DType::F32, 2), 4, 64); }),
            "[quantize] the last dimension 96 is not a multiple of the group size 64");
  EXPECT_EQ(message([&] { quantize(Tensor::zeros(DType::F32, {2, 2, 64}), 4, 64); }),
            "[quantize] expected a 2-D weight [N, K], got shape [2, 2, 64]");
  EXPECT_EQ(message([&] { quantize(Tensor::zeros(DType::I32, {2, 64}), 4, 64); }),
            "[quantize] expected a F32, F16 or BF16 weight, got I32");
  Tensor inf = w.clone();
  inf.mutable_data<float>()[3] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(message([&] { quantize(inf, 4, 32); }), "Inf in the weight at [0, 3]; cannot quantize");
}

TEST(Dequantize, RefusesAnUnsupportedGroupSizeInsteadOfOverrunning) {
  QuantizedWeight q = quantize(random_weight(2, 256, DType::F32, 3), 4, 128);
  q.group_size = 256;
  std::vector<float> row(256);
  EXPECT_THROW(dequantize_row(q, 0, row.data()), Error);
  EXPECT_THROW(dequantize(q, DType::F32), Error);
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
