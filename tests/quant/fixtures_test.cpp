// Bit-exact parity with the two original implementations, through the fixtures of
// ../shared/spec (copied to tests/data/spec): MLX's mx.quantize and transformers' MetalQuantize.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "afq/quant.h"
#include "afq/safetensors.h"

namespace afq {
namespace {

const std::string kSpec = AFQ_TEST_DATA "/spec/";
const char* kInputs[] = {"f32", "bf16", "f16", "edge"};

// Counts differing elements, so a failure says how far off we are.
int64_t differing(const Tensor& a, const Tensor& b) {
  if (a.nbytes() != b.nbytes() || a.shape() != b.shape()) return -1;
  const size_t size = dtype_size(a.dtype());
  int64_t n = 0;
  for (int64_t i = 0; i < a.numel(); ++i) n += std::memcmp(a.bytes() + i * size, b.bytes() + i * size, size) != 0;
  return n;
}

Tensor as_u32(const Tensor& t) { return Tensor::borrow(DType::U32, t.shape(), t.bytes(), nullptr); }

class MlxParity : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(MlxParity, QuantizeMatchesMlxBitForBit) {
  auto [bits, group] = GetParam();
  SafetensorsFile in = SafetensorsFile::open(kSpec + "weights_in.safetensors");
  SafetensorsFile mlx = SafetensorsFile::open(kSpec + "mlx_b" + std::to_string(bits) + "_g" + std::to_string(group) +
                                              ".safetensors");
  for (const char* name : kInputs) {
    QuantizedWeight q = quantize(in.tensor(name), bits, group, QuantMethod::Mlx);
    const std::string n = name;
    EXPECT_EQ(differing(q.weight, mlx.tensor(n + ".weight")), 0) << n;
    EXPECT_EQ(differing(q.scales, mlx.tensor(n + ".scales")), 0) << n;
    EXPECT_EQ(differing(q.biases, mlx.tensor(n + ".biases")), 0) << n;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryBitsAndGroupSize, MlxParity,
                         ::testing::Combine(::testing::Values(2, 3, 4, 5, 6, 8), ::testing::Values(32, 64, 128)));

class TransformersParity : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(TransformersParity, MinMaxQuantizeAndDequantizeMatchTransformersBitForBit) {
  auto [bits, group] = GetParam();
  SafetensorsFile in = SafetensorsFile::open(kSpec + "weights_in.safetensors");
  SafetensorsFile tf = SafetensorsFile::open(kSpec + "transformers_b" + std::to_string(bits) + "_g" +
                                             std::to_string(group) + ".safetensors");
  for (const char* name : kInputs) {
    Tensor w = in.tensor(name);
    QuantizedWeight q = quantize(w, bits, group, QuantMethod::MinMax);
    const std::string n = name;
    EXPECT_EQ(differing(q.weight, as_u32(tf.tensor(n + ".weight"))), 0) << n;  // stored as I32
    EXPECT_EQ(differing(q.scales, tf.tensor(n + ".scales")), 0) << n;
    EXPECT_EQ(differing(q.biases, tf.tensor(n + ".qbiases")), 0) << n;
    // transformers dequantizes in float32 (scale * q, then + bias) and rounds once to the dtype.
    Tensor expected = tf.tensor(n + ".dequant");
    EXPECT_EQ(differing(dequantize(q, expected.dtype()), expected), 0) << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Bits248, TransformersParity,
                         ::testing::Combine(::testing::Values(2, 4, 8), ::testing::Values(32, 64, 128)));

// 108 random cases (normal, heavy-tailed, values on ties, constant / tiny / one-sided groups) x
// bits 2, 4, 8 x group sizes x dtypes, made by transformers 5.17's own _affine_quantize_tensor
// (scripts/device/make_quant_fixtures.py on the GPU machine).
TEST(TransformersRandomParity, MinMaxMatchesTransformers517OnEveryRandomCase) {
  SafetensorsFile f = SafetensorsFile::open(AFQ_TEST_DATA "/transformers_random/transformers_random.safetensors");
  int cases = 0;
  for (const auto& entry : f.entries()) {
    if (!entry.name.ends_with(".input")) continue;
    const std::string name = entry.name.substr(0, entry.name.size() - 6);  // b4_g64_bfloat16_grid
    const int bits = std::stoi(name.substr(1));
    const int group = std::stoi(name.substr(name.find("_g") + 2));
    QuantizedWeight q = quantize(f.tensor(entry.name), bits, group, QuantMethod::MinMax);
    EXPECT_EQ(differing(q.weight, as_u32(f.tensor(name + ".weight"))), 0) << name;
    EXPECT_EQ(differing(q.scales, f.tensor(name + ".scales")), 0) << name;
    EXPECT_EQ(differing(q.biases, f.tensor(name + ".qbiases")), 0) << name;
    Tensor expected = f.tensor(name + ".dequant");
    EXPECT_EQ(differing(dequantize(q, expected.dtype()), expected), 0) << name;
    ++cases;
  }
  EXPECT_EQ(cases, 108);
}

TEST(MlxQmmParity, ReferenceMatchesMlxQuantizedMatmul) {
  for (int bits : {3, 4}) {
    SafetensorsFile f = SafetensorsFile::open(kSpec + "mlx_qmm_b" + std::to_string(bits) + "_g64.safetensors");
    QuantizedWeight w{f.tensor("w"), f.tensor("scales"), f.tensor("biases"), bits, 64};
    Tensor y = reference_affine_qmm_t(f.tensor("x"), w);
    Tensor expected = f.tensor("y");
    ASSERT_EQ(y.shape(), expected.shape());
    double err = 0, norm = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const double d = float_at(y, i) - float_at(expected, i);
      err += d * d;
      norm += double(float_at(expected, i)) * float_at(expected, i);
    }
    EXPECT_LT(std::sqrt(err / norm), 1e-6) << bits << " bits";  // MLX accumulates in float32
  }
}

}  // namespace
}  // namespace afq
