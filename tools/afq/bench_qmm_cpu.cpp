// `afq bench qmm --device cpu`: affine_qmm_t on the CPU beside two peers measured in the same
// run: the machine's read bandwidth (the ceiling for decode) and matmul_t on the float32
// dequantized weight. Weights rotate among enough copies that the last-level cache holds none
// of them between calls, so the figures are those of weights streamed from memory.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "afq/cpu.h"
#include "afq/error.h"
#include "afq/half.h"
#include "afq/quant.h"
#include "bench_qmm.h"

namespace afq::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Bytes of the last-level cache: sysconf, else sysfs, else 32 MiB.
int64_t last_level_cache_bytes() {
  long bytes = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (bytes > 0) return bytes;
  for (int index = 3; index >= 2; --index) {
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    std::string size;
    if (f >> size && !size.empty()) {
      const int64_t scale = size.back() == 'K' ? 1024 : size.back() == 'M' ? 1024 * 1024 : 1;
      return std::stoll(size) * scale;
    }
  }
  return int64_t{32} << 20;
}

// Enough copies of `bytes` that together they are 4 times the last-level cache.
int copies_for(int64_t bytes, int64_t llc) {
  return static_cast<int>(std::clamp<int64_t>((4 * llc + bytes - 1) / bytes, 1, 64));
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Median seconds per call of fn(i), i counting calls (so that callers rotate buffers).
double median_seconds(int iterations, const std::function<void(int)>& fn) {
  fn(0);  // warm-up: scratch buffers, page faults, thread wake-up
  int calls = 1;
  if (iterations <= 0) {
    const auto start = Clock::now();
    fn(calls++);
    iterations = static_cast<int>(std::clamp(1.0 / std::max(seconds_since(start), 1e-6), 5.0, 2000.0));
  }
  std::vector<double> times;
  for (int i = 0; i < iterations; ++i) {
    const auto start = Clock::now();
    fn(calls++);
    times.push_back(seconds_since(start));
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

// Read bandwidth in bytes/s: every thread sums its share of a buffer 8 times the last-level
// cache (at least 512 MiB); the best of several passes.
double measure_read_bandwidth(int64_t llc) {
  const int64_t words = std::max<int64_t>(8 * llc, int64_t{512} << 20) / 8;
  std::vector<uint64_t> buffer(static_cast<size_t>(words));
  for (int64_t i = 0; i < words; ++i) buffer[i] = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  std::vector<uint64_t> sums(static_cast<size_t>(cpu::num_threads()) * 8);
  double best = 0;
  for (int pass = 0; pass < 6; ++pass) {
    const auto start = Clock::now();
    cpu::parallel_for(cpu::num_threads(), [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t begin = words * t / cpu::num_threads(), end = words * (t + 1) / cpu::num_threads();
        uint64_t acc[8] = {};
        int64_t i = begin;
        for (; i + 8 <= end; i += 8)
          for (int j = 0; j < 8; ++j) acc[j] += buffer[i + j];
        for (; i < end; ++i) acc[0] += buffer[i];
        std::copy(acc, acc + 8, sums.begin() + t * 8);
      }
    });
    best = std::max(best, static_cast<double>(words * 8) / seconds_since(start));
  }
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  if (total == 42) fmt::print("");  // keeps the sums alive
  return best;
}

QuantizedWeight random_weight(int64_t n, int64_t k, int bits, int group_size, std::mt19937& rng) {
  QuantizedWeight w;
  w.bits = bits;
  w.group_size = group_size;
  w.weight = Tensor::zeros(DType::U32, {n, k * bits / 32});
  w.scales = Tensor::zeros(DType::BF16, {n, k / group_size});
  w.biases = Tensor::zeros(DType::BF16, {n, k / group_size});
  // Every bit pattern is a valid packing.
  uint32_t* words = w.weight.mutable_data<uint32_t>();
  for (int64_t i = 0; i < w.weight.numel(); ++i) words[i] = static_cast<uint32_t>(rng());
  std::uniform_real_distribution<float> scale(-0.02f, 0.02f), bias(-0.1f, 0.1f);
  for (int64_t i = 0; i < w.scales.numel(); ++i) {
    w.scales.mutable_data<uint16_t>()[i] = f32_to_bf16(scale(rng));
    w.biases.mutable_data<uint16_t>()[i] = f32_to_bf16(bias(rng));
  }
  return w;
}

}  // namespace

double measure_cpu_read_bandwidth() { return measure_read_bandwidth(last_level_cache_bytes()); }

void run_cpu_qmm_bench(const QmmBenchOptions& o) {
  check_bits(o.bits);
  check_group_size(o.group_size);
  for (size_t i = 0; i < o.n.size(); ++i)
    if (o.n[i] < 1 || o.k[i] < 1 || o.k[i] % o.group_size != 0)
      throw Error("[bench qmm] shape N=" + std::to_string(o.n[i]) + " K=" + std::to_string(o.k[i]) +
                  " is not allowed: N must be positive and K a positive multiple of the group size " +
                  std::to_string(o.group_size));
  for (int64_t m : o.m)
    if (m < 1) throw Error("[bench qmm] --m " + std::to_string(m) + " is not allowed; rows of x must be positive");
  if (o.threads > 0) cpu::set_num_threads(o.threads);

  const int64_t llc = last_level_cache_bytes();
  const double read_bw = measure_read_bandwidth(llc);
  const std::string simd = cpu::simd_target_name();
  if (!o.json) {
    fmt::print("afq bench qmm (cpu): {} threads, SIMD {}, last-level cache {} MiB, read bandwidth {:.1f} GB/s\n",
               cpu::num_threads(), simd, llc >> 20, read_bw / 1e9);
    fmt::print("bits {} group {}; weights rotate among copies worth 4x the cache; times are medians\n\n", o.bits,
               o.group_size);
    fmt::print("{:>5} {:>6} {:>6} | {:>10} {:>8} {:>8} {:>7} | {:>10} {:>8} {:>8} | {:>7}\n", "M", "N", "K",
               "qmm us", "GB/s", "GFLOP/s", "%readBW", "f32 us", "GB/s", "GFLOP/s", "speedup");
  }

  std::mt19937 rng(2024);
  for (size_t shape = 0; shape < o.n.size(); ++shape) {
    const int64_t n = o.n[shape], k = o.k[shape];
    const int64_t q_bytes = n * k * o.bits / 8 + 2 * n * (k / o.group_size) * 2;  // words + bf16 scales, biases
    const int64_t f32_bytes = n * k * 4;
    std::vector<QuantizedWeight> q(static_cast<size_t>(copies_for(q_bytes, llc)));
    for (auto& w : q) w = random_weight(n, k, o.bits, o.group_size, rng);
    // The float32 peer: the dequantized weight of the first copy, copied to rotate likewise.
    std::vector<Tensor> f32(static_cast<size_t>(copies_for(f32_bytes, llc)));
    f32[0] = dequantize(q[0], DType::F32);
    for (size_t i = 1; i < f32.size(); ++i) f32[i] = f32[0].clone();

    for (int64_t m : o.m) {
      std::vector<float> x(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n));
      std::normal_distribution<float> normal;
      for (float& v : x) v = normal(rng);
      const double q_s = median_seconds(o.iterations, [&](int i) {
        cpu::affine_qmm_t(x.data(), m, q[i % q.size()], nullptr, y.data());
      });
      const double f_s = median_seconds(o.iterations, [&](int i) {
        cpu::matmul_t(x.data(), m, f32[i % f32.size()], nullptr, y.data());
      });
      const double flops = 2.0 * m * n * k;
      const double q_gbps = q_bytes / q_s / 1e9, f_gbps = f32_bytes / f_s / 1e9;
      if (o.json) {
        fmt::print(
            "{{\"device\": \"cpu\", \"simd\": \"{}\", \"threads\": {}, \"m\": {}, \"n\": {}, \"k\": {}, \"bits\": {}, "
            "\"group_size\": {}, \"weight_bytes\": {}, \"time_us\": {:.2f}, \"gbps\": {:.3f}, \"gflops\": {:.3f}, "
            "\"read_bandwidth\": {{\"gbps\": {:.3f}, \"ratio\": {:.4f}}}, "
            "\"f32\": {{\"weight_bytes\": {}, \"time_us\": {:.2f}, \"gbps\": {:.3f}, \"gflops\": {:.3f}, "
            "\"speedup\": {:.4f}}}}}\n",
            simd, cpu::num_threads(), m, n, k, o.bits, o.group_size, q_bytes, q_s * 1e6, q_gbps, flops / q_s / 1e9,
            read_bw / 1e9, q_gbps * 1e9 / read_bw, f32_bytes, f_s * 1e6, f_gbps, flops / f_s / 1e9, f_s / q_s);
      } else {
        fmt::print("{:>5} {:>6} {:>6} | {:>10.1f} {:>8.2f} {:>8.2f} {:>6.1f}% | {:>10.1f} {:>8.2f} {:>8.2f} | {:>6.2f}x\n",
                   m, n, k, q_s * 1e6, q_gbps, flops / q_s / 1e9, 100 * q_gbps * 1e9 / read_bw, f_s * 1e6, f_gbps,
                   flops / f_s / 1e9, f_s / q_s);
      }
      std::fflush(stdout);
    }
  }
}

}  // namespace afq::cli
