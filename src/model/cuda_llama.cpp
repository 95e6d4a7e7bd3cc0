// The Llama-family forward pass on an NVIDIA GPU, step for step the CPU's (llama.cpp): the
// weights are uploaded once (quantized linears as stored, float ones as bf16), the KV cache is
// bf16 and preallocated for the whole context, and every buffer is allocated at load, so a
// forward pass allocates nothing. Matmul inputs and outputs, q/k/v and the cache are bf16; the
// residual stream stays float32 (a few KiB per token) so that the adds of many layers do not
// accumulate bf16 rounding. All math is float32. Prompts run in chunks of kChunkRows tokens.
// A decode step (one token of each of 1 to `batch` sequences, every sequence with its own KV
// cache) is captured once per number of sequences as a CUDA graph and replayed: its kernels read
// the tokens and positions from device memory, so one graph serves every step (AFQ_CUDA_GRAPHS=0,
// or LoadOptions::cuda_graphs = false, launches them one by one instead). Linears that read the same
// input and are stored alike (q/k/v; gate/up) are concatenated along N at upload and run as one
// matmul: at decode a small GEMV costs its launch and ramp more than its bytes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "afq/error.h"
#include "src/model/llama_layers.h"

#ifdef AFQ_HAVE_CUDA
#include "afq/cuda.h"
#include "afq/cuda_ops.h"
#include "afq/half.h"
#endif

namespace afq::model_detail {

#ifndef AFQ_HAVE_CUDA

std::unique_ptr<DeviceForward> make_cuda_forward(const HostWeights&, int, int, bool,
                                                 const std::function<void(const std::string&)>&,
                                                 const std::function<void(size_t, size_t, const std::string&)>&) {
  throw DeviceError("--device cuda: this build of afq has no CUDA (configure with nvcc present and -DAFQ_CUDA=ON)");
}

#else

namespace {

using cuda::DeviceBuffer;

// Prompt tokens per pass through the layers: bounds the activations (and the all-logits buffer)
// while keeping the matmuls large enough for the tensor-core paths.
constexpr int64_t kChunkRows = 512;
// Left free for cuBLAS's workspace and the CUDA context's own allocations.
constexpr uint64_t kReservedBytes = uint64_t{256} << 20;

uint64_t round16(uint64_t bytes) { return (bytes + 15) / 16 * 16; }

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  return text;
}

bool is_quantized_embedding(const HostWeights& w) { return w.embed_q.has_value(); }

// Tied lm_head that is the embedding's very tensors (not a copy quantized apart from it on load).
bool lm_head_shares_embedding(const HostWeights& w) {
  const Linear& head = w.lm_head;
  if (head.bias.defined()) return false;
  if (head.quantized && w.embed_q) return head.quantized->weight.bytes() == w.embed_q->weight.bytes();
  if (!head.quantized && w.embed.defined()) return head.weight.bytes() == w.embed.bytes();
  return false;
}

uint64_t quantized_bytes(const QuantizedWeight& q) {
  // As DeviceQuantizedWeight::upload lays them out: three 16-byte aligned parts.
  return round16(q.weight.nbytes()) + 2 * round16(q.scales.nbytes());
}

uint64_t linear_bytes(const Linear& l) {
  const uint64_t weight = l.quantized ? quantized_bytes(*l.quantized)
                                      : uint64_t(l.out_features()) * uint64_t(l.in_features()) * 2;
  return weight + (l.bias.defined() ? uint64_t(l.bias.numel()) * 4 : 0);
}

// The device memory the model will take, computed before any allocation.
struct MemoryPlan {
  uint64_t weights = 0, kv_cache = 0, activations = 0;
  uint64_t total() const { return weights + kv_cache + activations; }
};

struct DeviceLinear {
  std::optional<cuda::DeviceQuantizedWeight> quantized;
  DeviceBuffer own;             // bf16 [n, k] when float and not borrowed
  const void* weight = nullptr; // bf16 [n, k]: own, or the embedding table (tied)
  DeviceBuffer bias;            // F32 [n], or empty
  int64_t n = 0, k = 0;
};

struct DeviceLayer {
  DeviceBuffer input_norm, post_norm;  // F32 [hidden]
  DeviceBuffer q_norm, k_norm;         // F32 [head_dim] (Qwen3), or empty
  // qkv [q_dim + 2 kv_dim, hidden] and gate_up [2 intermediate, hidden] when fused; else the parts.
  std::optional<DeviceLinear> qkv, gate_up;
  DeviceLinear q, k, v, o, gate, up, down;
};

// Whether linears can be concatenated along N: all float, or all quantized alike.
bool fusable(std::initializer_list<const Linear*> parts) {
  const Linear& first = **parts.begin();
  for (const Linear* l : parts) {
    if (l->in_features() != first.in_features() || l->quantized.has_value() != first.quantized.has_value())
      return false;
    if (l->quantized && (l->quantized->bits != first.quantized->bits ||
                         l->quantized->group_size != first.quantized->group_size ||
                         l->quantized->scales.dtype() != first.quantized->scales.dtype()))
      return false;
    if (!l->quantized && l->weight.dtype() != first.weight.dtype()) return false;
  }
  return true;
}

// Rows of the tensors, one after the other (all of one dtype and row width).
Tensor concat_rows(const std::vector<const Tensor*>& parts) {
  int64_t rows = 0;
  for (const Tensor* t : parts) rows += t->dim(0);
  Tensor out = Tensor::zeros(parts.front()->dtype(), {rows, parts.front()->dim(1)});
  auto* dst = reinterpret_cast<uint8_t*>(out.mutable_bytes());
  for (const Tensor* t : parts) {
    std::memcpy(dst, t->bytes(), t->nbytes());
    dst += t->nbytes();
  }
  return out;
}

// The linears as one, output features concatenated in order; missing biases are zeros.
Linear concat_linears(std::initializer_list<const Linear*> parts) {
  Linear fused;
  fused.name = (*parts.begin())->name + " (fused)";
  std::vector<const Tensor*> weights, scales, biases;
  bool any_bias = false;
  for (const Linear* l : parts) {
    any_bias = any_bias || l->bias.defined();
    if (l->quantized) {
      weights.push_back(&l->quantized->weight);
      scales.push_back(&l->quantized->scales);
      biases.push_back(&l->quantized->biases);
    } else {
      weights.push_back(&l->weight);
    }
  }
  if ((*parts.begin())->quantized) {
    QuantizedWeight q;
    q.weight = concat_rows(weights);
    q.scales = concat_rows(scales);
    q.biases = concat_rows(biases);
    q.bits = (*parts.begin())->quantized->bits;
    q.group_size = (*parts.begin())->quantized->group_size;
    fused.quantized = std::move(q);
  } else {
    fused.weight = concat_rows(weights);
  }
  if (any_bias) {
    int64_t n = 0;
    for (const Linear* l : parts) n += l->out_features();
    fused.bias = Tensor::zeros(DType::F32, {n});
    float* out = fused.bias.mutable_data<float>();
    for (const Linear* l : parts) {
      if (l->bias.defined()) {
        const Tensor b = l->bias.dtype() == DType::F32 ? l->bias : to_dtype(l->bias, DType::F32);
        std::memcpy(out, b.bytes(), b.nbytes());
      }
      out += l->out_features();
    }
  }
  return fused;
}

class CudaLlama final : public DeviceForward {
 public:
  CudaLlama(const HostWeights& w, int max_context, int batch, bool graphs,
            const std::function<void(const std::string&)>& notice,
            const std::function<void(size_t, size_t, const std::string&)>& progress);
  Tensor forward(const int32_t* tokens, int64_t n, int64_t position, bool all_logits, int sequence) override;
  int32_t forward_argmax(const int32_t* tokens, int64_t n, int64_t position, int sequence) override;
  Tensor forward_batch(const int32_t* tokens, const int64_t* positions, int64_t count) override;
  std::vector<int32_t> forward_batch_argmax(const int32_t* tokens, const int64_t* positions, int64_t count) override;
  std::vector<int32_t> forward_batch_sample(const int32_t* tokens, const int64_t* positions, int64_t count,
                                            const SamplingOptions& sampling, const float* uniforms) override;
  uint64_t device_bytes() const override { return allocated_; }

 private:
  DeviceBuffer buffer(uint64_t bytes, const char* what);
  DeviceBuffer upload(const void* host, uint64_t bytes, const char* what);
  DeviceBuffer upload_f32(const Tensor& t, const char* what);
  DeviceBuffer upload_bf16(const Tensor& t, const char* what);
  DeviceLinear upload_linear(const Linear& l);
  MemoryPlan plan(const HostWeights& w) const;

  void check_tokens(const int32_t* tokens, int64_t n) const;
  void linear(const DeviceLinear& l, const void* x, DType x_dtype, int64_t m, void* y, DType y_dtype);
  void run_layers(const int32_t* tokens, int64_t rows, int64_t position, int sequence);
  // `rows` tokens of sequence `sequence` at positions [position, position + rows). With
  // device_positions (int32 [rows] on the device) instead: one token of each of the sequences
  // 0 .. rows - 1, at those positions, with the graph-replayable ops (position and sequence unused).
  void layer_forward(int l, int64_t rows, int64_t position, int sequence, const int32_t* device_positions = nullptr);
  // One token of each of the sequences 0 .. count - 1 through the whole model into logits_ and
  // argmax_ (the argmax, or with `sampling` a token drawn at `uniforms`): the graph for `count`
  // (and whether it samples) when there is one.
  void decode_step(const int32_t* tokens, const int64_t* positions, int64_t count,
                   const SamplingOptions* sampling = nullptr, const float* uniforms = nullptr);
  void record_decode_step(int64_t count, bool sampled);
  // Final norm + lm_head of the rows [first, first + count) of the last chunk into logits_.
  void head(int64_t first, int64_t count);
  void download_logits(int64_t count, float* out);

  ModelConfig cfg_;
  int max_ctx_ = 0;
  int batch_ = 1;      // sequences, each with a KV cache of max_ctx_ tokens
  int64_t chunk_ = 0;  // rows the activations hold
  int64_t hd_ = 0, qd_ = 0, kvd_ = 0;
  uint64_t allocated_ = 0;
  cuda::Stream stream_;
  std::function<void(const std::string&)> notice_;

  // The decode step of `count` sequences as a CUDA graph (index 2 * count, + 1 when it samples),
  // captured at its second step (the first runs the same work directly, so that lazy set-up in
  // cuBLAS and the kernels' launchers stays out of the capture).
  bool use_graphs_ = false;
  std::vector<int64_t> direct_decode_steps_;
  std::vector<cuda::Graph> decode_graphs_;
  // What a decode step reads: int32 tokens [batch], int32 positions [batch], the sampling
  // settings (cuda::DeviceSampling, 16-byte aligned), float uniforms [batch].
  DeviceBuffer decode_step_;
  uint64_t sampling_offset_ = 0, uniforms_offset_ = 0;  // bytes into decode_step_

  // Weights.
  std::optional<cuda::DeviceQuantizedWeight> embed_q_;
  DeviceBuffer embed_;  // bf16 [vocab, hidden] when float
  std::vector<DeviceLayer> layers_;
  DeviceBuffer final_norm_;  // F32 [hidden]
  DeviceLinear lm_head_;
  DeviceBuffer inv_freq_;    // F32 [head_dim / 2]
  // A quantized lm_head reads f16 x and writes f16 logits: 3 more mantissa bits than bf16 for
  // the argmax, same speed. A float one writes f32 logits from cuBLAS.
  DType head_x_dtype_ = DType::BF16, logits_dtype_ = DType::F32;

  // KV cache [layers, batch, max_ctx, kv_heads, head_dim] bf16, zeroed at load.
  DeviceBuffer k_cache_, v_cache_;

  // Activations for chunk_ rows.
  DeviceBuffer tokens_;            // int32 [chunk]
  DeviceBuffer x_;                 // F32 [chunk, hidden]: the residual stream
  DeviceBuffer xn_;                // bf16 / f16 [chunk, hidden]: normed input of the matmuls
  DeviceBuffer q_, k_, v_, att_;   // bf16 [chunk, q_dim], [chunk, kv_dim] x2, [chunk, q_dim]
  DeviceBuffer qkv_;               // bf16 [chunk, q_dim + 2 kv_dim]: the fused q/k/v output
  DeviceBuffer proj_;              // bf16 [chunk, hidden]: o_proj and down_proj outputs
  DeviceBuffer gate_, up_;         // bf16 [chunk, intermediate]
  DeviceBuffer gate_up_;           // bf16 [chunk, 2 intermediate]: the fused gate/up output
  DeviceBuffer logits_;            // logits_dtype_ [chunk, vocab]
  DeviceBuffer scratch_;           // F32: decode attention's partial softmaxes, for batch rows
  DeviceBuffer argmax_;            // int32 [batch]
};

DeviceBuffer CudaLlama::buffer(uint64_t bytes, const char* what) {
  DeviceBuffer b(std::max<uint64_t>(bytes, 16), what);
  allocated_ += b.bytes();
  return b;
}

DeviceBuffer CudaLlama::upload(const void* host, uint64_t bytes, const char* what) {
  DeviceBuffer b = buffer(bytes, what);
  cuda::copy_to_device(b.get(), host, bytes, stream_.get());
  cuda::synchronize(stream_.get());  // the host tensor may be a temporary
  return b;
}

DeviceBuffer CudaLlama::upload_f32(const Tensor& t, const char* what) {
  const Tensor f = t.dtype() == DType::F32 ? t : to_dtype(t, DType::F32);
  return upload(f.bytes(), f.nbytes(), what);
}

DeviceBuffer CudaLlama::upload_bf16(const Tensor& t, const char* what) {
  const Tensor b = t.dtype() == DType::BF16 ? t : to_dtype(t, DType::BF16);
  return upload(b.bytes(), b.nbytes(), what);
}

DeviceLinear CudaLlama::upload_linear(const Linear& l) {
  DeviceLinear d;
  d.n = l.out_features();
  d.k = l.in_features();
  if (l.quantized) {
    try {
      d.quantized = cuda::DeviceQuantizedWeight::upload(*l.quantized);
    } catch (const Error&) {
      rethrow_with_context(l.name + ": ");
    }
    allocated_ += quantized_bytes(*l.quantized);
  } else {
    d.own = upload_bf16(l.weight, "float weight");
    d.weight = d.own.get();
  }
  if (l.bias.defined()) d.bias = upload_f32(l.bias, "bias");
  return d;
}

MemoryPlan CudaLlama::plan(const HostWeights& w) const {
  const ModelConfig& c = w.config;
  MemoryPlan p;
  for (const Layer& L : w.layers) {
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) p.weights += linear_bytes(*l);
    p.weights += 2 * round16(uint64_t(c.hidden_size) * 4) + (c.qk_norm ? 2 * round16(uint64_t(hd_) * 4) : 0);
  }
  p.weights += is_quantized_embedding(w) ? quantized_bytes(*w.embed_q)
                                         : uint64_t(c.vocab_size) * uint64_t(c.hidden_size) * 2;
  if (!lm_head_shares_embedding(w)) p.weights += linear_bytes(w.lm_head);
  p.weights += uint64_t(c.hidden_size) * 4 + uint64_t(hd_) * 2;
  p.kv_cache = 2 * uint64_t(c.num_layers) * uint64_t(batch_) * uint64_t(max_ctx_) * uint64_t(kvd_) * 2;
  const uint64_t rows = uint64_t(chunk_);
  p.activations =
      rows * (4 + uint64_t(c.hidden_size) * (4 + 2 + 2) + uint64_t(qd_) * 2 * 2 + uint64_t(kvd_) * 2 * 2 +
              uint64_t(qd_ + 2 * kvd_) * 2 + uint64_t(c.intermediate_size) * 2 * 4 + uint64_t(c.vocab_size) * 4) +
      uint64_t(batch_) * cuda::attention_scratch_floats(c.num_heads, c.head_dim, max_ctx_) * 4;
  return p;
}

CudaLlama::CudaLlama(const HostWeights& w, int max_context, int batch, bool graphs,
                     const std::function<void(const std::string&)>& notice,
                     const std::function<void(size_t, size_t, const std::string&)>& progress)
    : cfg_(w.config),
      max_ctx_(max_context),
      batch_(batch),
      notice_(notice),
      use_graphs_(graphs),
      direct_decode_steps_(2 * (size_t(batch) + 1), 0),
      decode_graphs_(2 * (size_t(batch) + 1)) {
  const ModelConfig& c = cfg_;
  hd_ = c.head_dim;
  qd_ = int64_t{c.num_heads} * hd_;
  kvd_ = int64_t{c.num_kv_heads} * hd_;
  chunk_ = std::max<int64_t>(std::min<int64_t>(kChunkRows, max_ctx_), batch_);

  const MemoryPlan need = plan(w);
  const cuda::MemoryInfo memory = cuda::memory_info();
  if (need.total() + kReservedBytes > memory.free_bytes)
    throw DeviceError("--device cuda: the model needs " + gib(need.total()) + " of device memory (weights " +
                      gib(need.weights) + ", KV cache " + gib(need.kv_cache) + " for " +
                      (batch_ > 1 ? std::to_string(batch_) + " sequences of " : std::string()) +
                      std::to_string(max_ctx_) + " tokens, activations " + gib(need.activations) + ") plus " +
                      gib(kReservedBytes) + " kept free, and the device has " + gib(memory.free_bytes) + " free of " +
                      gib(memory.total_bytes) + ": lower --max-context" + (batch_ > 1 ? " or the batch" : "") +
                      ", or quantize with fewer --bits");

  // Weights.
  if (w.embed_q) {
    embed_q_ = cuda::DeviceQuantizedWeight::upload(*w.embed_q);
    allocated_ += quantized_bytes(*w.embed_q);
  } else {
    embed_ = upload_bf16(w.embed, "embedding");
  }
  for (const Layer& L : w.layers) {
    DeviceLayer d;
    d.input_norm = upload_f32(L.input_norm, "norm weight");
    d.post_norm = upload_f32(L.post_norm, "norm weight");
    if (c.qk_norm) {
      d.q_norm = upload_f32(L.q_norm, "norm weight");
      d.k_norm = upload_f32(L.k_norm, "norm weight");
    }
    if (fusable({&L.q, &L.k, &L.v})) {
      d.qkv = upload_linear(concat_linears({&L.q, &L.k, &L.v}));
    } else {
      d.q = upload_linear(L.q);
      d.k = upload_linear(L.k);
      d.v = upload_linear(L.v);
    }
    d.o = upload_linear(L.o);
    if (fusable({&L.gate, &L.up})) {
      d.gate_up = upload_linear(concat_linears({&L.gate, &L.up}));
    } else {
      d.gate = upload_linear(L.gate);
      d.up = upload_linear(L.up);
    }
    d.down = upload_linear(L.down);
    layers_.push_back(std::move(d));
    if (progress)
      progress(layers_.size(), w.layers.size(), "upload model.layers." + std::to_string(layers_.size() - 1));
  }
  final_norm_ = upload_f32(w.final_norm, "norm weight");
  if (lm_head_shares_embedding(w)) {
    lm_head_.n = c.vocab_size;
    lm_head_.k = c.hidden_size;
    if (embed_q_) lm_head_.quantized = embed_q_;  // shares the device memory (shared_ptr)
    else lm_head_.weight = embed_.get();
  } else {
    lm_head_ = upload_linear(w.lm_head);
  }
  if (lm_head_.quantized) {
    head_x_dtype_ = DType::F16;
    logits_dtype_ = DType::F16;
  }
  inv_freq_ = upload(w.inv_freq.data(), w.inv_freq.size() * sizeof(float), "RoPE frequencies");

  // KV cache, zeroed so that reading a position never written gives what the CPU's zeroed cache gives.
  const uint64_t cache_bytes = uint64_t(c.num_layers) * uint64_t(batch_) * uint64_t(max_ctx_) * uint64_t(kvd_) * 2;
  k_cache_ = buffer(cache_bytes, "K cache");
  v_cache_ = buffer(cache_bytes, "V cache");
  cuda::zero_fill(k_cache_.get(), cache_bytes, stream_.get());
  cuda::zero_fill(v_cache_.get(), cache_bytes, stream_.get());

  // Activations.
  const uint64_t rows = uint64_t(chunk_);
  tokens_ = buffer(rows * 4, "token ids");
  x_ = buffer(rows * c.hidden_size * 4, "residual stream");
  xn_ = buffer(rows * c.hidden_size * 2, "normed activations");
  qkv_ = buffer(rows * (qd_ + 2 * kvd_) * 2, "fused q/k/v");
  gate_up_ = buffer(rows * c.intermediate_size * 4, "fused MLP gate/up");
  q_ = buffer(rows * qd_ * 2, "queries");
  k_ = buffer(rows * kvd_ * 2, "keys");
  v_ = buffer(rows * kvd_ * 2, "values");
  att_ = buffer(rows * qd_ * 2, "attention output");
  proj_ = buffer(rows * c.hidden_size * 2, "projections");
  gate_ = buffer(rows * c.intermediate_size * 2, "MLP gate");
  up_ = buffer(rows * c.intermediate_size * 2, "MLP up");
  logits_ = buffer(rows * c.vocab_size * dtype_size(logits_dtype_), "logits");
  scratch_ = buffer(uint64_t(batch_) * cuda::attention_scratch_floats(c.num_heads, c.head_dim, max_ctx_) * 4,
                    "attention scratch");
  argmax_ = buffer(uint64_t(batch_) * 4, "argmax");
  sampling_offset_ = round16(uint64_t(batch_) * 8);
  uniforms_offset_ = sampling_offset_ + round16(sizeof(cuda::DeviceSampling));
  decode_step_ = buffer(uniforms_offset_ + uint64_t(batch_) * 4, "decode step");
  // DeviceQuantizedWeight::upload copies on the legacy default stream, which a non-blocking
  // stream does not wait for: finish both before the first forward pass.
  cuda::synchronize(nullptr);
  cuda::synchronize(stream_.get());
  if (notice)
    notice("on the GPU: " + gib(allocated_) + " of device memory (weights " + gib(need.weights) + ", KV cache " +
           gib(need.kv_cache) + " for " + (batch_ > 1 ? std::to_string(batch_) + " sequences of " : std::string()) +
           std::to_string(max_ctx_) + " tokens)");
}

void CudaLlama::check_tokens(const int32_t* tokens, int64_t n) const {
  for (int64_t t = 0; t < n; ++t)
    if (tokens[t] < 0 || tokens[t] >= cfg_.vocab_size)
      throw Error("token id " + std::to_string(tokens[t]) + " is outside the vocabulary of " +
                  std::to_string(cfg_.vocab_size));
}

void CudaLlama::linear(const DeviceLinear& l, const void* x, DType x_dtype, int64_t m, void* y, DType y_dtype) {
  if (l.quantized) {
    // The quantized kernels write y in x's dtype, with the bias added in float32.
    cuda::affine_qmm_t(x, m, x_dtype, *l.quantized, l.bias.get(), DType::F32, y, stream_.get());
    return;
  }
  cuda::gemm_bf16_t(x, m, l.weight, l.n, l.k, y, y_dtype, stream_.get());
  if (l.bias.get()) cuda::add_bias(y, y_dtype, l.bias.as<float>(), m, l.n, stream_.get());
}

void CudaLlama::layer_forward(int l, int64_t rows, int64_t position, int sequence, const int32_t* device_positions) {
  const ModelConfig& c = cfg_;
  const DeviceLayer& L = layers_[l];
  CUstream_st* s = stream_.get();
  const int64_t h = c.hidden_size;
  const DType bf16 = DType::BF16;

  // hidden = input_layernorm(x); q, k, v projections. Fused, one token's q, k, v are consecutive
  // in the output row; the decode step of a batch reads them there too (rows q_stride apart),
  // other runs of more tokens copy them apart into q_, k_, v_.
  // (Past the first layer, the previous layer's last residual add left this norm in xn_.)
  if (l == 0)
    cuda::rms_norm(x_.get(), DType::F32, L.input_norm.as<float>(), xn_.get(), bf16, rows, h, c.rms_norm_eps, s);
  void* q = q_.get();
  void* k = k_.get();
  void* v = v_.get();
  int64_t q_stride = qd_, kv_stride = kvd_;  // elements from one row's q (k, v) to the next's
  if (L.qkv) {
    linear(*L.qkv, xn_.get(), bf16, rows, qkv_.get(), bf16);
    auto* qkv = qkv_.as<uint16_t>();
    const int64_t row = qd_ + 2 * kvd_;  // elements
    // Qwen3's q/k norms take contiguous heads: a batch with them is copied apart as a prompt is.
    if (rows == 1 || (device_positions && !c.qk_norm)) {
      q = qkv;
      k = qkv + qd_;
      v = qkv + qd_ + kvd_;
      q_stride = kv_stride = row;
    } else {
      cuda::copy_rows_on_device(q, uint64_t(qd_) * 2, qkv, uint64_t(row) * 2, uint64_t(qd_) * 2, rows, s);
      cuda::copy_rows_on_device(k, uint64_t(kvd_) * 2, qkv + qd_, uint64_t(row) * 2, uint64_t(kvd_) * 2, rows, s);
      cuda::copy_rows_on_device(v, uint64_t(kvd_) * 2, qkv + qd_ + kvd_, uint64_t(row) * 2, uint64_t(kvd_) * 2, rows,
                                s);
    }
  } else {
    linear(L.q, xn_.get(), bf16, rows, q, bf16);
    linear(L.k, xn_.get(), bf16, rows, k, bf16);
    linear(L.v, xn_.get(), bf16, rows, v, bf16);
  }

  // Qwen3: q_norm / k_norm over each head; then rotary embeddings, k straight into the cache.
  if (c.qk_norm) {
    cuda::rms_norm(q, bf16, L.q_norm.as<float>(), q, bf16, rows * c.num_heads, hd_, c.rms_norm_eps, s);
    cuda::rms_norm(k, bf16, L.k_norm.as<float>(), k, bf16, rows * c.num_kv_heads, hd_, c.rms_norm_eps, s);
  }
  // This layer's cache of sequence `sequence` (of sequence 0 for a batch, the others after it).
  const int64_t slot = int64_t{max_ctx_} * kvd_;  // elements of one sequence's cache
  const int64_t layer_offset = (int64_t{l} * batch_ + (device_positions ? 0 : sequence)) * slot;
  auto* k_layer = k_cache_.as<uint16_t>() + layer_offset;
  auto* v_layer = v_cache_.as<uint16_t>() + layer_offset;
  const float* inv_freq = inv_freq_.as<float>();
  if (device_positions) {
    cuda::rope_qk_store_v_batch(q, k, v, rows, q_stride, kv_stride, k_layer, v_layer, slot, c.num_heads, c.num_kv_heads,
                                c.head_dim, device_positions, inv_freq, s);
  } else {
    cuda::rope(q, q, rows, c.num_heads, c.head_dim, position, inv_freq, s);
    cuda::rope(k, k_layer + position * kvd_, rows, c.num_kv_heads, c.head_dim, position, inv_freq, s);
    cuda::copy_on_device(v_layer + position * kvd_, v, uint64_t(rows) * kvd_ * 2, s);
  }

  // Causal attention with GQA (and Mistral's window).
  cuda::AttentionShape shape;
  shape.n = rows;
  shape.position = position;
  shape.heads = c.num_heads;
  shape.kv_heads = c.num_kv_heads;
  shape.head_dim = c.head_dim;
  shape.window = c.sliding_window;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  if (device_positions)
    cuda::attention_decode_batch(q, q_stride, k_layer, v_layer, slot, att_.get(), shape, device_positions, max_ctx_,
                                 scratch_.as<float>(), s);
  else
    cuda::attention(q, k_layer, v_layer, att_.get(), shape, scratch_.as<float>(), s);

  // x = x + o_proj(attention).
  linear(L.o, att_.get(), bf16, rows, proj_.get(), bf16);

  // x = x + down_proj(silu(gate_proj(h)) * up_proj(h)), h = post_attention_layernorm(x) (fused with the add above).
  cuda::add_residual_rms_norm(x_.as<float>(), proj_.get(), L.post_norm.as<float>(), xn_.get(), rows, h, c.rms_norm_eps,
                              s);
  if (L.gate_up) {
    linear(*L.gate_up, xn_.get(), bf16, rows, gate_up_.get(), bf16);
    cuda::swiglu_rows(gate_up_.get(), rows, c.intermediate_size, gate_.get(), s);
  } else {
    linear(L.gate, xn_.get(), bf16, rows, gate_.get(), bf16);
    linear(L.up, xn_.get(), bf16, rows, up_.get(), bf16);
    cuda::swiglu(gate_.get(), up_.get(), gate_.get(), rows * c.intermediate_size, s);
  }
  linear(L.down, gate_.get(), bf16, rows, proj_.get(), bf16);
  // The next layer's input_layernorm comes with this add; after the last layer the head norms.
  if (l + 1 < c.num_layers)
    cuda::add_residual_rms_norm(x_.as<float>(), proj_.get(), layers_[l + 1].input_norm.as<float>(), xn_.get(), rows, h,
                                c.rms_norm_eps, s);
  else
    cuda::add_residual(x_.as<float>(), proj_.get(), rows * h, s);
}

void CudaLlama::run_layers(const int32_t* tokens, int64_t rows, int64_t position, int sequence) {
  CUstream_st* s = stream_.get();
  cuda::copy_to_device(tokens_.get(), tokens, uint64_t(rows) * 4, s);
  if (embed_q_)
    cuda::embedding_lookup_quantized(tokens_.as<int32_t>(), rows, *embed_q_, x_.as<float>(), s);
  else
    cuda::embedding_lookup(tokens_.as<int32_t>(), rows, embed_.get(), DType::BF16, cfg_.hidden_size, x_.as<float>(), s);
  for (int l = 0; l < cfg_.num_layers; ++l) layer_forward(l, rows, position, sequence);
}

void CudaLlama::record_decode_step(int64_t count, bool sampled) {
  CUstream_st* s = stream_.get();
  const int32_t* tokens = decode_step_.as<int32_t>();
  const int32_t* positions = tokens + batch_;
  if (embed_q_)
    cuda::embedding_lookup_quantized(tokens, count, *embed_q_, x_.as<float>(), s);
  else
    cuda::embedding_lookup(tokens, count, embed_.get(), DType::BF16, cfg_.hidden_size, x_.as<float>(), s);
  for (int l = 0; l < cfg_.num_layers; ++l) layer_forward(l, count, 0, 0, positions);
  head(0, count);
  if (sampled) {
    const auto* step = decode_step_.as<uint8_t>();
    cuda::sample_rows(logits_.get(), logits_dtype_, count, cfg_.vocab_size,
                      reinterpret_cast<const cuda::DeviceSampling*>(step + sampling_offset_),
                      reinterpret_cast<const float*>(step + uniforms_offset_), argmax_.as<int32_t>(), s);
  } else {
    cuda::argmax_rows(logits_.get(), logits_dtype_, count, cfg_.vocab_size, argmax_.as<int32_t>(), s);
  }
}

void CudaLlama::decode_step(const int32_t* tokens, const int64_t* positions, int64_t count,
                            const SamplingOptions* sampling, const float* uniforms) {
  CUstream_st* s = stream_.get();
  // Pageable memory: the copy is staged before the call returns, so `step` may go.
  std::vector<uint8_t> step(decode_step_.bytes(), 0);
  auto* ids = reinterpret_cast<int32_t*>(step.data());
  for (int64_t i = 0; i < count; ++i) {
    ids[i] = tokens[i];
    ids[batch_ + i] = static_cast<int32_t>(positions[i]);
  }
  const bool sampled = sampling != nullptr;
  if (sampled) {
    const cuda::DeviceSampling settings{sampling->temperature, sampling->top_k, sampling->top_p, sampling->min_p};
    std::memcpy(step.data() + sampling_offset_, &settings, sizeof(settings));
    std::memcpy(step.data() + uniforms_offset_, uniforms, size_t(count) * 4);
  }
  cuda::copy_to_device(decode_step_.get(), step.data(), step.size(), s);
  if (!use_graphs_) return record_decode_step(count, sampled);
  const size_t which = 2 * size_t(count) + (sampled ? 1 : 0);
  cuda::Graph& graph = decode_graphs_[which];
  if (graph.empty()) {
    if (direct_decode_steps_[which]++ == 0) return record_decode_step(count, sampled);
    try {
      graph.capture(s, [this, count, sampled] { record_decode_step(count, sampled); });
    } catch (const Error& e) {
      use_graphs_ = false;
      if (notice_) notice_(std::string("decode steps run without a CUDA graph: ") + e.what());
      return record_decode_step(count, sampled);
    }
  }
  graph.launch(s);
}

void CudaLlama::head(int64_t first, int64_t count) {
  const float* x = x_.as<float>() + first * cfg_.hidden_size;
  cuda::rms_norm(x, DType::F32, final_norm_.as<float>(), xn_.get(), head_x_dtype_, count, cfg_.hidden_size,
                 cfg_.rms_norm_eps, stream_.get());
  linear(lm_head_, xn_.get(), head_x_dtype_, count, logits_.get(), logits_dtype_);
}

void CudaLlama::download_logits(int64_t count, float* out) {
  const uint64_t values = uint64_t(count) * cfg_.vocab_size;
  if (logits_dtype_ == DType::F32) {
    cuda::copy_to_host(out, logits_.get(), values * 4, stream_.get());
    return;
  }
  std::vector<uint16_t> half(values);
  cuda::copy_to_host(half.data(), logits_.get(), values * 2, stream_.get());
  for (uint64_t i = 0; i < values; ++i) out[i] = f16_to_f32(half[i]);
}

Tensor CudaLlama::forward(const int32_t* tokens, int64_t n, int64_t position, bool all_logits, int sequence) {
  check_tokens(tokens, n);
  if (n == 1 && sequence == 0) return forward_batch(tokens, &position, 1);
  Tensor logits = Tensor::zeros(DType::F32, {all_logits ? n : 1, cfg_.vocab_size});
  float* out = logits.mutable_data<float>();
  for (int64_t done = 0; done < n;) {
    const int64_t rows = std::min(chunk_, n - done);
    run_layers(tokens + done, rows, position + done, sequence);
    if (all_logits) {
      head(0, rows);
      download_logits(rows, out + done * cfg_.vocab_size);
    } else if (done + rows == n) {
      head(rows - 1, 1);
      download_logits(1, out);
    }
    done += rows;
  }
  return logits;
}

int32_t CudaLlama::forward_argmax(const int32_t* tokens, int64_t n, int64_t position, int sequence) {
  check_tokens(tokens, n);
  if (n == 1 && sequence == 0) return forward_batch_argmax(tokens, &position, 1)[0];
  for (int64_t done = 0; done < n;) {
    const int64_t rows = std::min(chunk_, n - done);
    run_layers(tokens + done, rows, position + done, sequence);
    done += rows;
    if (done == n) head(rows - 1, 1);
  }
  cuda::argmax(logits_.get(), logits_dtype_, cfg_.vocab_size, argmax_.as<int32_t>(), stream_.get());
  int32_t id = 0;
  cuda::copy_to_host(&id, argmax_.get(), 4, stream_.get());
  return id;
}

Tensor CudaLlama::forward_batch(const int32_t* tokens, const int64_t* positions, int64_t count) {
  check_tokens(tokens, count);
  decode_step(tokens, positions, count);
  Tensor logits = Tensor::zeros(DType::F32, {count, cfg_.vocab_size});
  download_logits(count, logits.mutable_data<float>());
  return logits;
}

std::vector<int32_t> CudaLlama::forward_batch_argmax(const int32_t* tokens, const int64_t* positions, int64_t count) {
  check_tokens(tokens, count);
  decode_step(tokens, positions, count);
  std::vector<int32_t> ids(static_cast<size_t>(count));
  cuda::copy_to_host(ids.data(), argmax_.get(), ids.size() * 4, stream_.get());
  return ids;
}

std::vector<int32_t> CudaLlama::forward_batch_sample(const int32_t* tokens, const int64_t* positions, int64_t count,
                                                     const SamplingOptions& sampling, const float* uniforms) {
  check_tokens(tokens, count);
  decode_step(tokens, positions, count, &sampling, uniforms);
  std::vector<int32_t> ids(static_cast<size_t>(count));
  cuda::copy_to_host(ids.data(), argmax_.get(), ids.size() * 4, stream_.get());
  return ids;
}

}  // namespace

std::unique_ptr<DeviceForward> make_cuda_forward(
    const HostWeights& weights, int max_context, int batch, bool graphs,
    const std::function<void(const std::string&)>& notice,
    const std::function<void(size_t, size_t, const std::string&)>& progress) {
  if (!cuda::cuda_available()) throw DeviceError("--device cuda: no CUDA device is available");
  const char* env = std::getenv("AFQ_CUDA_GRAPHS");
  if (env && std::string(env) == "0") graphs = false;
  return std::make_unique<CudaLlama>(weights, max_context, batch, graphs, notice, progress);
}

#endif  // AFQ_HAVE_CUDA

}  // namespace afq::model_detail
