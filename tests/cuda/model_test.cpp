// The whole forward pass on the GPU (Model::load with Device::Cuda) against the CPU one on the
// fixture models of every architecture (tests/data/models, the shipped tinyshakes-5m and its
// mlx-lm 4/6-bit copy with a quantized tied embedding): greedy tokens equal for 32 steps, logits
// within bf16 tolerance (the GPU's activations and KV cache are bf16, the CPU's float32; the
// fixture weights are bf16 on both). Also chunked prompts, prompts continued at a position,
// generate() and perplexity() through the GPU, and the out-of-memory message. Every test skips
// when no CUDA device is present (CI has none).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "afq/cuda.h"
#include "afq/error.h"
#include "afq/generate.h"
#include "afq/model.h"
#include "afq/perplexity.h"
#include "afq/safetensors.h"
#include "afq/tokenizer.h"

namespace afq {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!cuda::cuda_available()) GTEST_SKIP() << "no CUDA device"

const std::string kModels = AFQ_TEST_DATA "/models/";
const std::string kShipped = AFQ_SOURCE_DIR "/models/tinyshakes-5m";

// Relative error of the logits (Frobenius norms) that bf16 activations stay within: each bf16
// rounding is 2^-9 relative, and a token's logits pass through about ten of them per layer.
// The measured figures are printed ([ info ]) so that this bound can be tightened.
constexpr double kLogitsTolerance = 3e-2;

std::vector<int32_t> fixture_prompt(const std::string& expected_file) {
  SafetensorsFile f = SafetensorsFile::open(expected_file);
  Tensor p = f.tensor("prompt");
  return {p.data<int32_t>(), p.data<int32_t>() + p.numel()};
}

double relative_error(const Tensor& a, const Tensor& b) {
  double err = 0, norm = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double d = double(float_at(a, i)) - float_at(b, i);
    err += d * d;
    norm += double(float_at(b, i)) * float_at(b, i);
  }
  return std::sqrt(err / norm);
}

int32_t argmax(const Tensor& logits) {
  const float* row = logits.data<float>() + (logits.dim(0) - 1) * logits.dim(1);
  return static_cast<int32_t>(std::max_element(row, row + logits.dim(1)) - row);
}

// The CPU's margin between its best and second-best logit (last row): how close a divergence was to a tie.
std::string margin(const Tensor& logits) {
  const float* last = logits.data<float>() + (logits.dim(0) - 1) * logits.dim(1);
  std::vector<float> row(last, last + logits.dim(1));
  std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<float>());
  return "CPU top-2 margin " + std::to_string(row[0] - row[1]);
}

Model load(const std::string& dir, Device device, int max_context = 0) {
  LoadOptions options;
  options.device = device;
  options.max_context = max_context;
  return Model::load(dir, options);
}

struct Fixture {
  std::string name, dir, expected;
};

void PrintTo(const Fixture& f, std::ostream* os) { *os << f.name; }

class GpuMatchesCpu : public ::testing::TestWithParam<Fixture> {};

TEST_P(GpuMatchesCpu, LogitsWithinBf16AndGreedyTokensEqualFor32Steps) {
  SKIP_WITHOUT_GPU();
  const Fixture& f = GetParam();
  const std::vector<int32_t> prompt = fixture_prompt(f.expected);
  const int64_t n = static_cast<int64_t>(prompt.size());
  Model cpu = load(f.dir, Device::Cpu), gpu = load(f.dir, Device::Cuda);
  ASSERT_EQ(gpu.device(), Device::Cuda);
  EXPECT_GT(gpu.device_bytes(), 0u);

  const Tensor cpu_logits = cpu.forward(prompt.data(), n, 0, /*all_logits=*/true);
  const Tensor gpu_logits = gpu.forward(prompt.data(), n, 0, /*all_logits=*/true);
  ASSERT_EQ(gpu_logits.shape(), cpu_logits.shape());
  const double prompt_error = relative_error(gpu_logits, cpu_logits);
  EXPECT_LT(prompt_error, kLogitsTolerance) << f.name;

  // Greedy decoding through both KV caches; the GPU's argmax runs on the device.
  int32_t cpu_next = argmax(cpu_logits), gpu_next = gpu.forward_argmax(prompt.data(), n, 0);
  Tensor cpu_last = cpu_logits;
  double worst_step_error = 0;
  for (int step = 0; step < 32; ++step) {
    ASSERT_EQ(gpu_next, cpu_next) << f.name << ": greedy tokens differ at step " << step << "; " << margin(cpu_last);
    const Tensor c = cpu.forward(&cpu_next, 1, n + step);
    cpu_last = c;
    // The GPU runs the same step twice: logits for the comparison, then the device argmax, which
    // rewrites the same cache position with the same values.
    const Tensor g = gpu.forward(&gpu_next, 1, n + step);
    worst_step_error = std::max(worst_step_error, relative_error(g, c));
    const int32_t token = gpu_next;
    gpu_next = gpu.forward_argmax(&token, 1, n + step);
    cpu_next = argmax(c);
    EXPECT_EQ(argmax(g), gpu_next) << f.name << " step " << step;
  }
  EXPECT_LT(worst_step_error, kLogitsTolerance) << f.name;
  std::printf("[ info     ] %s: logits relative error prompt %.2e, decode steps at most %.2e\n", f.name.c_str(),
              prompt_error, worst_step_error);
}

INSTANTIATE_TEST_SUITE_P(
    EveryFixture, GpuMatchesCpu,
    ::testing::Values(Fixture{"llama3_rope", kModels + "llama3-rope", kModels + "llama3-rope.expected.safetensors"},
                      Fixture{"llama_linear_tied", kModels + "llama-linear-tied",
                              kModels + "llama-linear-tied.expected.safetensors"},
                      Fixture{"mistral_window", kModels + "mistral-window",
                              kModels + "mistral-window.expected.safetensors"},
                      Fixture{"qwen2_bias", kModels + "qwen2-bias", kModels + "qwen2-bias.expected.safetensors"},
                      Fixture{"qwen3_qknorm", kModels + "qwen3-qknorm", kModels + "qwen3-qknorm.expected.safetensors"},
                      Fixture{"llama3_rope_metal_b4_g32", kModels + "llama3-rope-metal-b4-g32",
                              kModels + "llama3-rope-metal-b4-g32.expected.safetensors"},
                      Fixture{"tinyshakes_5m", kShipped, kModels + "tinyshakes-5m.expected.safetensors"},
                      Fixture{"tinyshakes_5m_mlx_mixed_4_6", AFQ_TEST_DATA "/tinyshakes-5m-mlx-mixed_4_6",
                              kModels + "tinyshakes-5m.expected.safetensors"}),
    [](const ::testing::TestParamInfo<Fixture>& info) { return info.param.name; });

// Decode steps replayed from the captured CUDA graph (the default: direct at the first step,
// captured at the second) against the same steps launched kernel by kernel: the same logits but
// for the decode attention's split of the keys (sized for the whole context in the graph), also
// past Mistral's window and with a quantized embedding; and a step re-run at an earlier position.
TEST(GpuForward, DecodeStepsFromTheCudaGraphMatchLaunchingThemOneByOne) {
  SKIP_WITHOUT_GPU();
  for (const std::string& dir : {kModels + "mistral-window", kModels + "qwen3-qknorm",
                                std::string(AFQ_TEST_DATA "/tinyshakes-5m-mlx-mixed_4_6")}) {
    LoadOptions options;
    options.device = Device::Cuda;
    options.max_context = 200;
    Model graphs = Model::load(dir, options);
    options.cuda_graphs = false;
    Model direct = Model::load(dir, options);
    std::vector<int32_t> tokens = {1, 17, 42};
    graphs.forward(tokens.data(), 3, 0);
    int32_t next = direct.forward_argmax(tokens.data(), 3, 0);
    double worst = 0;
    for (int64_t position = 3; position < 150; ++position) {
      const Tensor a = graphs.forward(&next, 1, position), b = direct.forward(&next, 1, position);
      worst = std::max(worst, relative_error(a, b));
      ASSERT_EQ(graphs.forward_argmax(&next, 1, position), argmax(b)) << dir << " position " << position;
      next = argmax(b);
    }
    const Tensor again = graphs.forward(&next, 1, 10), expected = direct.forward(&next, 1, 10);
    EXPECT_LT(relative_error(again, expected), 1e-2) << dir << ": a step re-run at position 10";
    EXPECT_LT(worst, 1e-2) << dir;
    std::printf("[ info     ] %s: graph against direct decode steps, logits relative error at most %.2e\n",
                dir.c_str(), worst);
  }
}

// A batch of sequences decoding together on the GPU (one graph per number of sequences) against
// each sequence decoded alone on the GPU from the same tokens: prompts of different lengths, then
// steps of all three, then of the first two only; past Mistral's window, with Qwen3's q/k norms
// (whose batch is copied apart) and with quantized linears (where a batch takes another GEMV
// than one row does).
TEST(GpuForward, BatchedDecodeStepsMatchEachSequenceAlone) {
  SKIP_WITHOUT_GPU();
  constexpr int kSteps = 80, kStepsOfThree = 50;
  for (bool graphs : {true, false})
    for (const std::string& dir : {kModels + "llama3-rope", kModels + "mistral-window", kModels + "qwen3-qknorm",
                                   std::string(AFQ_TEST_DATA "/tinyshakes-5m-mlx-mixed_4_6")}) {
      LoadOptions options;
      options.device = Device::Cuda;
      options.max_context = 120;
      options.cuda_graphs = graphs;
      Model alone = Model::load(dir, options);
      options.batch = 4;
      Model batch = Model::load(dir, options);
      const std::vector<std::vector<int32_t>> prompts = {{1, 17, 42}, {5, 6, 7, 8, 9, 10, 11}, {3}};
      // The batch: each step's tokens and logits, per sequence.
      std::vector<std::vector<int32_t>> fed(3);
      std::vector<std::vector<Tensor>> logits(3);
      std::vector<int32_t> next;
      std::vector<int64_t> positions;
      for (int i = 0; i < 3; ++i) {
        const int64_t n = static_cast<int64_t>(prompts[i].size());
        next.push_back(batch.forward_argmax(prompts[i].data(), n, 0, i));
        positions.push_back(n);
      }
      for (int step = 0; step < kSteps; ++step) {
        const int64_t count = step < kStepsOfThree ? 3 : 2;
        const Tensor all = batch.forward_batch(next.data(), positions.data(), count);
        const std::vector<int32_t> ids = batch.forward_batch_argmax(next.data(), positions.data(), count);
        const int64_t vocab = all.dim(1);
        for (int64_t i = 0; i < count; ++i) {
          Tensor row = Tensor::zeros(DType::F32, {1, vocab});
          std::copy(all.data<float>() + i * vocab, all.data<float>() + (i + 1) * vocab, row.mutable_data<float>());
          ASSERT_EQ(ids[i], argmax(row)) << dir << " sequence " << i << " step " << step;
          fed[i].push_back(next[i]);
          logits[i].push_back(std::move(row));
          next[i] = ids[i];
          ++positions[i];
        }
      }
      double worst = 0;
      int ties = 0;
      for (int i = 0; i < 3; ++i) {
        const int64_t n = static_cast<int64_t>(prompts[i].size());
        alone.forward(prompts[i].data(), n, 0);
        for (size_t step = 0; step < fed[i].size(); ++step) {
          const Tensor expected = alone.forward(&fed[i][step], 1, n + static_cast<int64_t>(step));
          worst = std::max(worst, relative_error(logits[i][step], expected));
          // The same token, or (quantized, where a batch takes another GEMV) one tied with it
          // within the kernels' rounding.
          const float* e = expected.data<float>();
          const int32_t mine = argmax(logits[i][step]), best = argmax(expected);
          const auto [low, high] = std::minmax_element(e, e + expected.numel());
          ASSERT_GE(e[mine], e[best] - 1e-2f * (*high - *low))
              << dir << " sequence " << i << " step " << step << ": token " << mine << " against " << best;
          ties += mine != best;
        }
      }
      EXPECT_LT(worst, 1e-2) << dir;
      EXPECT_LE(ties, 3) << dir;
      std::printf(
          "[ info     ] %s (graphs %s): batched against alone, logits relative error at most %.2e, "
          "%d near-tied tokens apart\n",
          dir.c_str(), graphs ? "on" : "off", worst, ties);
    }
}

// Prompts longer than the GPU's chunk of 512 rows run in passes; a prompt may also arrive in
// pieces at later positions (the prompt kernel then reads earlier keys from the cache).
TEST(GpuForward, ChunkedAndContinuedPromptsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  std::vector<int32_t> tokens(700);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7919 + 13) % 2048);
  Model cpu = load(kShipped, Device::Cpu, 1024), gpu = load(kShipped, Device::Cuda, 1024);
  const Tensor c = cpu.forward(tokens.data(), 700, 0, true);
  const Tensor g = gpu.forward(tokens.data(), 700, 0, true);
  EXPECT_LT(relative_error(g, c), kLogitsTolerance);
  EXPECT_EQ(gpu.forward_argmax(tokens.data(), 700, 0), argmax(c));

  gpu.forward(tokens.data(), 5, 0);
  const Tensor pieces = gpu.forward(tokens.data() + 5, 40, 5, true);
  const Tensor whole = cpu.forward(tokens.data(), 45, 0, true);
  Tensor whole_tail = Tensor::zeros(DType::F32, {40, whole.dim(1)});
  std::copy(whole.data<float>() + 5 * whole.dim(1), whole.data<float>() + 45 * whole.dim(1),
            whole_tail.mutable_data<float>());
  EXPECT_LT(relative_error(pieces, whole_tail), kLogitsTolerance);
}

TEST(GpuForward, GenerateAndPerplexityRunThroughTheGpu) {
  SKIP_WITHOUT_GPU();
  Model cpu = load(kShipped, Device::Cpu), gpu = load(kShipped, Device::Cuda);
  const Tokenizer tokenizer = Tokenizer::from_file(kShipped + "/tokenizer.json");
  const std::vector<int32_t> prompt = tokenizer.encode("ROMEO:");
  GenerateOptions options;
  options.max_tokens = 32;
  options.stop_at_eos = false;
  options.sampling.temperature = 0;
  auto ignore = [](std::string_view) {};
  const GenerateResult c = generate(cpu, tokenizer, prompt, options, ignore);
  const GenerateResult g = generate(gpu, tokenizer, prompt, options, ignore);
  EXPECT_EQ(g.tokens, c.tokens);
  // Sampling draws on the device: reproducible from the seed, and top-k 1 is greedy.
  options.sampling.temperature = 0.8f;
  options.sampling.top_p = 0.95f;
  options.sampling.seed = 1;
  const GenerateResult sampled = generate(gpu, tokenizer, prompt, options, ignore);
  EXPECT_EQ(sampled.tokens.size(), 32u);
  EXPECT_EQ(generate(gpu, tokenizer, prompt, options, ignore).tokens, sampled.tokens);
  options.sampling.seed = 2;
  EXPECT_NE(generate(gpu, tokenizer, prompt, options, ignore).tokens, sampled.tokens);
  options.sampling.top_k = 1;
  EXPECT_EQ(generate(gpu, tokenizer, prompt, options, ignore).tokens, c.tokens);
  options.sampling.top_k = 0;
  // A repetition penalty needs the history: those draws are the CPU sampler's on the logits.
  options.sampling.repetition_penalty = 1.2f;
  EXPECT_EQ(generate(gpu, tokenizer, prompt, options, ignore).tokens.size(), 32u);
  options.sampling.repetition_penalty = 1.0f;

  // A batch sampled on the device draws what each sequence draws alone with its seed (the
  // shipped model is float: a batch's logits equal each sequence's own).
  LoadOptions batch_options;
  batch_options.device = Device::Cuda;
  batch_options.batch = 3;
  Model batch = Model::load(kShipped, batch_options);
  const std::vector<std::vector<int32_t>> prompts = {prompt, tokenizer.encode("JULIET:"), tokenizer.encode("KING")};
  const std::vector<GenerateResult> together =
      generate_batch(batch, tokenizer, prompts, options, [](size_t, std::string_view) {});
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateOptions own = options;
    own.sampling.seed += i;
    EXPECT_EQ(together[i].tokens, generate(gpu, tokenizer, prompts[i], own, ignore).tokens) << "sequence " << i;
  }

  std::ifstream in(kShipped + "/valid.txt");
  std::stringstream text;
  text << in.rdbuf();
  std::vector<int32_t> tokens = tokenizer.encode(text.str(), false);
  tokens.resize(std::min<size_t>(tokens.size(), 3 * 256 + 1));
  const PerplexityResult pc = perplexity(cpu, tokens, 256), pg = perplexity(gpu, tokens, 256);
  EXPECT_NEAR(pg.perplexity, pc.perplexity, 1e-2 * pc.perplexity);
}

TEST(GpuForward, AModelThatDoesNotFitSaysHowMuchItNeeds) {
  SKIP_WITHOUT_GPU();
  try {
    load(kShipped, Device::Cuda, 1 << 30);  // a KV cache of 3 TiB
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("the model needs"), std::string::npos) << message;
    EXPECT_NE(message.find("free"), std::string::npos) << message;
    EXPECT_NE(message.find("--max-context"), std::string::npos) << message;
  }
}

TEST(GpuForward, RejectsTokensOutsideTheVocabulary) {
  SKIP_WITHOUT_GPU();
  Model gpu = load(kShipped, Device::Cuda, 64);
  const int32_t bad = 2048;
  EXPECT_THROW(gpu.forward(&bad, 1, 0), Error);
  EXPECT_THROW(gpu.forward_argmax(&bad, 1, 0), Error);
  const int32_t fine = 5;
  EXPECT_THROW(gpu.forward(&fine, 1, 64), Error);  // past the KV cache
}

}  // namespace
}  // namespace afq
