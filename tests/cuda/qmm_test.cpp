// afq::cuda::affine_qmm_t against the CPU reference (float64 sums) on random inputs: every bit
// width, group size and x dtype, scales in BF16 / F16 / F32, rows of x on every kernel path,
// odd N. Outputs are poisoned with NaN before each launch, so an unwritten element fails.
// Every test skips when no CUDA device is present (CI has none).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "afq/cuda.h"
#include "afq/error.h"
#include "afq/half.h"
#include "afq/quant.h"
#include "src/cuda/qmm.h"

namespace afq::cuda {
namespace {

Tensor random_tensor(Shape shape, DType dtype, std::mt19937& rng, float stddev = 1.f) {
  Tensor f = Tensor::zeros(DType::F32, std::move(shape));
  std::normal_distribution<float> normal(0.f, stddev);
  for (int64_t i = 0; i < f.numel(); ++i) f.mutable_data<float>()[i] = normal(rng);
  return dtype == DType::F32 ? f : to_dtype(f, dtype);
}

// A weight with uniform random q's and scales of both signs, biases of either sign.
QuantizedWeight random_weight(int64_t n, int64_t k, int bits, int group_size, DType scale_dtype, std::mt19937& rng) {
  QuantizedWeight w;
  w.bits = bits;
  w.group_size = group_size;
  w.weight = Tensor::zeros(DType::U32, {n, k * bits / 32});
  std::uniform_int_distribution<int> q_dist(0, (1 << bits) - 1);
  std::vector<uint8_t> q(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    for (auto& v : q) v = static_cast<uint8_t>(q_dist(rng));
    pack_row(q.data(), k, bits, w.weight.mutable_data<uint32_t>() + r * (k * bits / 32));
  }
  w.scales = random_tensor({n, k / group_size}, scale_dtype, rng, 0.1f);
  w.biases = random_tensor({n, k / group_size}, scale_dtype, rng, 0.5f);
  return w;
}

struct DeviceMemory {
  explicit DeviceMemory(size_t bytes) {
    if (cudaMalloc(&ptr, bytes) != cudaSuccess) throw Error("cudaMalloc failed in the test");
  }
  DeviceMemory(const Tensor& t) : DeviceMemory(t.nbytes()) {
    if (cudaMemcpy(ptr, t.bytes(), t.nbytes(), cudaMemcpyHostToDevice) != cudaSuccess)
      throw Error("cudaMemcpy failed in the test");
  }
  ~DeviceMemory() { cudaFree(ptr); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* ptr = nullptr;
};

struct Case {
  int64_t m, n, k;
  int bits, group_size;
  DType x_dtype, scale_dtype;
  bool with_bias = false;
  std::string name() const {
    return "M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k) + " bits=" +
           std::to_string(bits) + " group=" + std::to_string(group_size) + " x=" +
           std::string(dtype_name(x_dtype)) + " scales=" + std::string(dtype_name(scale_dtype)) +
           (with_bias ? " bias" : "");
  }
};

// Runs one case on the device and returns ||y - ref|| / ||ref||; fails on any unwritten output.
double relative_error(const Case& c, std::mt19937& rng) {
  const QuantizedWeight w = random_weight(c.n, c.k, c.bits, c.group_size, c.scale_dtype, rng);
  const Tensor x = random_tensor({c.m, c.k}, c.x_dtype, rng);
  const Tensor bias = random_tensor({c.n}, c.scale_dtype, rng);
  const Tensor* bias_ptr = c.with_bias ? &bias : nullptr;
  const Tensor ref = reference_affine_qmm_t(x, w, bias_ptr);

  const DeviceQuantizedWeight dw = DeviceQuantizedWeight::upload(w);
  DeviceMemory dx(x), dbias(bias), dy(static_cast<size_t>(c.m * c.n) * 2);
  EXPECT_EQ(cudaMemset(dy.ptr, 0xFF, c.m * c.n * 2), cudaSuccess);  // 0xFFFF is NaN in BF16 and F16
  affine_qmm_t(dx.ptr, c.m, c.x_dtype, dw, c.with_bias ? dbias.ptr : nullptr, c.scale_dtype, dy.ptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint16_t> y(static_cast<size_t>(c.m * c.n));
  EXPECT_EQ(cudaMemcpy(y.data(), dy.ptr, y.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);

  double err = 0, norm = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double got = c.x_dtype == DType::BF16 ? bf16_to_f32(y[i]) : f16_to_f32(y[i]);
    if (!std::isfinite(got)) {
      ADD_FAILURE() << c.name() << ": output " << i << " was not written (or is not finite)";
      return INFINITY;
    }
    const double want = ref.data<float>()[i];
    err += (got - want) * (got - want);
    norm += want * want;
  }
  return std::sqrt(err / norm);
}

double tolerance(DType x_dtype) { return x_dtype == DType::BF16 ? 1e-2 : 2e-3; }

class CudaQmm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(CudaQmm, MatchesTheReferenceForEveryBitsGroupDtypeAndRowCount) {
  std::mt19937 rng(5);
  const DType scale_dtypes[] = {DType::BF16, DType::F16, DType::F32};
  int variant = 0;
  for (int bits : kSupportedBits)
    for (int group_size : kSupportedGroupSizes)
      for (DType x_dtype : {DType::BF16, DType::F16})
        for (int64_t m : {1, 2, 7, 16, 33, 512}) {
          // Scales cycle through the three dtypes; N = 131 is odd and no multiple of any tile.
          const Case c{m, 131, 256, bits, group_size, x_dtype, scale_dtypes[variant % 3], variant % 2 == 0};
          ++variant;
          const double e = relative_error(c, rng);
          EXPECT_LE(e, tolerance(x_dtype)) << c.name();
        }
}

// The register-dequant tensor-core GEMV (qmv_mma, sm_80+) takes up to 64 rows: every row count
// it treats differently (one block of 8 rows of x, partial blocks, several blocks up to 64),
// odd N (a partial 16-row tile), and K = 2304, which is no multiple of any bit width's K step
// (the last step is partly past the end) and small N splits K over blocks (partial sums).
TEST_F(CudaQmm, TensorCoreGemvMatchesTheReferenceForEveryRowCountUpTo64) {
  const ForceQmmPath force(QmmPath::Mma);  // the dispatcher sends it only 2 to 8 rows
  std::mt19937 rng(12);
  const DType scale_dtypes[] = {DType::BF16, DType::F16, DType::F32};
  int variant = 0;
  for (int bits : kSupportedBits)
    for (int group_size : kSupportedGroupSizes)
      for (DType x_dtype : {DType::BF16, DType::F16})
        for (int64_t m : {1, 2, 5, 8, 9, 16, 33, 64}) {
          const Case c{m, 67, 2304, bits, group_size, x_dtype, scale_dtypes[variant % 3], variant % 2 == 0};
          ++variant;
          EXPECT_LE(relative_error(c, rng), tolerance(x_dtype)) << c.name();
        }
}

// Decode shapes of a Llama-3-8B layer (N = 4096 + 1 rows, K = 14336): many K steps per warp,
// eight warps per block, no split; and N = 1031, which splits K over blocks.
TEST_F(CudaQmm, TensorCoreGemvMatchesTheReferenceOnLongRows) {
  const ForceQmmPath force(QmmPath::Mma);
  std::mt19937 rng(13);
  for (int bits : {3, 4, 8})
    for (int64_t n : {1031, 4097})
      for (int64_t m : {1, 4, 40}) {
        if (n == 4097 && m == 40) continue;  // the float64 reference would take too long
        const Case c{m, n, 14336, bits, 64, m == 4 ? DType::F16 : DType::BF16, DType::BF16, m == 1};
        EXPECT_LE(relative_error(c, rng), tolerance(c.x_dtype)) << c.name();
      }
}

// The int8-activation GEMV (4 and 8 bits, M <= 2, BF16/F16 scales): every group size and dtype;
// N = 4097 and N = 6 leave a partial last tile; K = 14336 (14 ring stages a tile at 4 bits, 28
// at 8), K = 2304 (a partial last stage) and K = 96 (one partial stage). Where it declines (F32
// scales, M > 2) the dispatcher's choice runs.
TEST_F(CudaQmm, Int8GemvMatchesTheReference) {
  const ForceQmmPath force(QmmPath::Int8);  // F32 scales: it declines, and the float GEMV runs
  std::mt19937 rng(15);
  const DType scale_dtypes[] = {DType::BF16, DType::F16, DType::F32};
  int variant = 0;
  for (int bits : {4, 8}) {
    for (int group_size : kSupportedGroupSizes)
      for (DType x_dtype : {DType::BF16, DType::F16})
        for (int64_t m : {1, 2}) {
          const Case c{m, 67, 2304, bits, group_size, x_dtype, scale_dtypes[variant % 3], variant % 2 == 0};
          ++variant;
          EXPECT_LE(relative_error(c, rng), tolerance(x_dtype)) << c.name();
        }
    for (int64_t n : {6, 4097}) {
      const Case c{1, n, 14336, bits, 64, DType::F16, DType::BF16, n == 6};
      EXPECT_LE(relative_error(c, rng), tolerance(c.x_dtype)) << c.name();
    }
    const Case short_row{2, 13, 96, bits, 32, DType::F16, DType::BF16, true};
    EXPECT_LE(relative_error(short_row, rng), tolerance(short_row.x_dtype)) << short_row.name();
  }
}

TEST_F(CudaQmm, TakesShapesTheFastPathsDoNot) {
  std::mt19937 rng(6);
  // K = 96 is no multiple of the GEMM's 64-column step; 3, 5 and 6 bits at K = 96 also miss the
  // GEMV's 16-byte chunks, so these run the word-by-word GEMV in passes of 8 rows.
  for (int bits : kSupportedBits)
    for (int64_t m : {1, 5, 33}) {
      const Case c{m, 37, 96, bits, 32, DType::BF16, DType::BF16, true};
      EXPECT_LE(relative_error(c, rng), tolerance(c.x_dtype)) << c.name();
    }
}

TEST_F(CudaQmm, MatchesTheReferenceOnLongRows) {
  std::mt19937 rng(7);
  // K = 20480: several loop steps per GEMV thread and 320 GEMM main-loop steps.
  for (int bits : {2, 3, 4, 8})
    for (int64_t m : {1, 3, 24}) {
      const Case c{m, 9, 20480, bits, 64, DType::F16, DType::BF16, m == 3};
      EXPECT_LE(relative_error(c, rng), tolerance(c.x_dtype)) << c.name();
    }
}

TEST_F(CudaQmm, SmallCaseForTheSanitizer) {
  std::mt19937 rng(8);
  for (int bits : {3, 4, 8})
    for (int64_t m : {1, 2, 3, 17}) {
      const Case c{m, 5, 128, bits, 32, DType::BF16, m == 3 ? DType::F32 : DType::BF16, true};
      EXPECT_LE(relative_error(c, rng), tolerance(c.x_dtype)) << c.name();
    }
}

// Few tiles and a long K: the fused GEMM (M = 9..95) splits K and
// sums float partials (with the bias); M = 300 takes the dequantize + cuBLAS path, in more than
// one slice when K is long.
TEST_F(CudaQmm, SplitKAndDequantizeGemmMatchTheReference) {
  std::mt19937 rng(10);
  for (int bits : {3, 4, 8})
    for (int64_t m : {9, 16, 33, 80, 100, 300}) {
      const Case c{m, 131, 4096, bits, 64, m % 2 ? DType::BF16 : DType::F16, DType::BF16, true};
      EXPECT_LE(relative_error(c, rng), tolerance(c.x_dtype)) << c.name();
    }
  const Case wide{300, 8200, 4160, 4, 64, DType::BF16, DType::F32, true};  // 4 slices of 64 MiB
  EXPECT_LE(relative_error(wide, rng), tolerance(wide.x_dtype)) << wide.name();
}

// Each kernel family forced on row counts the dispatcher sends elsewhere, so that none goes
// untested when the thresholds move.
TEST_F(CudaQmm, EveryPathMatchesTheReferenceWhenForced) {
  std::mt19937 rng(14);
  for (QmmPath path : {QmmPath::Qmv, QmmPath::Int8, QmmPath::Mma, QmmPath::Fused, QmmPath::Dequant}) {
    const ForceQmmPath force(path);
    for (int bits : kSupportedBits)
      for (int64_t m : {1, 3, 8, 16, 40}) {
        const Case c{m, 67, 1024, bits, 64, m % 2 ? DType::BF16 : DType::F16, DType::BF16, m == 3};
        EXPECT_LE(relative_error(c, rng), tolerance(c.x_dtype)) << c.name() << " path " << static_cast<int>(path);
      }
  }
}

// The GPU's dequantize rounds like the CPU's (multiply, add, one rounding): identical bytes.
TEST_F(CudaQmm, DequantizeEqualsTheCpuBitForBit) {
  std::mt19937 rng(11);
  for (int bits : kSupportedBits)
    for (int group_size : kSupportedGroupSizes)
      for (DType scale_dtype : {DType::BF16, DType::F16, DType::F32})
        for (DType out_dtype : {DType::BF16, DType::F16, DType::F32}) {
          const QuantizedWeight w = random_weight(37, 384, bits, group_size, scale_dtype, rng);
          const Tensor want = dequantize(w, out_dtype);
          const DeviceQuantizedWeight dw = DeviceQuantizedWeight::upload(w);
          DeviceMemory out(want.nbytes());
          ASSERT_EQ(cudaMemset(out.ptr, 0xFF, want.nbytes()), cudaSuccess);
          affine_dequantize(dw.weight, dw.scales, dw.biases, out.ptr, dw.rows, dw.cols, group_size, bits,
                            scale_dtype, out_dtype);
          std::vector<unsigned char> got(want.nbytes());
          ASSERT_EQ(cudaMemcpy(got.data(), out.ptr, got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
          EXPECT_EQ(std::memcmp(got.data(), want.bytes(), got.size()), 0)
              << "bits=" << bits << " group=" << group_size << " scales=" << dtype_name(scale_dtype)
              << " out=" << dtype_name(out_dtype);
        }
}

TEST_F(CudaQmm, HostTensorEntryMatchesTheReference) {
  std::mt19937 rng(9);
  const QuantizedWeight w = random_weight(64, 512, 4, 64, DType::BF16, rng);
  const Tensor x = random_tensor({2, 3, 512}, DType::BF16, rng);
  const Tensor y = affine_qmm_t(x, w);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 64}));
  ASSERT_EQ(y.dtype(), DType::BF16);
  const Tensor ref = reference_affine_qmm_t(x, w);
  double err = 0, norm = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double d = float_at(y, i) - ref.data<float>()[i];
    err += d * d;
    norm += double{ref.data<float>()[i]} * ref.data<float>()[i];
  }
  EXPECT_LE(std::sqrt(err / norm), 1e-2);
}

TEST_F(CudaQmm, RejectsBadArgumentsWithMessagesNamingTheProblem) {
  std::mt19937 rng(10);
  const QuantizedWeight w = random_weight(8, 64, 4, 32, DType::BF16, rng);
  const DeviceQuantizedWeight dw = DeviceQuantizedWeight::upload(w);
  DeviceMemory x(64 * 2 * 2 + 16), y(8 * 2 * 2 + 16);
  auto message_of = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of([&] { affine_qmm_t(x.ptr, 1, DType::F32, dw, nullptr, DType::F32, y.ptr); }).find("F32"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              affine_qmm_t(x.ptr, dw.weight, dw.scales, dw.biases, nullptr, y.ptr, 1, 8, 64, 32, 7, DType::BF16,
                           DType::BF16);
            }).find("bits"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              affine_qmm_t(static_cast<char*>(x.ptr) + 2, 1, DType::BF16, dw, nullptr, DType::F32, y.ptr);
            }).find("aligned"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              affine_qmm_t(x.ptr, dw.weight, dw.scales, dw.biases, nullptr, y.ptr, 1, 8, 48, 32, 4, DType::BF16,
                           DType::BF16);
            }).find("K=48"),
            std::string::npos);
}

}  // namespace
}  // namespace afq::cuda
