// The persistent pool behind afq::cpu::parallel_for: workers wait for the next job, so a call
// costs a wake-up, not a thread creation. They spin briefly before sleeping on a condition
// variable, because a decode step issues matmuls microseconds apart and a futex wake-up costs
// about as much as a small matmul.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "afq/cpu.h"
#include "afq/error.h"

namespace afq::cpu {
namespace {

int default_thread_count() {
  if (const char* env = std::getenv("AFQ_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > 1024)
      throw Error("AFQ_NUM_THREADS=" + std::string(env) + " is not a thread count; expected 1 to 1024");
    return static_cast<int>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

thread_local bool inside_pool_job = false;

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { work(i); });
  }

  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int threads() const { return threads_; }

  void run(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    const int parts = static_cast<int>(std::min<int64_t>(threads_, n));
    if (parts <= 1 || inside_pool_job) {
      if (n > 0) fn(0, n);
      return;
    }
    std::lock_guard one_job_at_a_time(run_mutex_);
    {
      std::lock_guard lock(mutex_);
      job_ = &fn;
      job_size_ = n;
      job_parts_ = parts;
      pending_.store(parts - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_part(0);
    for (int i = 0; i < kSpins && pending_.load(std::memory_order_acquire) != 0; ++i) pause();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  // Part i of the current job: ranges differ in size by at most one.
  void run_part(int part) {
    const int64_t begin = job_size_ * part / job_parts_;
    const int64_t end = job_size_ * (part + 1) / job_parts_;
    inside_pool_job = true;
    try {
      (*job_)(begin, end);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    inside_pool_job = false;
  }

  // A spin step that gives the core away when another thread wants it (on a loaded or
  // oversubscribed machine, pure spinning would keep the very thread we wait for off the core).
  static void pause() { std::this_thread::yield(); }

  void work(int index) {
    uint64_t seen = 0;
    for (;;) {
      for (int i = 0; i < kSpins && generation_.load(std::memory_order_acquire) == seen; ++i) pause();
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        seen = generation_.load(std::memory_order_acquire);
        if (stopping_) return;
        if (index >= job_parts_) continue;
      }
      run_part(index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(mutex_);
        done_.notify_one();
      }
    }
  }

  static constexpr int kSpins = 1000;  // yields before sleeping: about a millisecond when idle

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time when several threads call parallel_for
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_ = 0;
  bool stopping_ = false;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_size_ = 0;
  int job_parts_ = 0;
  std::atomic<int> pending_ = 0;
  std::exception_ptr error_;  // the first exception of a part, rethrown by run()
};

std::mutex pool_mutex;
std::shared_ptr<ThreadPool> pool;

std::shared_ptr<ThreadPool> get_pool() {
  std::lock_guard lock(pool_mutex);
  if (!pool) pool = std::make_shared<ThreadPool>(default_thread_count());
  return pool;
}

std::mutex host_mutex;
std::shared_ptr<const HostParallelFor> host;  // set by set_host_parallel_for, else null

std::shared_ptr<const HostParallelFor> get_host() {
  std::lock_guard lock(host_mutex);
  return host;
}

}  // namespace

void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn) {
  if (const auto h = get_host()) return h->run(n, fn);
  get_pool()->run(n, fn);
}

int num_threads() {
  if (const auto h = get_host()) return std::max(1, h->threads());
  return get_pool()->threads();
}

void set_host_parallel_for(HostParallelFor h) {
  auto fresh = h.run && h.threads ? std::make_shared<const HostParallelFor>(std::move(h)) : nullptr;
  std::lock_guard lock(host_mutex);
  host = std::move(fresh);
}

void set_num_threads(int threads) {
  auto fresh = std::make_shared<ThreadPool>(threads > 0 ? threads : default_thread_count());
  std::lock_guard lock(pool_mutex);
  pool = std::move(fresh);
}

}  // namespace afq::cpu
