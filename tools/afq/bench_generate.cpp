// `afq bench generate`: prompt and decode speed of a whole model on the CPU or the GPU, beside the
// decode roofline (bytes read per token over the measured read bandwidth; on the GPU the
// device-to-device copy bandwidth). The model is random, in the
// shape of a real one, written as an mlx-lm checkpoint (quantized linears and embedding, as
// mlx-community ships them) to a temporary folder and loaded the way users load checkpoints.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "afq/cpu.h"
#ifdef AFQ_HAVE_CUDA
#include "afq/cuda_ops.h"
#endif
#include "afq/error.h"
#include "afq/half.h"
#include "afq/model.h"
#include "afq/safetensors.h"
#include "bench_qmm.h"
#include "commands.h"

#include <unistd.h>

namespace afq::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Shape {
  const char* name;
  int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab;
  bool tied;
};

constexpr Shape kShapes[] = {
    {"llama-3.2-1b", 2048, 8192, 16, 32, 8, 64, 128256, true},
    {"llama-3.2-3b", 3072, 8192, 28, 24, 8, 128, 128256, true},
    {"llama-3-8b", 4096, 14336, 32, 32, 8, 128, 128256, false},
};

struct Options {
  std::string shape = "llama-3.2-1b";
  int bits = 4;
  int group_size = 64;
  int prompt_tokens = 512;
  int decode_tokens = 32;
  int batch = 1;  // sequences decoded together
  bool sample = false;  // decode steps draw at temperature 0.8, top-p 0.95 instead of the argmax
  int threads = 0;
  std::string device = "cpu";
  std::string dir;  // where the random checkpoint goes; a temporary folder by default
};

// Fast deterministic fill (splitmix64): random q's, so no kernel gets an easy pattern.
struct Random {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

// Writes config.json and a random quantized checkpoint of `shape` into dir.
void write_random_checkpoint(const fs::path& dir, const Shape& s, const Options& o) {
  nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", s.hidden},
      {"intermediate_size", s.intermediate}, {"num_hidden_layers", s.layers}, {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads}, {"head_dim", s.head_dim}, {"vocab_size", s.vocab},
      {"max_position_embeddings", 8192}, {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0},
      {"tie_word_embeddings", s.tied}, {"torch_dtype", "bfloat16"}, {"hidden_act", "silu"},
      {"quantization", {{"group_size", o.group_size}, {"bits", o.bits}}}};
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);

  std::vector<TensorSpec> plan;
  auto add_quantized = [&](const std::string& name, int64_t n, int64_t k) {
    plan.push_back({name + ".weight", DType::U32, {n, k * o.bits / 32}});
    plan.push_back({name + ".scales", DType::BF16, {n, k / o.group_size}});
    plan.push_back({name + ".biases", DType::BF16, {n, k / o.group_size}});
  };
  const int64_t h = s.hidden, q = int64_t{s.heads} * s.head_dim, kv = int64_t{s.kv_heads} * s.head_dim;
  add_quantized("model.embed_tokens", s.vocab, h);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l);
    plan.push_back({p + ".input_layernorm.weight", DType::BF16, {h}});
    plan.push_back({p + ".post_attention_layernorm.weight", DType::BF16, {h}});
    add_quantized(p + ".self_attn.q_proj", q, h);
    add_quantized(p + ".self_attn.k_proj", kv, h);
    add_quantized(p + ".self_attn.v_proj", kv, h);
    add_quantized(p + ".self_attn.o_proj", h, q);
    add_quantized(p + ".mlp.gate_proj", s.intermediate, h);
    add_quantized(p + ".mlp.up_proj", s.intermediate, h);
    add_quantized(p + ".mlp.down_proj", h, s.intermediate);
  }
  plan.push_back({"model.norm.weight", DType::BF16, {h}});
  if (!s.tied) add_quantized("lm_head", s.vocab, h);

  CheckpointWriter writer(dir, plan);
  Random rng;
  for (const TensorSpec& spec : plan) {
    Tensor t = Tensor::zeros(spec.dtype, spec.shape);
    const bool is_scale = spec.name.ends_with(".scales"), is_bias = spec.name.ends_with(".biases");
    if (spec.dtype == DType::U32) {
      for (auto& w : std::span(t.mutable_data<uint32_t>(), t.numel())) w = static_cast<uint32_t>(rng.next());
    } else {
      // Norm weights 1; scales about 0.02 / 2^bits of either sign; biases centre the range.
      const float levels = static_cast<float>((1 << o.bits) - 1);
      for (auto& v : std::span(t.mutable_data<uint16_t>(), t.numel())) {
        const float r = static_cast<float>(rng.next() >> 40) / static_cast<float>(1 << 24);  // [0, 1)
        const float scale = 0.04f / levels * (0.5f + r);
        v = f32_to_bf16(is_scale ? scale : is_bias ? -0.02f * (0.5f + r) : 1.f);
      }
    }
    writer.write(spec.name, t);
  }
  writer.finish();
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double gpu_copy_bandwidth() {
#ifdef AFQ_HAVE_CUDA
  return cuda::measure_copy_bandwidth();
#else
  throw Error("[bench generate] --device cuda: afq was built without CUDA");
#endif
}

void run(const Options& o) {
  const Shape* shape = nullptr;
  for (const Shape& s : kShapes)
    if (o.shape == s.name) shape = &s;
  if (!shape) throw Error("[bench generate] unknown --shape \"" + o.shape + "\"; known: llama-3.2-1b, llama-3.2-3b, llama-3-8b");
  check_bits(o.bits);
  check_group_size(o.group_size);
  if (o.prompt_tokens < 1 || o.decode_tokens < 1)
    throw Error("[bench generate] --prompt-tokens and --decode-tokens must be at least 1");
  if (o.batch < 1 || o.batch > kMaxBatch)
    throw Error("[bench generate] --batch must be 1 to " + std::to_string(kMaxBatch) + ", got " +
                std::to_string(o.batch));
  if (o.threads > 0) cpu::set_num_threads(o.threads);
  if (o.device != "cpu" && o.device != "cuda") throw Error("[bench generate] --device must be cpu or cuda, got '" + o.device + "'");

  const bool temporary = o.dir.empty();
  const fs::path dir = temporary ? fs::temp_directory_path() / ("afq-bench-" + std::to_string(::getpid())) : fs::path(o.dir);
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ignored;
      if (!dir.empty()) fs::remove_all(dir, ignored);
    }
  } cleanup{temporary ? dir : fs::path()};
  if (!fs::exists(dir / "config.json")) write_random_checkpoint(dir, *shape, o);

  const bool on_gpu = o.device == "cuda";
  LoadOptions load;
  load.max_context = o.prompt_tokens + o.decode_tokens;
  load.device = on_gpu ? Device::Cuda : Device::Cpu;
  load.batch = o.batch;
  Model model = Model::load(dir, load);
  const ModelConfig& c = model.config();
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_tokens));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919) % c.vocab_size);

  // Warm-up: scratch and threads on the CPU; module loading, cuBLAS and clocks on the GPU.
  // The GPU warms up on the whole prompt: the large-M matmul path sets up cuBLAS on its first call.
  model.forward(prompt.data(), on_gpu ? o.prompt_tokens : std::min<int64_t>(16, o.prompt_tokens), 0);
  if (on_gpu) model.forward_argmax(prompt.data(), 1, 0);
  auto start = Clock::now();
  model.forward(prompt.data(), o.prompt_tokens, 0);
  const double prompt_s = seconds_since(start);
  // A batch: the other sequences get the same prompt (the first has it already); then decode
  // steps of all of them together.
  for (int b = 1; b < o.batch; ++b) model.forward(prompt.data(), o.prompt_tokens, 0, false, b);
  std::vector<double> steps;
  SamplingOptions sampling;
  sampling.temperature = 0.8f;
  sampling.top_p = 0.95f;
  std::vector<int32_t> tokens(static_cast<size_t>(o.batch), prompt.back());
  std::vector<int64_t> positions(static_cast<size_t>(o.batch));
  for (int i = 0; i < o.decode_tokens; ++i) {
    std::fill(positions.begin(), positions.end(), o.prompt_tokens + i);
    start = Clock::now();
    // On the GPU a decode step as generate runs it greedily: only the token ids come back.
    if (o.sample) {
      std::vector<float> uniforms(tokens.size());
      for (size_t b = 0; b < uniforms.size(); ++b) uniforms[b] = static_cast<float>((i * 7 + b * 13) % 97) / 97.0f;
      model.forward_batch_sample(tokens.data(), positions.data(), o.batch, sampling, uniforms.data());
    } else if (o.batch == 1) {
      if (on_gpu)
        model.forward_argmax(tokens.data(), 1, positions[0]);
      else
        model.forward(tokens.data(), 1, positions[0]);
    } else {
      if (on_gpu)
        model.forward_batch_argmax(tokens.data(), positions.data(), o.batch);
      else
        model.forward_batch(tokens.data(), positions.data(), o.batch);
    }
    steps.push_back(seconds_since(start));
    for (size_t b = 0; b < tokens.size(); ++b)
      tokens[b] = static_cast<int32_t>((tokens[b] * 31 + 17 + int32_t(b)) % c.vocab_size);
  }
  std::sort(steps.begin(), steps.end());
  const double decode_s = steps[steps.size() / 2];

  // Decode reads every weight once and the KV cache (K and V: float32 on the CPU, bf16 on the
  // GPU) up to the position.
  const double kv_element_bytes = on_gpu ? 2.0 : 4.0;
  const double read_bw = on_gpu ? gpu_copy_bandwidth() : measure_cpu_read_bandwidth();
  // A step of a batch reads the weights once and every sequence's KV cache.
  const double kv_bytes = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * kv_element_bytes *
                          (o.prompt_tokens + o.decode_tokens / 2) * o.batch;
  const double step_bytes = static_cast<double>(model.weight_bytes()) + kv_bytes;
  const double roofline = read_bw / step_bytes * o.batch;  // tokens/s of all sequences
  if (on_gpu) {
    fmt::print("afq bench generate (cuda): {} at {} bits group {}, device memory {:.1f} MiB\n", shape->name, o.bits,
               o.group_size, model.device_bytes() / 1048576.0);
    fmt::print("weights {:.1f} MiB, KV read per decode step {:.1f} MiB, device-to-device copy {:.1f} GB/s\n",
               model.weight_bytes() / 1048576.0, kv_bytes / 1048576.0, read_bw / 1e9);
  } else {
    fmt::print("afq bench generate (cpu): {} at {} bits group {}, {} threads, SIMD {}\n", shape->name, o.bits,
               o.group_size, cpu::num_threads(), cpu::simd_target_name());
    fmt::print("weights {:.1f} MiB, KV read per decode step {:.1f} MiB, read bandwidth {:.1f} GB/s\n",
               model.weight_bytes() / 1048576.0, kv_bytes / 1048576.0, read_bw / 1e9);
  }
  fmt::print("prompt  {:5d} tokens: {:8.1f} tokens/s ({:.2f} s to the first token)\n", o.prompt_tokens,
             o.prompt_tokens / prompt_s, prompt_s);
  const std::string batch =
      (o.batch > 1 ? fmt::format(" x batch {}", o.batch) : std::string()) + (o.sample ? ", sampled" : "");
  fmt::print("decode  {:5d} tokens{}: {:8.2f} tokens/s (median step {:.1f} ms); roofline {:.2f} tokens/s: {:.0f}%\n",
             o.decode_tokens, batch, o.batch / decode_s, decode_s * 1e3, roofline,
             100.0 * o.batch / decode_s / roofline);
}

}  // namespace

void add_bench_generate_command(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand("generate", "Prompt and decode tokens/s of a random model of a real shape (CPU or GPU)");
  cmd->add_option("--shape", o->shape, "llama-3.2-1b, llama-3.2-3b or llama-3-8b")->capture_default_str();
  cmd->add_option("--bits", o->bits, "Bits per weight: 2, 3, 4, 5, 6 or 8")->capture_default_str();
  cmd->add_option("--group-size", o->group_size, "Group size: 32, 64 or 128")->capture_default_str();
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Tokens in the timed prompt")->capture_default_str();
  cmd->add_option("--decode-tokens", o->decode_tokens, "Timed decode steps (the median is reported)")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Sequences decoded together (each prompted with --prompt-tokens first)")
      ->capture_default_str();
  cmd->add_flag(
      "--sample", o->sample,
      "Decode steps draw tokens (temperature 0.8, top-p 0.95; on the GPU, on the device) instead of the argmax");
  cmd->add_option("--threads", o->threads, "CPU threads (default: all cores or AFQ_NUM_THREADS)");
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--dir", o->dir, "Keep the random checkpoint in this folder (reused when present)");
  cmd->callback([o] { run(*o); });
}

}  // namespace afq::cli
