// `afq bench qmm`: options shared by the CPU and CUDA back ends of the benchmark.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace afq::cli {

struct QmmBenchOptions {
  std::vector<int64_t> m;  // every combination of m x (n, k) is one case
  std::vector<int64_t> n;  // n[i] pairs with k[i]
  std::vector<int64_t> k;
  int bits = 4;
  int group_size = 64;
  int threads = 0;       // 0: all cores (or AFQ_NUM_THREADS)
  int iterations = 0;    // 0: chosen so that each case runs about a second
  bool json = false;     // one JSON object per case
};

// Bytes/s that all threads of the pool read from a buffer 8x the last-level cache (best of 6).
double measure_cpu_read_bandwidth();

void run_cpu_qmm_bench(const QmmBenchOptions& options);   // bench_qmm_cpu.cpp
void run_cuda_qmm_bench(const QmmBenchOptions& options);  // bench_qmm_cuda.cpp; throws afq::Error without CUDA

}  // namespace afq::cli
