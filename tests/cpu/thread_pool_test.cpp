#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "afq/cpu.h"

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

}  // namespace
}  // namespace afq::cpu
