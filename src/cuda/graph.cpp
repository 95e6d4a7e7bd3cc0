// CUDA graphs for the model's decode step: capture once, replay with one launch.
#include <cuda_runtime.h>

#include <utility>

#include "afq/cuda_ops.h"
#include "afq/error.h"
#include "src/cuda/qmm.h"

namespace afq::cuda {

Graph::~Graph() {
  if (exec_) cudaGraphExecDestroy(exec_);
}

Graph::Graph(Graph&& other) noexcept : exec_(std::exchange(other.exec_, nullptr)) {}

Graph& Graph::operator=(Graph&& other) noexcept {
  if (this != &other) {
    if (exec_) cudaGraphExecDestroy(exec_);
    exec_ = std::exchange(other.exec_, nullptr);
  }
  return *this;
}

void Graph::capture(CUstream_st* stream, const std::function<void()>& record) {
  if (exec_) {
    cudaGraphExecDestroy(exec_);
    exec_ = nullptr;
  }
  // Thread-local mode: other threads' CUDA calls (a host thread pool, say) do not break it.
  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  cudaGraph_t graph = nullptr;
  try {
    record();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);  // ends the capture so that the stream works again
    if (graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    throw;
  }
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (ended != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    throw DeviceError(std::string("[cuda] capturing a CUDA graph failed: ") + cudaGetErrorString(ended));
  }
  const cudaError_t made = cudaGraphInstantiate(&exec_, graph, 0);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess) {
    exec_ = nullptr;
    (void)cudaGetLastError();
    throw DeviceError(std::string("[cuda] instantiating a CUDA graph failed: ") + cudaGetErrorString(made));
  }
}

void Graph::launch(CUstream_st* stream) const {
  if (!exec_) throw Error("[cuda] launch of an empty CUDA graph");
  check_cuda(cudaGraphLaunch(exec_, stream), "cudaGraphLaunch");
}

}  // namespace afq::cuda
