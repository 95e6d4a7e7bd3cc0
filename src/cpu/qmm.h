// Internal interface between the public entry points (qmm.cpp, matmul.cpp; no SIMD) and the
// Highway kernels, which are compiled once per instruction set and picked at run time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "afq/dtype.h"

namespace afq::cpu {

// Which kernel family runs affine_qmm_t. Float: the float GEMV for few rows of x, the blocked
// GEMM for many. Int8: the int8-activation GEMV for every m (one pass over W per 4 rows of x;
// HWY_SCALAR has none and runs the float GEMM). Auto (qmm_path) picks one of them.
enum class QmmPath { Auto, Float, Int8 };

// y[m, n] = x[m, k] @ dequant(W[n, k])^T (+ bias[n]).
struct QmmProblem {
  const float* x = nullptr;          // [m, k]
  int64_t m = 0, n = 0, k = 0;
  const uint32_t* packed = nullptr;  // [n, k * bits / 32], each row one little-endian bit stream
  const void* scales = nullptr;      // [n, k / group_size] of scale_dtype
  const void* biases = nullptr;      // [n, k / group_size] of scale_dtype
  DType scale_dtype = DType::F32;    // F32, F16 or BF16
  int bits = 0;
  int group_size = 0;
  const float* bias = nullptr;       // [n] or nullptr
  float* y = nullptr;                // [m, n]
  QmmPath path = QmmPath::Auto;
};

// The path forced on this thread by ForceQmmPath, else by AFQ_CPU_QMM=float|int8, else Auto.
QmmPath forced_qmm_path();

// Forces a path on the calling thread while alive (tests, benchmarks).
class ForceQmmPath {
 public:
  explicit ForceQmmPath(QmmPath path);
  ~ForceQmmPath();
  ForceQmmPath(const ForceQmmPath&) = delete;
  ForceQmmPath& operator=(const ForceQmmPath&) = delete;

 private:
  QmmPath previous_;
};

// Rows of x up to which Auto takes the int8 GEMV (measured: BENCHMARKS.md).
inline constexpr int64_t kInt8MaxRows = 8;

// The path affine_qmm_t takes for m rows of x: the forced one, else Int8 for m <= kInt8MaxRows
// where the running CPU's target has fast byte dot products (int8_preferred), else Float.
QmmPath qmm_path(int64_t m);
bool int8_preferred();  // matmul_kernels.cpp

// One per bits (qmm_b<bits>.cpp): decode GEMV for few rows of x, blocked GEMM for many.
void qmm_bits2(const QmmProblem& p);
void qmm_bits3(const QmmProblem& p);
void qmm_bits4(const QmmProblem& p);
void qmm_bits5(const QmmProblem& p);
void qmm_bits6(const QmmProblem& p);
void qmm_bits8(const QmmProblem& p);

// y[m, n] = x[m, k] @ w[n, k]^T (+ bias[n]) with float weights.
struct MatmulProblem {
  const float* x = nullptr;  // [m, k]
  int64_t m = 0, n = 0, k = 0;
  const void* w = nullptr;   // [n, k] of w_dtype
  DType w_dtype = DType::F32;  // F32, F16 or BF16
  const float* bias = nullptr;
  float* y = nullptr;
};
void matmul_float(const MatmulProblem& p);  // matmul_kernels.cpp

// Rows of x from which the blocked GEMM beats the GEMV (which streams W once per call but
// unpacks each weight once per 4 rows of x).
inline constexpr int64_t kGemmMinRows = 16;

std::string simd_target();  // matmul_kernels.cpp

}  // namespace afq::cpu

namespace afq::cpu {

// The SIMD targets compiled in and supported by this CPU (Highway's bits), best first; tests
// run every kernel on each via hwy::SetSupportedTargetsForTest.
std::vector<int64_t> compiled_simd_targets();  // matmul_kernels.cpp

}  // namespace afq::cpu
