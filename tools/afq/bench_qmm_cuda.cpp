// `afq bench qmm --device cuda`: affine_qmm_t on the GPU beside two peers measured in the same
// run: a large device-to-device copy (the bandwidth ceiling for decode, bytes read + written)
// and cuBLAS's bf16 GEMM (cublasGemmEx) on the same shape. Times come from CUDA events around
// batches of calls after a warm-up; the median batch is reported. Weights rotate among copies
// that together are 4x the L2 cache, so every call streams its weight from HBM.
#include "afq/error.h"
#include "bench_qmm.h"

#ifdef AFQ_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/core.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "afq/cuda.h"
#include "afq/half.h"
#include "afq/quant.h"
#endif

namespace afq::cli {

#ifndef AFQ_HAVE_CUDA

void run_cuda_qmm_bench(const QmmBenchOptions&) {
  throw Error("afq was built without CUDA (configure with nvcc present and -DAFQ_CUDA=ON for --device cuda)");
}

#else

namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string("[bench qmm] ") + what + ": " + cudaGetErrorString(status));
}
void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("[bench qmm] ") + what + ": cuBLAS status " + std::to_string(static_cast<int>(status)));
}

struct DeviceBuffer {
  explicit DeviceBuffer(size_t bytes) { check(cudaMalloc(&ptr, std::max<size_t>(bytes, 16)), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* ptr = nullptr;
};

// Random bf16 values (normal * scale) uploaded to a new buffer.
std::unique_ptr<DeviceBuffer> random_bf16(int64_t count, float scale, std::mt19937& rng) {
  std::vector<uint16_t> host(static_cast<size_t>(count));
  std::normal_distribution<float> normal(0.f, scale);
  // A table of 4096 draws reused at random offsets keeps large fills fast and the data non-zero.
  std::vector<uint16_t> table(4096);
  for (auto& v : table) v = f32_to_bf16(normal(rng));
  uint32_t state = static_cast<uint32_t>(rng());
  for (auto& v : host) {
    state = state * 1664525u + 1013904223u;
    v = table[state >> 20];
  }
  auto buffer = std::make_unique<DeviceBuffer>(host.size() * 2);
  check(cudaMemcpy(buffer->ptr, host.data(), host.size() * 2, cudaMemcpyHostToDevice), "upload");
  return buffer;
}

// Median seconds per call of fn(i) over batches of `calls` calls timed with events.
double median_seconds(int batches, int calls, const std::function<void(int)>& fn) {
  for (int i = 0; i < 3; ++i) fn(i);  // warm-up: module load, cuBLAS heuristics, clocks
  check(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> times;
  int call = 0;
  for (int b = 0; b < batches; ++b) {
    check(cudaEventRecord(start), "cudaEventRecord");
    for (int c = 0; c < calls; ++c) fn(call++);
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(ms * 1e-3 / calls);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

// Device-to-device copy of 1 GiB: bytes read + written per second.
double measure_copy_bandwidth() {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer a(bytes), b(bytes);
  check(cudaMemset(a.ptr, 1, bytes), "cudaMemset");
  const double s = median_seconds(10, 1, [&](int) {
    check(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpyAsync");
  });
  return 2.0 * bytes / s;
}

int copies_for(int64_t bytes, int64_t l2) {
  return static_cast<int>(std::clamp<int64_t>((4 * l2 + bytes - 1) / bytes, 2, 64));
}

QuantizedWeight random_weight(int64_t n, int64_t k, int bits, int group_size, std::mt19937& rng) {
  QuantizedWeight w;
  w.bits = bits;
  w.group_size = group_size;
  w.weight = Tensor::zeros(DType::U32, {n, k * bits / 32});
  w.scales = Tensor::zeros(DType::BF16, {n, k / group_size});
  w.biases = Tensor::zeros(DType::BF16, {n, k / group_size});
  uint32_t* words = w.weight.mutable_data<uint32_t>();  // every bit pattern is a valid packing
  for (int64_t i = 0; i < w.weight.numel(); ++i) words[i] = static_cast<uint32_t>(rng());
  std::uniform_real_distribution<float> scale(-0.02f, 0.02f), bias(-0.1f, 0.1f);
  for (int64_t i = 0; i < w.scales.numel(); ++i) {
    w.scales.mutable_data<uint16_t>()[i] = f32_to_bf16(scale(rng));
    w.biases.mutable_data<uint16_t>()[i] = f32_to_bf16(bias(rng));
  }
  return w;
}

}  // namespace

void run_cuda_qmm_bench(const QmmBenchOptions& o) {
  check_bits(o.bits);
  check_group_size(o.group_size);
  for (size_t i = 0; i < o.n.size(); ++i)
    if (o.n[i] < 1 || o.k[i] < 1 || o.k[i] % o.group_size != 0)
      throw Error("[bench qmm] shape N=" + std::to_string(o.n[i]) + " K=" + std::to_string(o.k[i]) +
                  " is not allowed: N must be positive and K a positive multiple of the group size " +
                  std::to_string(o.group_size));
  for (int64_t m : o.m)
    if (m < 1) throw Error("[bench qmm] --m " + std::to_string(m) + " is not allowed; rows of x must be positive");
  if (!cuda::cuda_available()) throw Error("[bench qmm] --device cuda: no CUDA device is available");

  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  const int64_t l2 = prop.l2CacheSize;
  const double copy_bw = measure_copy_bandwidth();
  cublasHandle_t cublas;
  check(cublasCreate(&cublas), "cublasCreate");
  std::unique_ptr<cublasContext, void (*)(cublasContext*)> cublas_guard(cublas, [](cublasContext* h) {
    cublasDestroy(h);
  });
  const int batches = o.iterations > 0 ? o.iterations : 31;
  if (!o.json) {
    fmt::print("afq bench qmm (cuda): {}, {} SMs, L2 {} MiB, device-to-device copy {:.0f} GB/s (read + write)\n",
               prop.name, prop.multiProcessorCount, l2 >> 20, copy_bw / 1e9);
    fmt::print("bits {} group {}, bf16 x/y/scales/biases; weights rotate among copies worth 4x L2; "
               "median of {} event-timed batches\n\n",
               o.bits, o.group_size, batches);
    fmt::print("{:>5} {:>6} {:>6} | {:>9} {:>7} {:>8} {:>6} | {:>9} {:>7} {:>8} | {:>7}\n", "M", "N", "K", "qmm us",
               "GB/s", "TFLOP/s", "%copy", "cuBLAS us", "GB/s", "TFLOP/s", "vs cuBLAS");
  }

  std::mt19937 rng(2024);
  for (size_t shape = 0; shape < o.n.size(); ++shape) {
    const int64_t n = o.n[shape], k = o.k[shape];
    const int64_t q_bytes = n * k * o.bits / 8 + 2 * n * (k / o.group_size) * 2;
    const QuantizedWeight host_w = random_weight(n, k, o.bits, o.group_size, rng);
    std::vector<cuda::DeviceQuantizedWeight> q;
    for (int i = 0; i < copies_for(q_bytes, l2); ++i) q.push_back(cuda::DeviceQuantizedWeight::upload(host_w));
    const int64_t w16_bytes = n * k * 2;
    std::vector<std::unique_ptr<DeviceBuffer>> w16;
    w16.push_back(random_bf16(n * k, 0.02f, rng));
    for (int i = 1; i < copies_for(w16_bytes, l2); ++i) {
      w16.push_back(std::make_unique<DeviceBuffer>(w16_bytes));
      check(cudaMemcpy(w16.back()->ptr, w16[0]->ptr, w16_bytes, cudaMemcpyDeviceToDevice), "copy");
    }
    for (int64_t m : o.m) {
      auto x = random_bf16(m * k, 1.f, rng);
      DeviceBuffer y(m * n * 2);
      // Batches of about 2 ms of work keep event overhead out of short kernels.
      const double flops = 2.0 * m * n * k;
      const int calls = static_cast<int>(std::clamp(2e-3 / std::max(q_bytes / 2.5e12, flops / 5e14), 1.0, 200.0));
      const double q_s = median_seconds(batches, calls, [&](int i) {
        cuda::affine_qmm_t(x->ptr, m, DType::BF16, q[i % q.size()], nullptr, DType::F32, y.ptr);
      });
      const float alpha = 1.f, beta = 0.f;
      const double c_s = median_seconds(batches, calls, [&](int i) {
        // Column-major view: y^T [n, m] = W [k, n]^T . x^T [k, m].
        check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                           static_cast<int>(k), &alpha, w16[i % w16.size()]->ptr, CUDA_R_16BF, static_cast<int>(k),
                           x->ptr, CUDA_R_16BF, static_cast<int>(k), &beta, y.ptr, CUDA_R_16BF, static_cast<int>(n),
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx");
      });
      const int64_t io_bytes = m * k * 2 + m * n * 2;
      const double q_gbps = (q_bytes + io_bytes) / q_s / 1e9, c_gbps = (w16_bytes + io_bytes) / c_s / 1e9;
      if (o.json) {
        fmt::print(
            "{{\"device\": \"cuda\", \"gpu\": \"{}\", \"m\": {}, \"n\": {}, \"k\": {}, \"bits\": {}, \"group_size\": {}, "
            "\"bytes\": {}, \"time_us\": {:.2f}, \"gbps\": {:.1f}, \"gflops\": {:.1f}, "
            "\"copy\": {{\"gbps\": {:.1f}, \"ratio\": {:.4f}}}, "
            "\"cublas_bf16\": {{\"bytes\": {}, \"time_us\": {:.2f}, \"gbps\": {:.1f}, \"gflops\": {:.1f}, "
            "\"ratio\": {:.4f}}}}}\n",
            prop.name, m, n, k, o.bits, o.group_size, q_bytes + io_bytes, q_s * 1e6, q_gbps, flops / q_s / 1e9,
            copy_bw / 1e9, q_gbps * 1e9 / copy_bw, w16_bytes + io_bytes, c_s * 1e6, c_gbps, flops / c_s / 1e9,
            c_s / q_s);
      } else {
        fmt::print("{:>5} {:>6} {:>6} | {:>9.1f} {:>7.0f} {:>8.1f} {:>5.1f}% | {:>9.1f} {:>7.0f} {:>8.1f} | {:>6.2f}x\n",
                   m, n, k, q_s * 1e6, q_gbps, flops / q_s / 1e12, 100 * q_gbps * 1e9 / copy_bw, c_s * 1e6, c_gbps,
                   flops / c_s / 1e12, c_s / q_s);
      }
      std::fflush(stdout);
    }
  }
}

#endif  // AFQ_HAVE_CUDA

}  // namespace afq::cli
