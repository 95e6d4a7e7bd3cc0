// The CUDA runtime seen from the rest of afq: is there a device, what is it, error messages,
// and uploading a quantized weight once.
#include <cuda_runtime.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "afq/cuda.h"
#include "afq/error.h"
#include "src/cuda/dependent_launch.cuh"
#include "src/cuda/qmm.h"

namespace afq::cuda {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw DeviceError(std::string("[cuda] ") + what + " failed: " + cudaGetErrorName(status) + " (" +
                      cudaGetErrorString(status) + ")");
}

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error for later calls
    return false;
  }
  return count > 0;
}

bool dependent_launch_enabled(int compute_capability) {
  static const bool allowed = [] {
    const char* env = std::getenv("AFQ_CUDA_PDL");
    return !(env && std::string(env) == "0");
  }();
  return allowed && compute_capability >= 90;
}

const DeviceInfo& current_device_info() {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<DeviceInfo>> by_device;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard lock(mutex);
  if (static_cast<int>(by_device.size()) <= device) by_device.resize(device + 1);
  if (!by_device[device]) {
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    by_device[device] = std::make_unique<DeviceInfo>(
        DeviceInfo{prop.major * 10 + prop.minor, prop.multiProcessorCount, int64_t{prop.l2CacheSize},
                   static_cast<int>(prop.sharedMemPerBlockOptin)});
  }
  return *by_device[device];
}

void allow_shared_memory(const void* kernel, int bytes, const char* what) {
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, int> allowed;  // (device, kernel) -> bytes
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard lock(mutex);
  int& bytes_allowed = allowed[{device, kernel}];
  if (bytes_allowed >= bytes) return;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), what);
  bytes_allowed = bytes;
}

DeviceQuantizedWeight DeviceQuantizedWeight::upload(const QuantizedWeight& w) {
  validate(w, "DeviceQuantizedWeight::upload");
  auto round16 = [](size_t bytes) { return (bytes + 15) / 16 * 16; };
  const size_t weight_bytes = round16(w.weight.nbytes()), scale_bytes = round16(w.scales.nbytes());
  void* base = nullptr;
  check_cuda(cudaMalloc(&base, weight_bytes + 2 * scale_bytes), "cudaMalloc of a quantized weight");
  DeviceQuantizedWeight d;
  d.memory = std::shared_ptr<void>(base, [](void* ptr) { cudaFree(ptr); });
  auto* bytes = static_cast<unsigned char*>(base);
  check_cuda(cudaMemcpy(bytes, w.weight.bytes(), w.weight.nbytes(), cudaMemcpyHostToDevice), "upload of weight");
  check_cuda(cudaMemcpy(bytes + weight_bytes, w.scales.bytes(), w.scales.nbytes(), cudaMemcpyHostToDevice),
             "upload of scales");
  check_cuda(cudaMemcpy(bytes + weight_bytes + scale_bytes, w.biases.bytes(), w.biases.nbytes(),
                        cudaMemcpyHostToDevice),
             "upload of biases");
  d.weight = reinterpret_cast<const uint32_t*>(bytes);
  d.scales = bytes + weight_bytes;
  d.biases = bytes + weight_bytes + scale_bytes;
  d.scale_dtype = w.scales.dtype();
  d.rows = w.rows();
  d.cols = w.cols();
  d.bits = w.bits;
  d.group_size = w.group_size;
  return d;
}

}  // namespace afq::cuda
