// Bit-exact parity with the two original implementations, through the fixtures of
// ../shared/spec (copied to tests/data/spec): MLX's mx.quantize and transformers' MetalQuantize.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "afq/half.h"
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

// 135 cases made by transformers 5.17's own _affine_quantize_tensor / _affine_dequantize_tensor
// (scripts/device/make_quant_fixtures.py): bits 2, 4, 8 x group sizes x F32 / BF16 / F16 x five
// weights: normal, outliers, exact ties, mixed rows (constant, tiny, one-sided, huge, 1e-9, signed
// zeros) and 48 rows of magnitudes 1e-4 to 1e2. Names: input.<dtype>.<kind> and
// b<bits>_g<group>.<dtype>.<kind>.{weight,scales,qbiases,dequant}.
const char* kRandom = AFQ_TEST_DATA "/transformers_random/transformers_random.safetensors";

struct RandomCase {
  std::string name;   // b4_g64.bfloat16.ties
  std::string input;  // input.bfloat16.ties
  int bits;
  int group_size;
};

std::vector<RandomCase> random_cases(const SafetensorsFile& f) {
  std::vector<RandomCase> cases;
  for (const auto& entry : f.entries()) {
    if (!entry.name.ends_with(".scales")) continue;
    const std::string name = entry.name.substr(0, entry.name.size() - 7);
    const size_t dot = name.find('.');
    cases.push_back({name, "input" + name.substr(dot), std::stoi(name.substr(1)),
                     std::stoi(name.substr(name.find("_g") + 2))});
  }
  return cases;
}

TEST(TransformersRandomParity, MinMaxMatchesTransformers517OnEveryRandomCase) {
  SafetensorsFile f = SafetensorsFile::open(kRandom);
  const std::vector<RandomCase> cases = random_cases(f);
  for (const RandomCase& c : cases) {
    QuantizedWeight q = quantize(f.tensor(c.input), c.bits, c.group_size, QuantMethod::MinMax);
    EXPECT_EQ(differing(q.weight, as_u32(f.tensor(c.name + ".weight"))), 0) << c.name;
    EXPECT_EQ(differing(q.scales, f.tensor(c.name + ".scales")), 0) << c.name;
    EXPECT_EQ(differing(q.biases, f.tensor(c.name + ".qbiases")), 0) << c.name;
    Tensor expected = f.tensor(c.name + ".dequant");
    EXPECT_EQ(differing(dequantize(q, expected.dtype()), expected), 0) << c.name;
  }
  EXPECT_EQ(cases.size(), 135u);
}

// transformers' dequantization (MetalDequantize) widens scales and biases to float32, computes
// q * scale + bias there (a multiply, then an add) and rounds once to the weight dtype: exactly
// afq's dequantize (checked above, bit for bit). Arithmetic in bf16 / f16 itself, rounding after
// the multiply and after the add as a torch expression on half tensors does, gives other values
// on 29,518 bf16 and 29,811 f16 elements of these fixtures (the device script printed the same
// counts), so the fixtures do tell the two apart.
TEST(TransformersRandomParity, DequantIsFloat32RoundedOnceNotHalfPrecisionArithmetic) {
  SafetensorsFile f = SafetensorsFile::open(kRandom);
  int64_t half_arithmetic_differs[2] = {0, 0};  // BF16, F16
  for (const RandomCase& c : random_cases(f)) {
    Tensor expected = f.tensor(c.name + ".dequant");
    const DType dtype = expected.dtype();
    if (dtype == DType::F32) continue;
    const auto round_to_dtype = [&](float v) {
      return dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : f16_to_f32(f32_to_f16(v));
    };
    QuantizedWeight q{as_u32(f.tensor(c.name + ".weight")), f.tensor(c.name + ".scales"),
                      f.tensor(c.name + ".qbiases"), c.bits, c.group_size};
    const int64_t k = q.cols(), groups = k / c.group_size;
    std::vector<uint8_t> codes(k);
    for (int64_t r = 0; r < q.rows(); ++r) {
      unpack_row(q.weight.data<uint32_t>() + r * q.weight.dim(1), k, c.bits, codes.data());
      for (int64_t i = 0; i < k; ++i) {
        const float scale = float_at(q.scales, r * groups + i / c.group_size);
        const float bias = float_at(q.biases, r * groups + i / c.group_size);
        const float product = round_to_dtype(scale * static_cast<float>(codes[i]));
        const float in_half = round_to_dtype(product + bias);
        const float fixture = float_at(expected, r * k + i);
        half_arithmetic_differs[dtype == DType::F16] += std::memcmp(&in_half, &fixture, sizeof(float)) != 0;
      }
    }
  }
  EXPECT_EQ(half_arithmetic_differs[0], 29518);
  EXPECT_EQ(half_arithmetic_differs[1], 29811);
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
