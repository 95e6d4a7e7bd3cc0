#include "src/cuda/stream_scratch.h"

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "src/cuda/qmm.h"

namespace afq::cuda {
namespace {

void keep_freed_memory_in_pool() {
  static std::mutex mutex;
  static std::vector<bool> done;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard lock(mutex);
  if (static_cast<int>(done.size()) <= device) done.resize(device + 1, false);
  if (done[device]) return;
  cudaMemPool_t pool = nullptr;
  check_cuda(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
  uint64_t threshold = UINT64_MAX;
  check_cuda(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
             "cudaMemPoolSetAttribute(release threshold)");
  done[device] = true;
}

}  // namespace

void* stream_scratch_alloc(size_t bytes, cudaStream_t stream, const char* what) {
  keep_freed_memory_in_pool();
  void* ptr = nullptr;
  const cudaError_t status = cudaMallocAsync(&ptr, bytes, stream);
  if (status != cudaSuccess) check_cuda(status, (std::string("cudaMallocAsync of ") + what).c_str());
  return ptr;
}

void stream_scratch_free(void* ptr, cudaStream_t stream, const char* what) {
  const cudaError_t status = cudaFreeAsync(ptr, stream);
  if (status != cudaSuccess) check_cuda(status, (std::string("cudaFreeAsync of ") + what).c_str());
}

}  // namespace afq::cuda
