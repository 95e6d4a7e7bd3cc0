// Internal to src/model: the loaded weights of a decoder layer, shared by the CPU forward pass
// (llama.cpp) and the CUDA one (cuda_llama.cpp), and the interface of a forward pass that runs
// on a device from copies of those weights.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "afq/model.h"

namespace afq::model_detail {

struct Layer {
  Tensor input_norm;  // F32 [hidden]
  Tensor post_norm;   // F32 [hidden]
  Tensor q_norm;      // F32 [head_dim] (Qwen3) or undefined
  Tensor k_norm;      // F32 [head_dim] (Qwen3) or undefined
  Linear q, k, v, o;  // [heads*head_dim, hidden], [kv_heads*head_dim, hidden] x2, [hidden, heads*head_dim]
  Linear gate, up, down;  // [inter, hidden] x2, [hidden, inter]
};

// The host weights a device forward pass copies at load; read during construction only.
struct HostWeights {
  const ModelConfig& config;
  const Tensor& embed;                           // [vocab, hidden] float, or undefined when quantized
  const std::optional<QuantizedWeight>& embed_q;
  const std::vector<Layer>& layers;
  const Tensor& final_norm;                      // F32 [hidden]
  const Linear& lm_head;                         // may share the embedding's tensors (tied)
  const std::vector<float>& inv_freq;            // [head_dim / 2], rope_inv_freq(config)
};

class DeviceForward {
 public:
  virtual ~DeviceForward() = default;
  // As Model::forward, forward_argmax, forward_batch, forward_batch_argmax and
  // forward_batch_sample, after Model has checked the counts, the sequence and the context.
  virtual Tensor forward(const int32_t* tokens, int64_t n, int64_t position, bool all_logits, int sequence) = 0;
  virtual int32_t forward_argmax(const int32_t* tokens, int64_t n, int64_t position, int sequence) = 0;
  virtual Tensor forward_batch(const int32_t* tokens, const int64_t* positions, int64_t count) = 0;
  virtual std::vector<int32_t> forward_batch_argmax(const int32_t* tokens, const int64_t* positions, int64_t count) = 0;
  virtual std::vector<int32_t> forward_batch_sample(const int32_t* tokens, const int64_t* positions, int64_t count,
                                                    const SamplingOptions& sampling, const float* uniforms) = 0;
  virtual uint64_t device_bytes() const = 0;
};

// The CUDA forward pass (cuda_llama.cpp) with `batch` KV caches of max_context tokens, decode
// steps replayed from a CUDA graph when `graphs` (and AFQ_CUDA_GRAPHS is not 0). Throws
// afq::Error in a build without CUDA, without a device, or when the model does not fit in
// device memory.
std::unique_ptr<DeviceForward> make_cuda_forward(
    const HostWeights& weights, int max_context, int batch, bool graphs,
    const std::function<void(const std::string&)>& notice,
    const std::function<void(size_t, size_t, const std::string&)>& progress);

}  // namespace afq::model_detail
