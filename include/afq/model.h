// The Llama family as Hugging Face defines it (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM, Qwen3ForCausalLM) on the CPU or an NVIDIA GPU: every linear layer is a named
// `Linear` that is either float or affine-quantized, so one walk over the names quantizes,
// dequantizes or reports. A model for the GPU loads on the host as well, then uploads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "afq/quant.h"
#include "afq/sampling.h"
#include "afq/tensor.h"

namespace afq {

struct RopeScaling {
  enum class Type { None, Linear, Llama3 } type = Type::None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;        // llama3
  float high_freq_factor = 4.0f;       // llama3
  int original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM", ...
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2; Llama's attention_bias)
  bool mlp_bias = false;
  bool qk_norm = false;         // RMSNorm on q and k per head (Qwen3)
  int sliding_window = 0;       // 0: full attention (Mistral sets it)
  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> bos_token_id;
};

// Reads config.json as older (rope_theta + rope_scaling, torch_dtype) and newer transformers
// (rope_parameters, dtype) write it. Throws afq::Error naming the file and field for an
// unsupported architecture, hidden_act or rope type.
ModelConfig read_model_config(const std::filesystem::path& config_json);

// RoPE inverse frequencies [head_dim / 2] with the config's scaling (transformers'
// _compute_*_parameters): the one table both devices rotate by.
std::vector<float> rope_inv_freq(const ModelConfig& config);

// A linear layer y = x @ W^T (+ bias): W float (F32/F16/BF16, possibly a view of the file) or
// quantized.
struct Linear {
  std::string name;                        // "model.layers.3.self_attn.q_proj"
  Tensor weight;                           // float [N, K] when not quantized
  std::optional<QuantizedWeight> quantized;
  Tensor bias;                             // F32 [N] or undefined
  int64_t out_features() const { return quantized ? quantized->rows() : weight.dim(0); }
  int64_t in_features() const { return quantized ? quantized->cols() : weight.dim(1); }
  void forward(const float* x, int64_t m, float* y) const;  // x [m, K], y [m, N]
};

// Quantizing a float checkpoint as it loads: every linear layer except lm_head and `exclude`.
struct QuantizeOnLoad {
  int bits = 4;
  int group_size = 64;
  QuantMethod method = QuantMethod::Mlx;
  std::vector<std::string> exclude;  // module names, trailing parts or globs (see module_matches)
};

enum class Device { Cpu, Cuda };

inline constexpr int kMaxBatch = 256;

struct LoadOptions {
  // Quantize the float linear layers on load (nullopt: run the checkpoint as stored).
  std::optional<QuantizeOnLoad> quantize;
  // Dequantize every quantized layer at load, to its scales' dtype (as transformers does).
  bool dequantize = false;
  int max_context = 0;  // KV cache length; 0: min(max_position_embeddings, 4096)
  // Sequences that can decode together (forward_batch, generate_batch), 1 to kMaxBatch: each has
  // its own KV cache of max_context tokens.
  int batch = 1;
  // Where the forward pass runs. Cuda: the weights are uploaded once at load (float ones as bf16),
  // activations and the KV cache are bf16 on the device; throws afq::Error when the build has no
  // CUDA, no device is present or the model does not fit (naming the bytes needed and free).
  Device device = Device::Cpu;
  // Cuda: each decode step (one token) replays one captured CUDA graph instead of launching its
  // kernels one by one (AFQ_CUDA_GRAPHS=0 also turns it off).
  bool cuda_graphs = true;
  // One-line notices (what was quantized, fallbacks); nullptr: silent.
  std::function<void(const std::string&)> notice;
  // Progress of the slow steps, for a progress bar: progress(done, total, what) after each linear
  // layer quantized on load ("quantize <name>") and each layer uploaded to the GPU ("upload <name>");
  // each step ends with done == total. nullptr: none.
  std::function<void(size_t done, size_t total, const std::string& what)> progress;
};

class Model {
 public:
  static Model load(const std::filesystem::path& dir, const LoadOptions& options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ModelConfig& config() const;
  int max_context() const;
  int batch() const;  // sequences, each with its own KV cache (LoadOptions::batch)
  Device device() const;

  // Every linear layer by name (the input embedding, when quantized, is used through lookups).
  // On Cuda the device holds copies made at load: changing a layer here does not reach them.
  void for_each_linear(const std::function<void(Linear&)>& fn);

  // Runs tokens at positions [position, position + n) of sequence `sequence` (< batch()) through
  // the model, filling its KV cache, and returns the logits [n, vocab] of every token when
  // all_logits, else [1, vocab] of the last.
  Tensor forward(const int32_t* tokens, int64_t n, int64_t position, bool all_logits = false, int sequence = 0);

  // The same run, returning only the greedy next token: the argmax of the last row of logits (the
  // lowest index among equals, as std::max_element). On Cuda the argmax runs on the device and
  // only the id is copied back.
  int32_t forward_argmax(const int32_t* tokens, int64_t n, int64_t position, int sequence = 0);

  // One decode step of the sequences 0 .. count - 1 together (count <= batch()): tokens[i] at
  // positions[i] of sequence i, whose cache holds the positions before it. The matmuls run once
  // for all rows. Returns the logits [count, vocab].
  Tensor forward_batch(const int32_t* tokens, const int64_t* positions, int64_t count);
  // The same step, returning each sequence's greedy next token.
  std::vector<int32_t> forward_batch_argmax(const int32_t* tokens, const int64_t* positions, int64_t count);
  // The same step, each sequence's next token drawn at uniforms[i] in [0, 1) by the rule of
  // sample_in_token_order (`sampling`'s repetition penalty is not applied). On Cuda the draw runs
  // on the device and only the ids come back; on the CPU it runs on the host.
  std::vector<int32_t> forward_batch_sample(const int32_t* tokens, const int64_t* positions, int64_t count,
                                            const SamplingOptions& sampling, const float* uniforms);

  // Bytes of weights held (quantized words, scales, biases and float tensors).
  uint64_t weight_bytes() const;
  // Bytes of device memory the model holds (weights, KV cache, activations); 0 on the CPU.
  uint64_t device_bytes() const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace afq
