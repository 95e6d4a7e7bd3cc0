// The Llama-family forward pass on the CPU, after transformers' modeling_llama.py (Qwen2 adds q/k/v
// biases, Qwen3 q/k RMSNorm per head, Mistral a sliding window). Activations are float32; all
// buffers are sized once per chunk length, so a decode step allocates nothing.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numbers>
#include <nlohmann/json.hpp>

#include "afq/cpu.h"
#include "afq/error.h"
#include "afq/model.h"
#include "afq/quant_config.h"
#include "afq/safetensors.h"
#include "src/model/llama_layers.h"

#ifdef AFQ_HAVE_CUDA
#include "afq/cuda.h"
#endif

namespace afq {

namespace fs = std::filesystem;

namespace {

using model_detail::Layer;

Tensor to_f32(const Tensor& t) { return to_dtype(t, DType::F32); }

// y = x / sqrt(mean(x^2) + eps) * weight, in float32 (LlamaRMSNorm).
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* y) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i]) * x[i];
  const float inv = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = weight[i] * (x[i] * inv);
}

// rotate_half convention: element i pairs with i + head_dim/2.
void apply_rope(float* head, int head_dim, const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float a = head[i], b = head[i + half];
    head[i] = a * cos[i] - b * sin[i];
    head[i + half] = b * cos[i] + a * sin[i];
  }
}

}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i)
    inv[i] = 1.0f / std::pow(c.rope_theta, static_cast<float>(2 * i) / static_cast<float>(c.head_dim));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScaling::Type::Linear) {
    for (float& f : inv) f /= s.factor;
  } else if (s.type == RopeScaling::Type::Llama3) {
    const float old_len = static_cast<float>(s.original_max_position_embeddings);
    const float low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
    for (float& f : inv) {
      const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
      if (wavelen > low_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

struct Model::Impl {
  ModelConfig cfg;
  Checkpoint checkpoint;  // keeps the mapped weights alive
  std::optional<QuantConfig> quant;
  Tensor embed;  // [vocab, hidden] float, or undefined when quantized
  std::optional<QuantizedWeight> embed_q;
  std::vector<Layer> layers;
  Tensor final_norm;  // F32 [hidden]
  Linear lm_head;     // [vocab, hidden]; the embedding itself when tied
  int max_ctx = 0;
  int batch = 1;                // sequences, each with its own KV cache
  std::vector<float> inv_freq;  // [head_dim / 2]
  // [layers, batch, max_ctx, kv_heads * head_dim]; empty on a device.
  std::vector<float> k_cache, v_cache;
  std::unique_ptr<model_detail::DeviceForward> device_forward;  // set when the model runs on a device
  // Activations for a chunk of `rows` tokens.
  int64_t rows = 0;
  std::vector<float> x, xn, q, k, v, att, proj, gate, up, scores;
  // Where each row of the pass goes: its sequence and its position there.
  std::vector<int64_t> row_sequence, row_position;

  Linear load_linear(const std::string& module);
  void embed_row(int32_t token, float* out) const;
  void ensure_rows(int64_t n);
  void layer_forward(int l, int64_t n);
  // The rows of tokens through embedding, layers, final norm and lm_head (of every row when
  // all_logits, else of the last), after row_sequence and row_position are set.
  Tensor run(const int32_t* tokens, int64_t n, bool all_logits);
};

Linear Model::Impl::load_linear(const std::string& module) {
  Linear linear;
  linear.name = module;
  if (checkpoint.contains(module + ".scales")) {
    const std::string where = checkpoint.dir().string() + ": " + module;
    if (!quant) throw Error(where + " is quantized but config.json has no quantization settings");
    auto settings = quant->for_module(module);
    if (!settings) throw Error(where + " is quantized but config.json says it stays in float");
    std::string biases = module + ".biases";
    if (!checkpoint.contains(biases)) biases = module + ".qbiases";
    QuantizedWeight q{checkpoint.tensor(module + ".weight"), checkpoint.tensor(module + ".scales"),
                      checkpoint.tensor(biases), settings->bits, settings->group_size};
    if (q.weight.dtype() == DType::I32) q.weight = Tensor::borrow(DType::U32, q.weight.shape(), q.weight.bytes(), nullptr);
    validate(q, where);
    linear.quantized = std::move(q);
  } else {
    linear.weight = checkpoint.tensor(module + ".weight");
    if (linear.weight.ndim() != 2 || !is_float(linear.weight.dtype()))
      throw Error(checkpoint.dir().string() + ": " + module + ".weight must be a 2-D float tensor");
    if (linear.weight.dtype() == DType::F64) linear.weight = to_f32(linear.weight);
  }
  if (checkpoint.contains(module + ".bias")) linear.bias = to_f32(checkpoint.tensor(module + ".bias"));
  return linear;
}

void Model::Impl::embed_row(int32_t token, float* out) const {
  if (token < 0 || token >= cfg.vocab_size)
    throw Error("token id " + std::to_string(token) + " is outside the vocabulary of " + std::to_string(cfg.vocab_size));
  if (embed_q) {
    dequantize_row(*embed_q, token, out);
    return;
  }
  for (int i = 0; i < cfg.hidden_size; ++i) out[i] = float_at(embed, int64_t{token} * cfg.hidden_size + i);
}

void Model::Impl::ensure_rows(int64_t n) {
  if (n <= rows) return;
  rows = n;
  const int64_t h = cfg.hidden_size, qd = int64_t{cfg.num_heads} * cfg.head_dim,
                kvd = int64_t{cfg.num_kv_heads} * cfg.head_dim, inter = cfg.intermediate_size;
  x.assign(n * h, 0);
  xn.assign(n * h, 0);
  q.assign(n * qd, 0);
  k.assign(n * kvd, 0);
  v.assign(n * kvd, 0);
  att.assign(n * qd, 0);
  proj.assign(n * h, 0);
  gate.assign(n * inter, 0);
  up.assign(n * inter, 0);
}

void Model::Impl::layer_forward(int l, int64_t n) {
  const ModelConfig& c = cfg;
  Layer& L = layers[l];
  const int64_t h = c.hidden_size, hd = c.head_dim, qd = int64_t{c.num_heads} * hd, kvd = int64_t{c.num_kv_heads} * hd;

  // hidden = input_layernorm(x); q, k, v projections.
  for (int64_t t = 0; t < n; ++t) rms_norm(&x[t * h], L.input_norm.data<float>(), h, c.rms_norm_eps, &xn[t * h]);
  L.q.forward(xn.data(), n, q.data());
  L.k.forward(xn.data(), n, k.data());
  L.v.forward(xn.data(), n, v.data());

  // Qwen3: q_norm / k_norm over each head; then rotary embeddings on q and k.
  std::vector<float> cos(hd / 2), sin(hd / 2), tmp(hd);
  for (int64_t t = 0; t < n; ++t) {
    const float pos = static_cast<float>(row_position[t]);
    for (int64_t i = 0; i < hd / 2; ++i) {
      const float angle = pos * inv_freq[i];
      cos[i] = std::cos(angle);
      sin[i] = std::sin(angle);
    }
    for (int head = 0; head < c.num_heads; ++head) {
      float* qh = &q[t * qd + head * hd];
      if (L.q_norm.defined()) {
        rms_norm(qh, L.q_norm.data<float>(), hd, c.rms_norm_eps, tmp.data());
        std::copy(tmp.begin(), tmp.end(), qh);
      }
      apply_rope(qh, static_cast<int>(hd), cos.data(), sin.data());
    }
    for (int head = 0; head < c.num_kv_heads; ++head) {
      float* kh = &k[t * kvd + head * hd];
      if (L.k_norm.defined()) {
        rms_norm(kh, L.k_norm.data<float>(), hd, c.rms_norm_eps, tmp.data());
        std::copy(tmp.begin(), tmp.end(), kh);
      }
      apply_rope(kh, static_cast<int>(hd), cos.data(), sin.data());
    }
  }
  // Append k, v to the caches of the rows' sequences.
  auto cache_row = [&](std::vector<float>& cache, int64_t t) {
    return &cache[((int64_t{l} * batch + row_sequence[t]) * max_ctx + row_position[t]) * kvd];
  };
  for (int64_t t = 0; t < n; ++t) {
    std::memcpy(cache_row(k_cache, t), &k[t * kvd], kvd * sizeof(float));
    std::memcpy(cache_row(v_cache, t), &v[t * kvd], kvd * sizeof(float));
  }

  // Causal attention with GQA (and Mistral's window): softmax(q k^T / sqrt(hd)) v per head.
  const int group = c.num_heads / c.num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  cpu::parallel_for(n * c.num_heads, [&](int64_t begin, int64_t end) {
    std::vector<float> p(max_ctx);
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / c.num_heads, head = job % c.num_heads;
      const int64_t last = row_position[t];  // attends to keys [first, last] of its sequence
      const float* kc = &k_cache[(int64_t{l} * batch + row_sequence[t]) * max_ctx * kvd];
      const float* vc = &v_cache[(int64_t{l} * batch + row_sequence[t]) * max_ctx * kvd];
      const int64_t first = c.sliding_window > 0 ? std::max<int64_t>(0, last - c.sliding_window + 1) : 0;
      const float* qh = &q[t * qd + head * hd];
      const int64_t kv_off = (head / group) * hd;
      float max_score = -INFINITY;
      for (int64_t s = first; s <= last; ++s) {
        const float* ks = kc + s * kvd + kv_off;
        float dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += qh[i] * ks[i];
        p[s] = dot * scale;
        max_score = std::max(max_score, p[s]);
      }
      float sum = 0;
      for (int64_t s = first; s <= last; ++s) {
        p[s] = std::exp(p[s] - max_score);
        sum += p[s];
      }
      float* out = &att[t * qd + head * hd];
      std::fill(out, out + hd, 0.0f);
      for (int64_t s = first; s <= last; ++s) {
        const float w = p[s] / sum;
        const float* vs = vc + s * kvd + kv_off;
        for (int64_t i = 0; i < hd; ++i) out[i] += w * vs[i];
      }
    }
  });

  // x = x + o_proj(attention).
  L.o.forward(att.data(), n, proj.data());
  for (int64_t i = 0; i < n * h; ++i) x[i] += proj[i];

  // x = x + down_proj(silu(gate_proj(h)) * up_proj(h)), h = post_attention_layernorm(x).
  for (int64_t t = 0; t < n; ++t) rms_norm(&x[t * h], L.post_norm.data<float>(), h, c.rms_norm_eps, &xn[t * h]);
  L.gate.forward(xn.data(), n, gate.data());
  L.up.forward(xn.data(), n, up.data());
  const int64_t inter_n = n * c.intermediate_size;
  for (int64_t i = 0; i < inter_n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  L.down.forward(gate.data(), n, proj.data());
  for (int64_t i = 0; i < n * h; ++i) x[i] += proj[i];
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ModelConfig& Model::config() const { return impl_->cfg; }
int Model::max_context() const { return impl_->max_ctx; }
int Model::batch() const { return impl_->batch; }
Device Model::device() const { return impl_->device_forward ? Device::Cuda : Device::Cpu; }
uint64_t Model::device_bytes() const { return impl_->device_forward ? impl_->device_forward->device_bytes() : 0; }

void Model::for_each_linear(const std::function<void(Linear&)>& fn) {
  for (Layer& L : impl_->layers)
    for (Linear* linear : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) fn(*linear);
  if (!impl_->cfg.tie_word_embeddings) fn(impl_->lm_head);
}

uint64_t Model::weight_bytes() const {
  uint64_t total = 0;
  auto add_linear = [&](const Linear& l) {
    if (l.quantized)
      total += l.quantized->weight.nbytes() + l.quantized->scales.nbytes() + l.quantized->biases.nbytes();
    else
      total += l.weight.nbytes();
  };
  for (const Layer& L : impl_->layers)
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) add_linear(*l);
  if (impl_->embed_q)
    total += impl_->embed_q->weight.nbytes() + impl_->embed_q->scales.nbytes() + impl_->embed_q->biases.nbytes();
  else
    total += impl_->embed.nbytes();
  if (!impl_->cfg.tie_word_embeddings) add_linear(impl_->lm_head);
  return total;
}

Tensor Model::Impl::run(const int32_t* tokens, int64_t n, bool all_logits) {
  ensure_rows(n);
  const int64_t h = cfg.hidden_size;
  for (int64_t t = 0; t < n; ++t) embed_row(tokens[t], &x[t * h]);
  for (int l = 0; l < cfg.num_layers; ++l) layer_forward(l, n);
  const int64_t first = all_logits ? 0 : n - 1, count = n - first;
  for (int64_t t = first; t < n; ++t)
    rms_norm(&x[t * h], final_norm.data<float>(), h, cfg.rms_norm_eps, &xn[(t - first) * h]);
  Tensor logits = Tensor::zeros(DType::F32, {count, cfg.vocab_size});
  lm_head.forward(xn.data(), count, logits.mutable_data<float>());
  return logits;
}

namespace {

void check_sequence(int sequence, int batch) {
  if (sequence < 0 || sequence >= batch)
    throw Error("sequence " + std::to_string(sequence) + " is outside the batch of " + std::to_string(batch) +
                " the model was loaded for");
}

}  // namespace

Tensor Model::forward(const int32_t* tokens, int64_t n, int64_t position, bool all_logits, int sequence) {
  Impl& m = *impl_;
  if (n <= 0) throw Error("forward: no tokens");
  check_sequence(sequence, m.batch);
  if (position < 0 || position + n > m.max_ctx)
    throw Error("context of " + std::to_string(position + n) + " tokens is past the KV cache of " +
                std::to_string(m.max_ctx) + " (raise --max-context)");
  if (m.device_forward) return m.device_forward->forward(tokens, n, position, all_logits, sequence);
  m.row_sequence.assign(n, sequence);
  m.row_position.resize(n);
  for (int64_t t = 0; t < n; ++t) m.row_position[t] = position + t;
  return m.run(tokens, n, all_logits);
}

int32_t Model::forward_argmax(const int32_t* tokens, int64_t n, int64_t position, int sequence) {
  if (impl_->device_forward && n > 0 && position >= 0 && position + n <= impl_->max_ctx && sequence >= 0 &&
      sequence < impl_->batch)
    return impl_->device_forward->forward_argmax(tokens, n, position, sequence);
  const Tensor logits = forward(tokens, n, position, false, sequence);  // also reports bad arguments
  const float* row = logits.data<float>();
  return static_cast<int32_t>(std::max_element(row, row + logits.dim(1)) - row);
}

Tensor Model::forward_batch(const int32_t* tokens, const int64_t* positions, int64_t count) {
  Impl& m = *impl_;
  if (count < 1 || count > m.batch)
    throw Error("forward_batch: " + std::to_string(count) + " sequences, the model was loaded for 1 to " +
                std::to_string(m.batch));
  for (int64_t i = 0; i < count; ++i)
    if (positions[i] < 0 || positions[i] >= m.max_ctx)
      throw Error("forward_batch: sequence " + std::to_string(i) + " at position " + std::to_string(positions[i]) +
                  " is past the KV cache of " + std::to_string(m.max_ctx) + " (raise --max-context)");
  if (m.device_forward) return m.device_forward->forward_batch(tokens, positions, count);
  m.row_sequence.resize(count);
  m.row_position.assign(positions, positions + count);
  for (int64_t i = 0; i < count; ++i) m.row_sequence[i] = i;
  return m.run(tokens, count, /*all_logits=*/true);
}

std::vector<int32_t> Model::forward_batch_argmax(const int32_t* tokens, const int64_t* positions, int64_t count) {
  Impl& m = *impl_;
  if (m.device_forward && count >= 1 && count <= m.batch &&
      std::all_of(positions, positions + count, [&](int64_t p) { return p >= 0 && p < m.max_ctx; }))
    return m.device_forward->forward_batch_argmax(tokens, positions, count);
  const Tensor logits = forward_batch(tokens, positions, count);  // also reports bad arguments
  std::vector<int32_t> ids(static_cast<size_t>(count));
  const int64_t vocab = logits.dim(1);
  for (int64_t i = 0; i < count; ++i) {
    const float* row = logits.data<float>() + i * vocab;
    ids[i] = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
  }
  return ids;
}

std::vector<int32_t> Model::forward_batch_sample(const int32_t* tokens, const int64_t* positions, int64_t count,
                                                 const SamplingOptions& sampling, const float* uniforms) {
  Impl& m = *impl_;
  if (m.device_forward && count >= 1 && count <= m.batch &&
      std::all_of(positions, positions + count, [&](int64_t p) { return p >= 0 && p < m.max_ctx; }))
    return m.device_forward->forward_batch_sample(tokens, positions, count, sampling, uniforms);
  const Tensor logits = forward_batch(tokens, positions, count);  // also reports bad arguments
  std::vector<int32_t> ids(static_cast<size_t>(count));
  const int64_t vocab = logits.dim(1);
  for (int64_t i = 0; i < count; ++i)
    ids[i] =
        sample_in_token_order({logits.data<float>() + i * vocab, static_cast<size_t>(vocab)}, sampling, uniforms[i]);
  return ids;
}

Model Model::load(const fs::path& dir, const LoadOptions& options) {
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.cfg = read_model_config(dir / "config.json");
  const ModelConfig& c = m.cfg;
  m.checkpoint = Checkpoint::open(dir);
  {
    std::ifstream in(dir / "config.json");
    m.quant = read_quant_config(nlohmann::json::parse(in), (dir / "config.json").string());
  }
  if (options.quantize && m.quant)
    throw Error(dir.string() + ": the checkpoint is already quantized; --bits applies to float checkpoints only");

  auto norm = [&](const std::string& name) { return to_f32(m.checkpoint.tensor(name)); };
  // Embedding: float, or quantized (mlx-lm quantizes it; a lookup dequantizes one row).
  if (m.checkpoint.contains("model.embed_tokens.scales")) {
    Linear e = m.load_linear("model.embed_tokens");
    m.embed_q = std::move(e.quantized);
  } else {
    m.embed = m.checkpoint.tensor("model.embed_tokens.weight");
  }
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer L;
    L.input_norm = norm(p + "input_layernorm.weight");
    L.post_norm = norm(p + "post_attention_layernorm.weight");
    if (c.qk_norm) {
      L.q_norm = norm(p + "self_attn.q_norm.weight");
      L.k_norm = norm(p + "self_attn.k_norm.weight");
    }
    L.q = m.load_linear(p + "self_attn.q_proj");
    L.k = m.load_linear(p + "self_attn.k_proj");
    L.v = m.load_linear(p + "self_attn.v_proj");
    L.o = m.load_linear(p + "self_attn.o_proj");
    L.gate = m.load_linear(p + "mlp.gate_proj");
    L.up = m.load_linear(p + "mlp.up_proj");
    L.down = m.load_linear(p + "mlp.down_proj");
    m.layers.push_back(std::move(L));
  }
  m.final_norm = norm("model.norm.weight");
  if (c.tie_word_embeddings || !m.checkpoint.contains("lm_head.weight")) {
    // Tied: the output layer is the input embedding used as a linear layer (quantized or not).
    m.lm_head.name = "model.embed_tokens";
    if (m.embed_q) m.lm_head.quantized = m.embed_q; else m.lm_head.weight = m.embed;
  } else {
    m.lm_head = m.load_linear("lm_head");
  }

  Model model(std::move(impl));
  // Quantize on load: one walk over the named linear layers (lm_head stays float, as transformers).
  // For the GPU the device computes it, with the same bytes as the CPU's (afq::cuda::quantize).
  auto quantize_on_load = [&options](const Tensor& weight, const QuantizeOnLoad& spec) {
#ifdef AFQ_HAVE_CUDA
    // (Without a device the CPU quantizes, and the upload below says that there is none.)
    if (options.device == Device::Cuda && cuda::cuda_available())
      return cuda::quantize(weight, spec.bits, spec.group_size, spec.method);
#endif
    return quantize(weight, spec.bits, spec.group_size, spec.method);
  };
  if (options.quantize) {
    const QuantizeOnLoad& spec = *options.quantize;
    auto quantizes = [&](const Linear& linear) {
      return !linear.quantized && linear.name != "lm_head" && !module_matches_any(linear.name, spec.exclude);
    };
    size_t to_quantize = 0;
    model.for_each_linear([&](Linear& linear) { to_quantize += quantizes(linear) ? 1 : 0; });
    int replaced = 0;
    model.for_each_linear([&](Linear& linear) {
      if (!quantizes(linear)) return;
      try {
        linear.quantized = quantize_on_load(linear.weight, spec);
      } catch (const Error&) {
        rethrow_with_context(dir.string() + ": " + linear.name + ".weight: ");
      }
      linear.weight = Tensor();
      ++replaced;
      if (options.progress) options.progress(size_t(replaced), to_quantize, "quantize " + linear.name);
    });
    if (options.notice) {
      if (replaced == 0)
        options.notice("warning: --bits given but no linear layer was quantized (all excluded?)");
      else
        options.notice("quantized " + std::to_string(replaced) + " linear layers on load to " +
                       std::to_string(spec.bits) + " bits, group size " + std::to_string(spec.group_size) + " (" +
                       std::string(quant_method_name(spec.method)) + ")");
    }
  }
  if (options.dequantize) {
    int restored = 0;
    model.for_each_linear([&](Linear& linear) {
      if (!linear.quantized) return;
      // To the scales' dtype, as transformers' MetalDequantize does.
      linear.weight = dequantize(*linear.quantized, linear.quantized->scales.dtype());
      linear.quantized.reset();
      ++restored;
    });
    Impl& mi = *model.impl_;
    if (mi.embed_q) {
      mi.embed = dequantize(*mi.embed_q, mi.embed_q->scales.dtype());
      if (mi.lm_head.quantized && mi.lm_head.name == "model.embed_tokens") {
        mi.lm_head.quantized.reset();
        mi.lm_head.weight = mi.embed;
      }
      mi.embed_q.reset();
      ++restored;
    }
    if (options.notice) options.notice("dequantized " + std::to_string(restored) + " modules to float");
  }

  Impl& mi = *model.impl_;
  mi.max_ctx = options.max_context > 0 ? options.max_context : std::min(c.max_position_embeddings, 4096);
  mi.inv_freq = rope_inv_freq(c);
  if (options.batch < 1 || options.batch > kMaxBatch)
    throw Error("the batch must be 1 to " + std::to_string(kMaxBatch) + " sequences, got " +
                std::to_string(options.batch));
  mi.batch = options.batch;
  if (options.device == Device::Cuda) {
    const model_detail::HostWeights weights{c, mi.embed, mi.embed_q, mi.layers, mi.final_norm, mi.lm_head, mi.inv_freq};
    mi.device_forward = model_detail::make_cuda_forward(weights, mi.max_ctx, mi.batch, options.cuda_graphs,
                                                        options.notice, options.progress);
    return model;
  }
  const size_t cache = size_t(c.num_layers) * mi.batch * mi.max_ctx * c.num_kv_heads * c.head_dim;
  mi.k_cache.assign(cache, 0.0f);
  mi.v_cache.assign(cache, 0.0f);
  return model;
}

}  // namespace afq
