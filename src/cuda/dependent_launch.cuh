// Programmatic dependent launch (sm_90 and up). A kernel launched with launch_dependent() may
// start while the kernel before it in the stream still runs, once every block of that one has
// called allow_dependent_launch() (or exited); it must call wait_for_prior_kernel() before it
// reads what the prior kernel writes, or writes anything. The decode GEMV uses the gap to start
// streaming its weights. On older devices the calls are no-ops and the launch is ordinary.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace afq::cuda {

__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_for_prior_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Whether launch_dependent() overlaps kernels here: sm_90+, unless AFQ_CUDA_PDL=0.
bool dependent_launch_enabled(int compute_capability);

// kernel<<<grid, block, shared, stream>>>(args...), allowed to overlap the prior kernel's tail
// where dependent_launch_enabled().
template <class... Params, class... Args>
cudaError_t launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                             int compute_capability, Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = dependent_launch_enabled(compute_capability) ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace afq::cuda
