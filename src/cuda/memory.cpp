// Device memory, streams and copies for the model code, which includes no CUDA header.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "afq/cuda_ops.h"
#include "afq/error.h"
#include "src/cuda/qmm.h"

namespace afq::cuda {

namespace {
std::string gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  return text;
}
}  // namespace

DeviceBuffer::DeviceBuffer(size_t bytes, const char* what) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t status = cudaMalloc(&ptr_, bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    const MemoryInfo info = memory_info();
    throw DeviceError(std::string("[cuda] cannot allocate ") + gib(bytes) + " for the " + what + ": " +
                      cudaGetErrorString(status) + " (" + gib(info.free_bytes) + " of " + gib(info.total_bytes) +
                      " free)");
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Stream::Stream() { check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"); }
Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);
}

MemoryInfo memory_info() {
  MemoryInfo info;
  check_cuda(cudaMemGetInfo(&info.free_bytes, &info.total_bytes), "cudaMemGetInfo");
  return info;
}

void copy_to_device(void* dst, const void* src, size_t bytes, CUstream_st* stream) {
  if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), "copy to the device");
}

void copy_on_device(void* dst, const void* src, size_t bytes, CUstream_st* stream) {
  if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream), "copy on the device");
}

void copy_rows_on_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes, int64_t rows,
                         CUstream_st* stream) {
  if (row_bytes && rows > 0)
    check_cuda(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, static_cast<size_t>(rows),
                                 cudaMemcpyDeviceToDevice, stream),
               "copy of rows on the device");
}

void copy_to_host(void* dst, const void* src, size_t bytes, CUstream_st* stream) {
  if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), "copy to the host");
  synchronize(stream);
}

void zero_fill(void* dst, size_t bytes, CUstream_st* stream) {
  if (bytes) check_cuda(cudaMemsetAsync(dst, 0, bytes, stream), "zero fill on the device");
}

void synchronize(CUstream_st* stream) { check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); }

double measure_copy_bandwidth() {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer a(bytes, "copy-bandwidth source"), b(bytes, "copy-bandwidth target");
  check_cuda(cudaMemset(a.get(), 1, bytes), "cudaMemset");
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<float> ms;
  for (int i = 0; i < 12; ++i) {
    check_cuda(cudaEventRecord(start), "cudaEventRecord");
    check_cuda(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice), "cudaMemcpyAsync");
    check_cuda(cudaEventRecord(stop), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float t = 0;
    check_cuda(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
    if (i >= 2) ms.push_back(t);  // the first two warm up clocks and the TLB
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return 2.0 * bytes / (ms[ms.size() / 2] * 1e-3);
}

}  // namespace afq::cuda
