// affine_qmm_t on the GPU: checks the arguments, then picks the kernel (MLX style): the
// register-dequant tensor-core GEMV up to 64 rows of x, the fused tensor-core GEMM in between,
// dequantize + cuBLAS for many rows; the CUDA-core GEMV in passes of 8 rows takes every shape
// the others do not.
#include <cuda_runtime.h>

#include <cstdlib>
#include <string>

#include "afq/cuda.h"
#include "afq/error.h"
#include "src/cuda/qmm.h"

namespace afq::cuda {
namespace {

// The dispatcher's choices, measured on an H100 (BENCHMARKS.md, "Choosing the path"): the FP32
// GEMV wins at one row of x for 4 and 8 bits (its FMAs grow with m, the tensor-core GEMV's do
// not; at 2 and 3 bits its unpacking costs more than the tensor-core GEMV's); the tensor-core
// GEMV up to 8 rows (one n8 tile of x: 16 rows cost it two passes over W); the fused GEMM from
// there until dequantizing W and calling cuBLAS wins.
bool qmv_is_best(const QmmProblem& p) { return p.m == 1 && (p.bits == 4 || p.bits == 8); }
// On the H200 the int8-activation GEMV beats both at one and two rows (4 and 8 bits); with four
// it spilled registers and lost to the tensor-core GEMV on most shapes (BENCHMARKS.md).
bool qmv_int8_is_best(const QmmProblem& p) { return p.m <= 2 && (p.bits == 4 || p.bits == 8); }
constexpr int64_t kQmvMmaBestMaxRows = 8;
constexpr int64_t kDequantGemmMinRows = 96;
// Rows of x the tensor-core GEMV can take at all (its per-block x tile).
constexpr int64_t kQmvMmaMaxRows = 64;

thread_local QmmPath path_forced_on_thread = QmmPath::Auto;

// A path forced on this thread (ForceQmmPath, for tests), else by AFQ_CUDA_QMM=qmv|int8|mma|fused|dequant
// for the process (benchmarks); either only where the path supports the problem.
QmmPath forced_path() {
  static const QmmPath from_env = [] {
    const char* env = std::getenv("AFQ_CUDA_QMM");
    const std::string v = env ? env : "";
    if (v == "qmv") return QmmPath::Qmv;
    if (v == "int8") return QmmPath::Int8;
    if (v == "mma") return QmmPath::Mma;
    if (v == "fused") return QmmPath::Fused;
    if (v == "dequant") return QmmPath::Dequant;
    return QmmPath::Auto;
  }();
  return path_forced_on_thread != QmmPath::Auto ? path_forced_on_thread : from_env;
}

bool is_half(DType d) { return d == DType::BF16 || d == DType::F16; }
bool is_scale_dtype(DType d) { return is_half(d) || d == DType::F32; }
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void validate_problem(const QmmProblem& p) {
  check_bits(p.bits);
  check_group_size(p.group_size);
  const std::string shape = describe(p);
  if (!is_half(p.x_dtype))
    throw Error("[affine_qmm_t] x has dtype " + std::string(dtype_name(p.x_dtype)) +
                "; the CUDA kernels take BF16 or F16 (" + shape + ")");
  if (!is_scale_dtype(p.scale_dtype))
    throw Error("[affine_qmm_t] scales have dtype " + std::string(dtype_name(p.scale_dtype)) +
                "; allowed: BF16, F16, F32 (" + shape + ")");
  if (p.bias && !is_scale_dtype(p.bias_dtype))
    throw Error("[affine_qmm_t] bias has dtype " + std::string(dtype_name(p.bias_dtype)) +
                "; allowed: BF16, F16, F32 (" + shape + ")");
  if (p.m < 0 || p.n < 1 || p.k < 1 || p.k % p.group_size != 0)
    throw Error("[affine_qmm_t] shape not allowed: M must be >= 0, N >= 1 and K a positive multiple of the group size (" +
                shape + ")");
  if (!aligned16(p.x) || !aligned16(p.weight) || !aligned16(p.scales) || !aligned16(p.biases) || !aligned16(p.y))
    throw Error("[affine_qmm_t] x, weight, scales, biases and y must be device pointers aligned to 16 bytes (" +
                shape + ")");
}

}  // namespace

ForceQmmPath::ForceQmmPath(QmmPath path) : previous_(path_forced_on_thread) { path_forced_on_thread = path; }
ForceQmmPath::~ForceQmmPath() { path_forced_on_thread = previous_; }

std::string describe(const QmmProblem& p) {
  return "M=" + std::to_string(p.m) + " N=" + std::to_string(p.n) + " K=" + std::to_string(p.k) +
         " bits=" + std::to_string(p.bits) + " group_size=" + std::to_string(p.group_size) +
         " x=" + std::string(dtype_name(p.x_dtype)) + " scales=" + std::string(dtype_name(p.scale_dtype)) +
         " bias=" + (p.bias ? std::string(dtype_name(p.bias_dtype)) : std::string("none"));
}

bool supports_qmv(const QmmProblem& p) { return p.k % 32 == 0; }  // packs of 32 q's, one group each

void qmv(const QmmProblem& p) {
  switch (p.bits) {
    case 2: return qmv_bits2(p);
    case 3: return qmv_bits3(p);
    case 4: return qmv_bits4(p);
    case 5: return qmv_bits5(p);
    case 6: return qmv_bits6(p);
    case 8: return qmv_bits8(p);
  }
}

bool supports_qmv_int8(const QmmProblem& p, const DeviceInfo& device) {
  if (device.compute_capability < 80) return false;
  if (p.bits == 4) return qmv_int8_fits_bits4(p, device);
  if (p.bits == 8) return qmv_int8_fits_bits8(p, device);
  return false;
}

void qmv_int8(const QmmProblem& p) { return p.bits == 4 ? qmv_int8_bits4(p) : qmv_int8_bits8(p); }

bool supports_qmv_mma(const QmmProblem& p, const DeviceInfo& device) {
  // A lane's chunk of a row: 64 q's at 2, 5 and 6 bits, 128 at 3, 32 at 4 and 8.
  const int chunk = p.bits == 3 ? 128 : (p.bits == 2 || p.bits == 5 || p.bits == 6) ? 64 : 32;
  return device.compute_capability >= 80 && p.m <= kQmvMmaMaxRows && p.k % chunk == 0;
}

void qmv_mma(const QmmProblem& p) {
  switch (p.bits) {
    case 2: return qmv_mma_bits2(p);
    case 3: return qmv_mma_bits3(p);
    case 4: return qmv_mma_bits4(p);
    case 5: return qmv_mma_bits5(p);
    case 6: return qmv_mma_bits6(p);
    case 8: return qmv_mma_bits8(p);
  }
}

bool supports_qmm_sm80(const QmmProblem& p, const DeviceInfo& device) {
  return device.compute_capability >= 80 && p.k % 64 == 0;  // whole 64-column steps
}

void qmm_sm80(const QmmProblem& p) {
  switch (p.bits) {
    case 2: return qmm_sm80_bits2(p);
    case 3: return qmm_sm80_bits3(p);
    case 4: return qmm_sm80_bits4(p);
    case 5: return qmm_sm80_bits5(p);
    case 6: return qmm_sm80_bits6(p);
    case 8: return qmm_sm80_bits8(p);
  }
}

void affine_qmm_t(const void* x, const uint32_t* weight, const void* scales, const void* biases, const void* bias,
                  void* y, int64_t m, int64_t n, int64_t k, int group_size, int bits, DType x_dtype,
                  DType scale_dtype, DType bias_dtype, CUstream_st* stream) {
  const QmmProblem p{x, weight, scales, biases, bias, y, m, n, k, group_size, bits, x_dtype, scale_dtype,
                     bias_dtype, stream};
  validate_problem(p);
  if (m == 0) return;
  const DeviceInfo& device = current_device_info();
  switch (forced_path()) {
    case QmmPath::Qmv:
      if (supports_qmv(p)) return qmv(p);
      break;
    case QmmPath::Int8:
      if (supports_qmv_int8(p, device)) return qmv_int8(p);
      break;
    case QmmPath::Mma:
      if (supports_qmv_mma(p, device)) return qmv_mma(p);
      break;
    case QmmPath::Fused:
      if (supports_qmm_sm80(p, device)) return qmm_sm80(p);
      break;
    case QmmPath::Dequant:
      return qmm_dequant_gemm(p);
    case QmmPath::Auto:
      break;
  }
  if (m >= kDequantGemmMinRows) return qmm_dequant_gemm(p);
  if (qmv_int8_is_best(p) && supports_qmv_int8(p, device)) return qmv_int8(p);
  if (qmv_is_best(p) && supports_qmv(p)) return qmv(p);
  if (m <= kQmvMmaBestMaxRows && supports_qmv_mma(p, device)) return qmv_mma(p);
  if (supports_qmm_sm80(p, device)) return qmm_sm80(p);
  if (supports_qmv_mma(p, device)) return qmv_mma(p);
  if (supports_qmv(p)) return qmv(p);
  throw Error("[affine_qmm_t] no CUDA kernel supports " + describe(p));
}

void affine_qmm_t(const void* x, int64_t m, DType x_dtype, const DeviceQuantizedWeight& w, const void* bias,
                  DType bias_dtype, void* y, CUstream_st* stream) {
  affine_qmm_t(x, w.weight, w.scales, w.biases, bias, y, m, w.rows, w.cols, w.group_size, w.bits, x_dtype,
               w.scale_dtype, bias_dtype, stream);
}

Tensor affine_qmm_t(const Tensor& x, const QuantizedWeight& w, const Tensor* bias) {
  validate(w, "affine_qmm_t");
  const int64_t k = w.cols(), n = w.rows();
  if (x.ndim() < 1 || x.dim(-1) != k)
    throw Error("[affine_qmm_t] x " + shape_to_string(x.shape()) + " does not end in K = " + std::to_string(k));
  if (bias && bias->numel() != n)
    throw Error("[affine_qmm_t] bias has " + std::to_string(bias->numel()) + " values, expected N = " +
                std::to_string(n));
  const int64_t m = x.numel() / k;
  Shape y_shape = x.shape();
  y_shape.back() = n;
  Tensor y = Tensor::zeros(x.dtype(), y_shape);
  const DeviceQuantizedWeight dw = DeviceQuantizedWeight::upload(w);
  const size_t x_bytes = (x.nbytes() + 15) / 16 * 16, y_bytes = (y.nbytes() + 15) / 16 * 16;
  const size_t bias_bytes = bias ? bias->nbytes() : 0;
  void* base = nullptr;
  check_cuda(cudaMalloc(&base, x_bytes + y_bytes + bias_bytes + 16), "cudaMalloc of x and y");
  std::shared_ptr<void> memory(base, [](void* ptr) { cudaFree(ptr); });
  auto* bytes = static_cast<unsigned char*>(base);
  void* dx = bytes;
  void* dy = bytes + x_bytes;
  void* dbias = bias ? bytes + x_bytes + y_bytes : nullptr;
  check_cuda(cudaMemcpy(dx, x.bytes(), x.nbytes(), cudaMemcpyHostToDevice), "upload of x");
  if (bias) check_cuda(cudaMemcpy(dbias, bias->bytes(), bias_bytes, cudaMemcpyHostToDevice), "upload of bias");
  affine_qmm_t(dx, m, x.dtype(), dw, dbias, bias ? bias->dtype() : DType::F32, dy, nullptr);
  check_cuda(cudaMemcpy(y.mutable_bytes(), dy, y.nbytes(), cudaMemcpyDeviceToHost), "download of y");
  return y;
}

}  // namespace afq::cuda
