#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "afq/cpu.h"
#include "afq/quant.h"

namespace afq::cpu {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 5}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    for (int64_t n : {0, 1, 3, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      parallel_for(n, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) hits[i]++;
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n;
    }
  }
  set_num_threads(0);
}

TEST(ThreadPool, RunsANestedCallSerially) {
  set_num_threads(3);
  std::atomic<int64_t> total = 0;
  parallel_for(6, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      parallel_for(10, [&](int64_t b, int64_t e) { total += e - b; });
  });
  EXPECT_EQ(total.load(), 60);
  set_num_threads(0);
}

TEST(ThreadPool, PassesAnExceptionToTheCaller) {
  set_num_threads(2);
  EXPECT_THROW(parallel_for(4, [](int64_t begin, int64_t) {
                 if (begin > 0) throw std::runtime_error("part failed");
               }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int> calls = 0;
  parallel_for(4, [&](int64_t, int64_t) { calls++; });
  EXPECT_EQ(calls.load(), 2);
  set_num_threads(0);
}

// A host's parallel_for (here: one that cuts three ranges and counts its calls) takes over the
// kernels' threading, and they still compute the same y; clearing it brings afq's pool back.
TEST(ThreadPool, RunsOnAHostParallelForWhenOneIsSet) {
  std::atomic<int> host_calls = 0;
  set_host_parallel_for({[&](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
                           host_calls++;
                           for (int64_t part = 0; part < 3; ++part) fn(n * part / 3, n * (part + 1) / 3);
                         },
                         [] { return 3; }});
  EXPECT_EQ(num_threads(), 3);
  QuantizedWeight w = quantize(Tensor::zeros(DType::F32, {37, 64}), 4, 64, QuantMethod::Mlx);
  Tensor x = Tensor::zeros(DType::F32, {2, 64});
  for (int64_t i = 0; i < 64; ++i) x.mutable_data<float>()[i] = 0.25f * static_cast<float>(i % 7);
  for (int64_t i = 0; i < w.scales.numel(); ++i) w.biases.mutable_data<float>()[i] = 0.5f;  // every w = 0.5
  const Tensor y = affine_qmm_t(x, w);
  EXPECT_GT(host_calls.load(), 0);
  float row_sum = 0.f;
  for (int64_t i = 0; i < 64; ++i) row_sum += x.data<float>()[i];
  for (int64_t j = 0; j < 37; ++j) {
    EXPECT_FLOAT_EQ(y.data<float>()[j], 0.5f * row_sum) << j;
    EXPECT_FLOAT_EQ(y.data<float>()[37 + j], 0.f) << j;
  }
  set_host_parallel_for({});
  const int before = host_calls.load();
  parallel_for(10, [](int64_t, int64_t) {});
  EXPECT_EQ(host_calls.load(), before);
}

}  // namespace
}  // namespace afq::cpu
