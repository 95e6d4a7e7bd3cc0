// Google Benchmark suite for the CPU kernels: affine_qmm_t on the shapes beside its two
// peers in the same binary, a read of the same number of bytes (memory bandwidth) and the
// float32 matmul of the dequantized weight. Weights rotate among copies worth 4x a 32 MiB cache,
// so every call streams its weight from memory. Counters: weight GB/s and GFLOP/s.
//   build/qmm_cpu_benchmark --benchmark_filter='Qmm/.*/1/' --benchmark_min_time=0.5s
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "afq/cpu.h"
#include "afq/quant.h"

namespace {

constexpr int64_t kCacheBytes = int64_t{32} << 20;

afq::QuantizedWeight random_weight(int64_t n, int64_t k, int bits, std::mt19937& rng) {
  afq::Tensor w = afq::Tensor::zeros(afq::DType::F32, {n, k});
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::vector<float> table(4096);
  for (auto& v : table) v = normal(rng);
  std::uniform_int_distribution<size_t> offset(0, table.size() - 1);
  float* data = w.mutable_data<float>();
  for (int64_t r = 0; r < n; ++r) {
    const size_t o = offset(rng);
    for (int64_t c = 0; c < k; ++c) data[r * k + c] = table[(o + c) % table.size()];
  }
  return afq::quantize(afq::to_dtype(w, afq::DType::BF16), bits, 64);
}

int copies_for(int64_t bytes) { return static_cast<int>(std::clamp<int64_t>(4 * kCacheBytes / bytes + 1, 1, 16)); }

void set_counters(benchmark::State& state, int64_t m, int64_t n, int64_t k, int64_t weight_bytes) {
  const double calls = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(calls * weight_bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(calls * 2.0 * m * n * k / 1e9, benchmark::Counter::kIsRate);
}

// Args: M, N, K, bits.
void Qmm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const int bits = static_cast<int>(state.range(3));
  std::mt19937 rng(1);
  const afq::QuantizedWeight first = random_weight(n, k, bits, rng);
  const int64_t bytes = first.weight.nbytes() + first.scales.nbytes() + first.biases.nbytes();
  std::vector<afq::QuantizedWeight> weights(copies_for(bytes), first);
  for (auto& w : weights) w.weight = w.weight.clone(), w.scales = w.scales.clone(), w.biases = w.biases.clone();
  std::vector<float> x(static_cast<size_t>(m * k), 0.5f), y(static_cast<size_t>(m * n));
  size_t call = 0;
  for (auto _ : state) {
    afq::cpu::affine_qmm_t(x.data(), m, weights[call++ % weights.size()], nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, m, n, k, bytes);
}

// The float32 peer: the same product on the dequantized weight (4 bytes a weight).
void MatmulF32(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  std::mt19937 rng(2);
  const afq::Tensor w = afq::dequantize(random_weight(n, k, 8, rng), afq::DType::F32);
  std::vector<afq::Tensor> weights(copies_for(w.nbytes()), w);
  for (auto& c : weights) c = c.clone();
  std::vector<float> x(static_cast<size_t>(m * k), 0.5f), y(static_cast<size_t>(m * n));
  size_t call = 0;
  for (auto _ : state) {
    afq::cpu::matmul_t(x.data(), m, weights[call++ % weights.size()], nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, m, n, k, w.nbytes());
}

// The bandwidth peer: sums 4x the cache in parallel chunks (reads only).
void ReadBandwidth(benchmark::State& state) {
  std::vector<uint64_t> buffer(static_cast<size_t>(4 * kCacheBytes / 8), 1);
  for (auto _ : state) {
    std::vector<uint64_t> sums(static_cast<size_t>(afq::cpu::num_threads()) + 1, 0);
    afq::cpu::parallel_for(static_cast<int64_t>(buffer.size()), [&](int64_t begin, int64_t end) {
      uint64_t s = 0;
      for (int64_t i = begin; i < end; ++i) s += buffer[static_cast<size_t>(i)];
      sums[static_cast<size_t>(begin * afq::cpu::num_threads() / static_cast<int64_t>(buffer.size()))] += s;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * buffer.size() * 8 / 1e9,
                                              benchmark::Counter::kIsRate);
}

void Shapes(benchmark::internal::Benchmark* b, bool with_bits) {
  for (int64_t m : {1, 8, 128, 512})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{4096, 4096}, {14336, 4096}, {4096, 14336}}) {
      if (!with_bits) {
        b->Args({m, n, k});
        continue;
      }
      for (int64_t bits : {2, 3, 4, 8}) b->Args({m, n, k, bits});
    }
  b->ArgNames(with_bits ? std::vector<std::string>{"m", "n", "k", "bits"} : std::vector<std::string>{"m", "n", "k"});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(ReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Qmm)->Apply([](benchmark::internal::Benchmark* b) { Shapes(b, true); });
BENCHMARK(MatmulF32)->Apply([](benchmark::internal::Benchmark* b) { Shapes(b, false); });

}  // namespace

BENCHMARK_MAIN();
