// afq's forward pass against transformers' own logits and greedy tokens (tests/data/models, made
// by scripts/device/make_model_fixtures.py with transformers 5.17 in float32).
#include "afq/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "afq/error.h"
#include "afq/safetensors.h"

namespace afq {
namespace {

const std::string kModels = AFQ_TEST_DATA "/models/";

struct Expected {
  std::vector<int32_t> prompt, greedy;
  Tensor logits;  // [prompt, vocab]
};

Expected expected(const std::string& name) {
  SafetensorsFile f = SafetensorsFile::open(kModels + name + ".expected.safetensors");
  Expected e;
  Tensor p = f.tensor("prompt"), g = f.tensor("greedy");
  e.prompt.assign(p.data<int32_t>(), p.data<int32_t>() + p.numel());
  e.greedy.assign(g.data<int32_t>(), g.data<int32_t>() + g.numel());
  e.logits = f.tensor("logits");
  return e;
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

int32_t argmax(const float* row, int64_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

// Greedy decoding one token at a time through the KV cache.
std::vector<int32_t> greedy(Model& model, const std::vector<int32_t>& prompt, int steps) {
  Tensor logits = model.forward(prompt.data(), static_cast<int64_t>(prompt.size()), 0);
  std::vector<int32_t> out;
  int64_t position = static_cast<int64_t>(prompt.size());
  for (int i = 0; i < steps; ++i) {
    int32_t next = argmax(logits.data<float>(), logits.dim(1));
    out.push_back(next);
    logits = model.forward(&next, 1, position++);
  }
  return out;
}

class TransformersParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TransformersParity, LogitsMatchAndGreedyTokensAreIdentical) {
  const std::string name = GetParam();
  Expected e = expected(name);
  Model model = Model::load(kModels + name);
  ASSERT_FALSE(name.ends_with("-metal-b4-g32"));
  Tensor logits = model.forward(e.prompt.data(), static_cast<int64_t>(e.prompt.size()), 0, /*all_logits=*/true);
  ASSERT_EQ(logits.shape(), e.logits.shape());
  EXPECT_LT(relative_error(logits, e.logits), 1e-4) << name;
  EXPECT_EQ(greedy(model, e.prompt, static_cast<int>(e.greedy.size())), e.greedy) << name;
}

INSTANTIATE_TEST_SUITE_P(EveryArchitecture, TransformersParity,
                         ::testing::Values("llama3-rope", "llama-linear-tied", "mistral-window", "qwen2-bias",
                                           "qwen3-qknorm"));

// transformers, without an Apple GPU, dequantizes a MetalConfig checkpoint to bf16 weights
// (MetalDequantize casts to the scales' dtype) and runs them; afq's --dequantize does the same.
TEST(MetalCheckpoint, DequantizedLoadMatchesTransformersLoadingIt) {
  Expected e = expected("llama3-rope-metal-b4-g32");
  LoadOptions options;
  options.dequantize = true;
  Model model = Model::load(kModels + "llama3-rope-metal-b4-g32", options);
  Tensor logits = model.forward(e.prompt.data(), static_cast<int64_t>(e.prompt.size()), 0, true);
  EXPECT_LT(relative_error(logits, e.logits), 1e-4);
  EXPECT_EQ(greedy(model, e.prompt, 32), e.greedy);
}

// Run quantized, the weights are exact float32 dequantizations, not bf16-rounded ones: the logits
// differ from transformers' by bf16 rounding of the weights only.
TEST(MetalCheckpoint, QuantizedKernelsStayWithinBf16RoundingOfTransformers) {
  Expected e = expected("llama3-rope-metal-b4-g32");
  Model model = Model::load(kModels + "llama3-rope-metal-b4-g32");
  Tensor logits = model.forward(e.prompt.data(), static_cast<int64_t>(e.prompt.size()), 0, true);
  EXPECT_LT(relative_error(logits, e.logits), 1e-2);
}

TEST(ShippedModel, TinyShakesMatchesTransformers) {
  Expected e = expected("tinyshakes-5m");
  Model model = Model::load(AFQ_SOURCE_DIR "/models/tinyshakes-5m");
  Tensor logits = model.forward(e.prompt.data(), static_cast<int64_t>(e.prompt.size()), 0, true);
  EXPECT_LT(relative_error(logits, e.logits), 1e-4);
  EXPECT_EQ(greedy(model, e.prompt, 32), e.greedy);
}

TEST(QuantizeOnLoad, EqualsLoadingTransformersPreQuantizedCheckpoint) {
  // transformers' MetalQuantize is the min/max rule, bit-exact with ours: quantizing the float
  // model on load must give exactly the logits of its pre-quantized checkpoint.
  Expected e = expected("llama3-rope");
  LoadOptions options;
  options.quantize = QuantizeOnLoad{4, 32, QuantMethod::MinMax, {}};
  Model on_load = Model::load(kModels + "llama3-rope", options);
  Model stored = Model::load(kModels + "llama3-rope-metal-b4-g32");
  const int64_t n = static_cast<int64_t>(e.prompt.size());
  Tensor a = on_load.forward(e.prompt.data(), n, 0, true);
  Tensor b = stored.forward(e.prompt.data(), n, 0, true);
  EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0);
  EXPECT_LT(on_load.weight_bytes(), Model::load(kModels + "llama3-rope").weight_bytes());
}

TEST(QuantizeOnLoad, ReportsProgressOncePerQuantizedLayerEndingAtTheTotal) {
  LoadOptions options;
  options.quantize = QuantizeOnLoad{4, 64, QuantMethod::Mlx, {"mlp.down_proj"}};
  std::vector<size_t> done;
  size_t total = 0;
  std::string last;
  options.progress = [&](size_t d, size_t t, const std::string& what) {
    done.push_back(d);
    total = t;
    last = what;
  };
  Model model = Model::load(AFQ_SOURCE_DIR "/models/tinyshakes-5m", options);
  const size_t layers = static_cast<size_t>(model.config().num_layers);
  ASSERT_EQ(total, 6 * layers);  // q, k, v, o, gate, up: down_proj excluded, lm_head kept
  ASSERT_EQ(done.size(), total);
  for (size_t i = 0; i < done.size(); ++i) EXPECT_EQ(done[i], i + 1);
  EXPECT_EQ(last.rfind("quantize model.layers.", 0), 0u) << last;
}

TEST(MlxCheckpoint, LoadsMlxLmMixedPrecisionWithQuantizedTiedEmbedding) {
  // MLX quantized tinyshakes-5m at 4 and 6 bits, embedding included: its logits stay close to
  // the float model's.
  Expected e = expected("tinyshakes-5m");
  Model model = Model::load(AFQ_TEST_DATA "/tinyshakes-5m-mlx-mixed_4_6");
  Tensor logits = model.forward(e.prompt.data(), static_cast<int64_t>(e.prompt.size()), 0, true);
  EXPECT_LT(relative_error(logits, e.logits), 0.1);
  EXPECT_LT(model.weight_bytes(), 3'500'000u);
}

// Each sequence of a batch decodes as it would alone: prompts of different lengths prefilled into
// their own caches, then steps of all sequences at once at their own positions.
void expect_batch_decodes_as_each_alone(const std::string& dir) {
  Expected e = expected(dir.substr(dir.rfind('/') + 1));
  const std::vector<std::vector<int32_t>> prompts = {
      {e.prompt.begin(), e.prompt.begin() + 3}, e.prompt, {e.prompt.begin() + 1, e.prompt.begin() + 6}};
  const int64_t count = static_cast<int64_t>(prompts.size());
  constexpr int kSteps = 6;
  // Alone: one model per sequence, token by token; the logits of every step kept.
  std::vector<std::vector<Tensor>> alone(prompts.size());
  std::vector<std::vector<int32_t>> tokens(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    Model model = Model::load(dir);
    alone[i].push_back(model.forward(prompts[i].data(), static_cast<int64_t>(prompts[i].size()), 0));
    for (int step = 0; step < kSteps; ++step) {
      tokens[i].push_back(argmax(alone[i].back().data<float>(), alone[i].back().dim(1)));
      alone[i].push_back(model.forward(&tokens[i].back(), 1, static_cast<int64_t>(prompts[i].size()) + step));
    }
  }
  LoadOptions options;
  options.batch = 4;  // more than the sequences: a step may run fewer
  Model model = Model::load(dir, options);
  ASSERT_EQ(model.batch(), 4);
  std::vector<int64_t> positions;
  for (int64_t i = 0; i < count; ++i) {
    Tensor logits = model.forward(prompts[i].data(), static_cast<int64_t>(prompts[i].size()), 0, false, int(i));
    EXPECT_LT(relative_error(logits, alone[i][0]), 1e-5) << dir << " prompt " << i;
    positions.push_back(static_cast<int64_t>(prompts[i].size()));
  }
  for (int step = 0; step < kSteps; ++step) {
    std::vector<int32_t> step_tokens;
    for (int64_t i = 0; i < count; ++i) step_tokens.push_back(tokens[i][step]);
    Tensor logits = model.forward_batch(step_tokens.data(), positions.data(), count);
    ASSERT_EQ(logits.dim(0), count);
    const int64_t vocab = logits.dim(1);
    for (int64_t i = 0; i < count; ++i) {
      Tensor row = Tensor::borrow(DType::F32, {1, vocab}, logits.data<float>() + i * vocab, nullptr);
      EXPECT_LT(relative_error(row, alone[i][step + 1]), 1e-4) << dir << " sequence " << i << " step " << step;
    }
    const std::vector<int32_t> ids = model.forward_batch_argmax(step_tokens.data(), positions.data(), count);
    for (int64_t i = 0; i < count; ++i) {
      EXPECT_EQ(ids[i], argmax(logits.data<float>() + i * vocab, vocab)) << "sequence " << i << " step " << step;
      ++positions[i];
    }
  }
}

TEST(BatchedDecoding, EachSequenceDecodesAsItWouldAlone) {
  // Grouped KV heads, a sliding window shorter than the prompts, Qwen3's q/k norms.
  for (const char* name : {"llama3-rope", "mistral-window", "qwen3-qknorm"})
    expect_batch_decodes_as_each_alone(kModels + name);
}

TEST(BatchedDecoding, RejectsSequencesOutsideTheBatchAndBatchesOutOfRange) {
  LoadOptions options;
  options.batch = 2;
  Model model = Model::load(kModels + "llama3-rope", options);
  const int32_t tokens[3] = {1, 2, 3};
  const int64_t positions[3] = {0, 0, 0};
  EXPECT_THROW(model.forward(tokens, 1, 0, false, 2), Error);
  EXPECT_THROW(model.forward(tokens, 1, 0, false, -1), Error);
  EXPECT_THROW(model.forward_batch(tokens, positions, 3), Error);
  EXPECT_THROW(model.forward_batch(tokens, positions, 0), Error);
  const int64_t past[2] = {0, model.max_context()};
  EXPECT_THROW(model.forward_batch(tokens, past, 2), Error);
  options.batch = 0;
  EXPECT_THROW(Model::load(kModels + "llama3-rope", options), Error);
  options.batch = kMaxBatch + 1;
  EXPECT_THROW(Model::load(kModels + "llama3-rope", options), Error);
}

}  // namespace
}  // namespace afq
