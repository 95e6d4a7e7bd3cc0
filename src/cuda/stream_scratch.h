// Stream-ordered scratch for the kernels' launchers (split-K partial sums, dequantized weight
// slices): cudaMallocAsync from the device's default pool, which is told once per device to keep
// what is freed. By default the pool hands freed memory back to the driver at every
// synchronization, so a caller that synchronizes after each matmul (a PyTorch user, a decode loop
// without CUDA graphs) paid a real allocation, 100-200 us, on every call. PyTorch's own
// cudaMallocAsync backend sets the same threshold.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace afq::cuda {

// `bytes` of device memory, usable in stream order on `stream`; `what` names it in errors.
void* stream_scratch_alloc(size_t bytes, cudaStream_t stream, const char* what);
void stream_scratch_free(void* ptr, cudaStream_t stream, const char* what);

}  // namespace afq::cuda
