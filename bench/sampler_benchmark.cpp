// Google Benchmark suite for choosing a token from a vocabulary's logits (afq::Sampler), beside
// its peer in the same binary: the greedy argmax over the same logits, the least any sampler must
// do (one pass). Vocabularies of Llama 3 (128,256) and Qwen3 (151,936); logits drawn like a
// model's (normal, sigma 3). The settings: temperature alone (llama.cpp's and mlx-lm's default
// style), top-p 0.95, top-k 40.
//   build/sampler_benchmark --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include "afq/sampling.h"

namespace {

std::vector<float> model_like_logits(int64_t vocab) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (auto& v : logits) v = normal(rng);
  return logits;
}

void Sample(benchmark::State& state) {
  const std::vector<float> base = model_like_logits(state.range(0));
  afq::SamplingOptions options;
  options.temperature = 0.8f;
  if (state.range(1) == 1) options.top_p = 0.95f;
  if (state.range(1) == 2) options.top_k = 40;
  afq::Sampler sampler(options);
  std::vector<float> logits;
  for (auto _ : state) {
    logits = base;  // the sampler may change them (penalties)
    benchmark::DoNotOptimize(sampler.sample(logits, {}));
  }
}
BENCHMARK(Sample)->ArgNames({"vocab", "temp|top_p|top_k"})->ArgsProduct({{128256, 151936}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);

void Argmax(benchmark::State& state) {
  const std::vector<float> base = model_like_logits(state.range(0));
  std::vector<float> logits;
  for (auto _ : state) {
    logits = base;
    benchmark::DoNotOptimize(std::max_element(logits.begin(), logits.end()));
  }
}
BENCHMARK(Argmax)->ArgName("vocab")->Arg(128256)->Arg(151936)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
