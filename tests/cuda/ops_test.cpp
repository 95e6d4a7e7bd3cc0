// The model's CUDA ops (afq/cuda_ops.h) against CPU references on random inputs: embedding
// lookups (a quantized table bit for bit with afq::dequantize_row), RMSNorm, RoPE with every
// scaling type (the CPU's own frequencies), attention (decode and prompt kernels, GQA, sliding
// window, every head_dim class), SwiGLU, adds, argmax and the bf16 GEMM. Outputs are poisoned
// with NaN before each launch, and the KV cache past the last written position too, so an
// unwritten output or a read past the causal edge fails. Tolerances: bf16 outputs within 1% of
// a double reference. Every test skips when no CUDA device is present (CI has none).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "afq/cuda.h"
#include "afq/cuda_ops.h"
#include "afq/error.h"
#include "afq/half.h"
#include "afq/model.h"
#include "afq/quant.h"
#include "afq/sampling.h"

namespace afq::cuda {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device"

// A device copy of a host vector, or n elements poisoned with all bits set (NaN in f32, bf16, f16).
template <class T>
struct DeviceArray {
  explicit DeviceArray(const std::vector<T>& host) : buffer(std::max<size_t>(host.size() * sizeof(T), 16)), count(host.size()) {
    copy_to_device(buffer.get(), host.data(), host.size() * sizeof(T), nullptr);
    synchronize(nullptr);
  }
  explicit DeviceArray(size_t n) : buffer(std::max<size_t>(n * sizeof(T), 16)), count(n) {
    EXPECT_EQ(cudaMemset(buffer.get(), 0xFF, n * sizeof(T)), cudaSuccess);
  }
  std::vector<T> host() const {
    std::vector<T> out(count);
    copy_to_host(out.data(), buffer.get(), count * sizeof(T), nullptr);
    return out;
  }
  T* get() const { return buffer.as<T>(); }
  DeviceBuffer buffer;
  size_t count;
};

std::vector<uint16_t> random_bf16(size_t n, std::mt19937& rng, float stddev = 1.f) {
  std::normal_distribution<float> normal(0.f, stddev);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_bf16(normal(rng));
  return v;
}

std::vector<float> widen(const std::vector<uint16_t>& v, DType dtype = DType::BF16) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = dtype == DType::BF16 ? bf16_to_f32(v[i]) : f16_to_f32(v[i]);
  return out;
}

// Every element within atol + rtol * |ref| (NaN fails).
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const bool ok = std::abs(double(got[i]) - ref[i]) <= atol + rtol * std::abs(ref[i]);
    if (!ok && reported++ < 5) ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", expected " << ref[i];
  }
}

TEST(CudaEmbedding, FloatTableCopiesTheRowsExactly) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  const int64_t vocab = 100, hidden = 96;
  const auto table = random_bf16(vocab * hidden, rng);
  const std::vector<int32_t> tokens = {5, 0, 99, 5, 42};
  DeviceArray<uint16_t> d_table(table);
  DeviceArray<int32_t> d_tokens(tokens);
  DeviceArray<float> x(tokens.size() * hidden);
  embedding_lookup(d_tokens.get(), 5, d_table.get(), DType::BF16, hidden, x.get(), nullptr);
  const std::vector<float> got = x.host();
  for (size_t t = 0; t < tokens.size(); ++t)
    for (int64_t i = 0; i < hidden; ++i)
      ASSERT_EQ(got[t * hidden + i], bf16_to_f32(table[tokens[t] * hidden + i])) << t << " " << i;
}

TEST(CudaEmbedding, QuantizedTableEqualsDequantizeRowBitForBit) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  const int64_t vocab = 37, hidden = 384;
  const std::vector<int32_t> tokens = {36, 0, 17, 17};
  DeviceArray<int32_t> d_tokens(tokens);
  for (DType dtype : {DType::BF16, DType::F16, DType::F32})
    for (int bits : kSupportedBits)
      for (int group_size : kSupportedGroupSizes) {
        Tensor w = Tensor::zeros(DType::F32, {vocab, hidden});
        std::normal_distribution<float> normal(0.f, 0.05f);
        for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = normal(rng);
        const QuantizedWeight q = quantize(dtype == DType::F32 ? w : to_dtype(w, dtype), bits, group_size);
        const DeviceQuantizedWeight dq = DeviceQuantizedWeight::upload(q);
        DeviceArray<float> x(tokens.size() * hidden);
        embedding_lookup_quantized(d_tokens.get(), static_cast<int64_t>(tokens.size()), dq, x.get(), nullptr);
        const std::vector<float> got = x.host();
        std::vector<float> row(hidden);
        for (size_t t = 0; t < tokens.size(); ++t) {
          dequantize_row(q, tokens[t], row.data());
          ASSERT_EQ(std::memcmp(got.data() + t * hidden, row.data(), hidden * sizeof(float)), 0)
              << "bits " << bits << " group " << group_size << " scales " << dtype_name(dtype) << " token " << t;
        }
      }
}

// LlamaRMSNorm in double.
std::vector<double> rms_norm_reference(const std::vector<float>& x, const std::vector<float>& w, int64_t rows,
                                       int64_t dim, float eps) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t i = 0; i < dim; ++i) sum += double(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(sum / dim + eps);
    for (int64_t i = 0; i < dim; ++i) y[r * dim + i] = w[i] * (x[r * dim + i] * inv);
  }
  return y;
}

TEST(CudaRmsNorm, MatchesTheCpuFormulaForShortAndLongRows) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  struct Case { int64_t rows, dim; };
  for (Case c : {Case{5, 4096}, Case{3, 257}, Case{37, 64}, Case{130, 16}, Case{1, 2048}}) {
    std::vector<float> w(c.dim);
    std::normal_distribution<float> normal(1.f, 0.3f);
    for (auto& v : w) v = normal(rng);
    DeviceArray<float> d_w(w);
    const std::string name = "rows " + std::to_string(c.rows) + " dim " + std::to_string(c.dim);
    // Float32 in (the residual stream), bf16 and f16 out.
    std::vector<float> x32 = widen(random_bf16(c.rows * c.dim, rng, 3.f));
    for (auto& v : x32) v *= 1.001f;  // not bf16-representable
    DeviceArray<float> d_x32(x32);
    const std::vector<double> ref32 = rms_norm_reference(x32, w, c.rows, c.dim, 1e-5f);
    for (DType out : {DType::BF16, DType::F16}) {
      DeviceArray<uint16_t> y(c.rows * c.dim);
      rms_norm(d_x32.get(), DType::F32, d_w.get(), y.get(), out, c.rows, c.dim, 1e-5f, nullptr);
      expect_close(widen(y.host(), out), ref32, 1e-2, 1e-3, name + " f32 -> " + std::string(dtype_name(out)));
    }
    // Bf16 in place (the per-head q/k norms).
    const std::vector<uint16_t> x16 = random_bf16(c.rows * c.dim, rng, 2.f);
    DeviceArray<uint16_t> d_x16(x16);
    rms_norm(d_x16.get(), DType::BF16, d_w.get(), d_x16.get(), DType::BF16, c.rows, c.dim, 1e-6f, nullptr);
    expect_close(widen(d_x16.host()), rms_norm_reference(widen(x16), w, c.rows, c.dim, 1e-6f), 1e-2, 1e-3,
                 name + " bf16 in place");
  }
}

TEST(CudaRmsNorm, AddResidualRmsNormEqualsTheAddThenTheNorm) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(9);
  for (int64_t dim : {64, 2048, 4100}) {
    const int64_t rows = 3;
    std::vector<float> x(rows * dim), weight(dim);
    std::normal_distribution<float> normal(0.f, 2.f);
    for (auto& v : x) v = normal(rng);
    for (auto& v : weight) v = normal(rng);
    const auto y = random_bf16(rows * dim, rng);
    DeviceArray<float> d_x(x), d_weight(weight);
    DeviceArray<uint16_t> d_y(y), out(rows * dim);
    add_residual_rms_norm(d_x.get(), d_y.get(), d_weight.get(), out.get(), rows, dim, 1e-5f, nullptr);
    std::vector<double> sum_ref(rows * dim), norm_ref(rows * dim);
    for (int64_t r = 0; r < rows; ++r) {
      double squares = 0;
      for (int64_t i = 0; i < dim; ++i) {
        sum_ref[r * dim + i] = double(x[r * dim + i]) + bf16_to_f32(y[r * dim + i]);
        squares += sum_ref[r * dim + i] * sum_ref[r * dim + i];
      }
      const double inv = 1.0 / std::sqrt(squares / dim + 1e-5);
      for (int64_t i = 0; i < dim; ++i) norm_ref[r * dim + i] = weight[i] * sum_ref[r * dim + i] * inv;
    }
    expect_close(d_x.host(), sum_ref, 1e-6, 1e-5, "add_residual_rms_norm residual dim " + std::to_string(dim));
    expect_close(widen(out.host()), norm_ref, 1e-2, 1e-2, "add_residual_rms_norm norm dim " + std::to_string(dim));
  }
}

TEST(CudaRope, RotatesByTheCpuFrequenciesForEveryScaling) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (auto type : {RopeScaling::Type::None, RopeScaling::Type::Linear, RopeScaling::Type::Llama3})
    for (int head_dim : {16, 64, 128})
      for (int64_t position : {int64_t{0}, int64_t{1000}, int64_t{70000}}) {
        ModelConfig c;
        c.head_dim = head_dim;
        c.rope_theta = 500000.f;
        c.rope_scaling.type = type;
        c.rope_scaling.factor = 8.f;
        const std::vector<float> inv = rope_inv_freq(c);
        DeviceArray<float> d_inv(inv);
        const int64_t n = 3;
        const int heads = 5, half = head_dim / 2;
        const auto x = random_bf16(n * heads * head_dim, rng);
        const std::vector<float> xf = widen(x);
        std::vector<double> ref(xf.size());
        for (int64_t t = 0; t < n; ++t)
          for (int h = 0; h < heads; ++h)
            for (int i = 0; i < half; ++i) {
              const float angle = static_cast<float>(position + t) * inv[i];  // float32, as the CPU
              const double cs = std::cos(double(angle)), sn = std::sin(double(angle));
              const int64_t base = (t * heads + h) * head_dim;
              ref[base + i] = xf[base + i] * cs - xf[base + i + half] * sn;
              ref[base + i + half] = xf[base + i + half] * cs + xf[base + i] * sn;
            }
        DeviceArray<uint16_t> d_x(x), y(x.size());
        rope(d_x.get(), y.get(), n, heads, head_dim, position, d_inv.get(), nullptr);
        const std::string name = "type " + std::to_string(int(type)) + " head_dim " + std::to_string(head_dim) +
                                 " position " + std::to_string(position);
        expect_close(widen(y.host()), ref, 1e-2, 2e-2, name);
        // One token at a position read from the device, written at that position's row of a cache.
        const int64_t row = int64_t{heads} * head_dim, rows = position % 7 + 2;
        const std::vector<int32_t> at = {static_cast<int32_t>(position % 7)};
        DeviceArray<int32_t> d_at(at);
        DeviceArray<uint16_t> cache(rows * row);
        rope_at(d_x.get(), cache.get(), row, heads, head_dim, d_at.get(), d_inv.get(), nullptr);
        const std::vector<float> cached = widen(cache.host());
        std::vector<double> ref_at(row);
        for (int h = 0; h < heads; ++h)
          for (int i = 0; i < half; ++i) {
            const float angle = static_cast<float>(at[0]) * inv[i];
            const double cs = std::cos(double(angle)), sn = std::sin(double(angle));
            const int64_t base = h * head_dim;
            ref_at[base + i] = xf[base + i] * cs - xf[base + i + half] * sn;
            ref_at[base + i + half] = xf[base + i + half] * cs + xf[base + i] * sn;
          }
        expect_close({cached.begin() + at[0] * row, cached.begin() + (at[0] + 1) * row}, ref_at, 1e-2, 2e-2,
                     name + " rope_at");
        for (int64_t i = 0; i < rows * row; ++i) {  // every other row keeps its poison
          if (i / row == at[0]) continue;
          ASSERT_TRUE(std::isnan(cached[i])) << name << " rope_at wrote element " << i;
        }
        rope(d_x.get(), d_x.get(), n, heads, head_dim, position, d_inv.get(), nullptr);  // in place
        expect_close(widen(d_x.host()), ref, 1e-2, 2e-2, name + " in place");
      }
}

TEST(CudaStoreAtPosition, CopiesOneRowToThePositionOnTheDevice) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(8);
  const int64_t row = 96, rows = 9;
  const auto src = random_bf16(row, rng);
  for (int32_t position : {0, 4, 8}) {
    DeviceArray<uint16_t> d_src(src), cache(rows * row);
    DeviceArray<int32_t> d_at(std::vector<int32_t>{position});
    store_at_position(cache.get(), d_src.get(), row, d_at.get(), nullptr);
    const std::vector<uint16_t> got = cache.host();
    for (int64_t i = 0; i < rows * row; ++i)
      ASSERT_EQ(got[i], i / row == position ? src[i % row] : uint16_t{0xFFFF}) << "position " << position << " element " << i;
  }
}

// The fused decode-step op writes exactly what its three parts write (the parts are checked
// against references above): q in place, k rotated and v copied into the cache row, nothing else.
TEST(CudaRopeQkStoreV, EqualsRopeAtTwiceAndStoreAtPosition) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(9);
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 10000.f;
  const std::vector<float> inv = rope_inv_freq(c);
  DeviceArray<float> d_inv(inv);
  const int heads = 6, kv_heads = 2, head_dim = 64, rows = 5;
  const int64_t q_size = int64_t{heads} * head_dim, kv_dim = int64_t{kv_heads} * head_dim;
  const auto q = random_bf16(q_size, rng), k = random_bf16(kv_dim, rng), v = random_bf16(kv_dim, rng);
  for (int32_t position : {0, 3}) {
    DeviceArray<int32_t> d_at(std::vector<int32_t>{position});
    DeviceArray<uint16_t> q_parts(q), k_parts(k), v_parts(v), k_cache_parts(rows * kv_dim),
        v_cache_parts(rows * kv_dim);
    rope_at(q_parts.get(), q_parts.get(), 0, heads, head_dim, d_at.get(), d_inv.get(), nullptr);
    rope_at(k_parts.get(), k_cache_parts.get(), kv_dim, kv_heads, head_dim, d_at.get(), d_inv.get(), nullptr);
    store_at_position(v_cache_parts.get(), v_parts.get(), kv_dim, d_at.get(), nullptr);
    DeviceArray<uint16_t> q_fused(q), k_fused(k), v_fused(v), k_cache(rows * kv_dim), v_cache(rows * kv_dim);
    rope_qk_store_v_at(q_fused.get(), k_fused.get(), v_fused.get(), k_cache.get(), v_cache.get(), heads, kv_heads,
                       head_dim, d_at.get(), d_inv.get(), nullptr);
    EXPECT_EQ(q_fused.host(), q_parts.host()) << "position " << position;
    EXPECT_EQ(k_cache.host(), k_cache_parts.host()) << "position " << position;
    EXPECT_EQ(v_cache.host(), v_cache_parts.host()) << "position " << position;
    EXPECT_EQ(k_fused.host(), k) << "k itself is left as it was";
  }
}

// A batch of decode tokens: row r of a strided q/k/v (as a fused projection lays them out) into
// the cache of sequence r at positions[r], exactly as one rope_qk_store_v_at per row.
TEST(CudaRopeQkStoreV, ABatchEqualsOneCallPerRow) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(10);
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 10000.f;
  const std::vector<float> inv = rope_inv_freq(c);
  DeviceArray<float> d_inv(inv);
  const int heads = 6, kv_heads = 2, head_dim = 64, capacity = 9, batch = 3;
  const int64_t q_size = int64_t{heads} * head_dim, kv_dim = int64_t{kv_heads} * head_dim;
  const int64_t row = q_size + 2 * kv_dim, slot = capacity * kv_dim;
  const auto qkv = random_bf16(batch * row, rng);
  const std::vector<int32_t> positions = {4, 0, 8};
  DeviceArray<int32_t> d_positions(positions);
  DeviceArray<uint16_t> batched(qkv), k_cache(batch * slot), v_cache(batch * slot);
  rope_qk_store_v_batch(batched.get(), batched.get() + q_size, batched.get() + q_size + kv_dim, batch, row, row,
                        k_cache.get(), v_cache.get(), slot, heads, kv_heads, head_dim, d_positions.get(), d_inv.get(),
                        nullptr);
  const std::vector<uint16_t> got_qkv = batched.host(), got_k = k_cache.host(), got_v = v_cache.host();
  for (int r = 0; r < batch; ++r) {
    const std::vector<uint16_t> one(qkv.begin() + r * row, qkv.begin() + (r + 1) * row);
    DeviceArray<uint16_t> d_one(one), k_one(slot), v_one(slot);
    DeviceArray<int32_t> at(std::vector<int32_t>{positions[r]});
    rope_qk_store_v_at(d_one.get(), d_one.get() + q_size, d_one.get() + q_size + kv_dim, k_one.get(), v_one.get(),
                       heads, kv_heads, head_dim, at.get(), d_inv.get(), nullptr);
    EXPECT_EQ(std::vector<uint16_t>(got_qkv.begin() + r * row, got_qkv.begin() + (r + 1) * row), d_one.host())
        << "row " << r;
    EXPECT_EQ(std::vector<uint16_t>(got_k.begin() + r * slot, got_k.begin() + (r + 1) * slot), k_one.host())
        << "row " << r;
    EXPECT_EQ(std::vector<uint16_t>(got_v.begin() + r * slot, got_v.begin() + (r + 1) * slot), v_one.host())
        << "row " << r;
  }
}

struct AttentionCase {
  int64_t n, position;
  int heads, kv_heads, head_dim, window;
  std::string name() const {
    return "n=" + std::to_string(n) + " position=" + std::to_string(position) + " heads=" + std::to_string(heads) +
           "/" + std::to_string(kv_heads) + " head_dim=" + std::to_string(head_dim) + " window=" + std::to_string(window);
  }
};

// Causal GQA attention in double, as the CPU's loop.
std::vector<double> attention_reference(const AttentionCase& c, const std::vector<float>& q, const std::vector<float>& k,
                                        const std::vector<float>& v) {
  const int64_t hd = c.head_dim, qd = c.heads * hd, kvd = c.kv_heads * hd;
  const int group = c.heads / c.kv_heads;
  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<double> out(c.n * qd);
  for (int64_t t = 0; t < c.n; ++t)
    for (int h = 0; h < c.heads; ++h) {
      const int64_t last = c.position + t, first = c.window > 0 ? std::max<int64_t>(0, last - c.window + 1) : 0;
      const int64_t kv = (h / group) * hd;
      std::vector<double> p(last + 1);
      double top = -INFINITY, sum = 0;
      for (int64_t s = first; s <= last; ++s) {
        double dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += double(q[t * qd + h * hd + i]) * k[s * kvd + kv + i];
        p[s] = dot * scale;
        top = std::max(top, p[s]);
      }
      for (int64_t s = first; s <= last; ++s) sum += p[s] = std::exp(p[s] - top);
      for (int64_t i = 0; i < hd; ++i) {
        double acc = 0;
        for (int64_t s = first; s <= last; ++s) acc += p[s] / sum * v[s * kvd + kv + i];
        out[t * qd + h * hd + i] = acc;
      }
    }
  return out;
}

// Which kernel runs the case: the dispatcher's, the prompt kernel, or the decode kernel with its
// position read from the device (the CUDA graph's decode step; its splits sized for the capacity).
enum class AttentionRun { Dispatched, Prefill, DevicePosition };

void run_attention_case(const AttentionCase& c, AttentionRun run, std::mt19937& rng) {
  const int64_t hd = c.head_dim, qd = c.heads * hd, kvd = c.kv_heads * hd;
  const int64_t written = c.position + c.n, capacity = written + 40;
  const auto q = random_bf16(c.n * qd, rng);
  auto k = random_bf16(written * kvd, rng), v = random_bf16(written * kvd, rng);
  const std::vector<double> ref = attention_reference(c, widen(q), widen(k), widen(v));
  // The cache past the written positions holds NaN: a kernel that reads it fails.
  k.resize(capacity * kvd, 0xFFFF);
  v.resize(capacity * kvd, 0xFFFF);
  DeviceArray<uint16_t> d_q(q), d_k(k), d_v(v), out(c.n * qd);
  DeviceArray<float> scratch(attention_scratch_floats(c.heads, c.head_dim, capacity));
  AttentionShape shape;
  shape.n = c.n;
  shape.position = c.position;
  shape.heads = c.heads;
  shape.kv_heads = c.kv_heads;
  shape.head_dim = c.head_dim;
  shape.window = c.window;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const char* kernel = "";
  if (run == AttentionRun::Prefill) {
    attention_prefill(d_q.get(), d_k.get(), d_v.get(), out.get(), shape, nullptr);
    kernel = " (prefill kernel)";
  } else if (run == AttentionRun::DevicePosition) {
    DeviceArray<int32_t> position(std::vector<int32_t>{static_cast<int32_t>(c.position)});
    shape.position = 0;  // unused: the kernel reads the device's
    attention_decode_at(d_q.get(), d_k.get(), d_v.get(), out.get(), shape, position.get(), capacity, scratch.get(),
                        nullptr);
    kernel = " (device position)";
  } else {
    attention(d_q.get(), d_k.get(), d_v.get(), out.get(), shape, scratch.get(), nullptr);
  }
  expect_close(widen(out.host()), ref, 1e-2, 1e-2, c.name() + kernel);
}

// A batch of query rows, each against its own sequence's cache (slot_stride apart) at its own
// position, with q rows strided as a fused projection's output: each row as the reference.
TEST(CudaAttention, BatchedDecodeMatchesTheReferencePerSequence) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  for (int window : {0, 6}) {
    const int heads = 8, kv_heads = 2, head_dim = 64;
    const int64_t qd = heads * head_dim, kvd = kv_heads * head_dim, q_stride = qd + 2 * kvd;
    const std::vector<int64_t> positions = {0, 37, 5, 300};
    const int64_t rows = static_cast<int64_t>(positions.size()), capacity = 320, slot = capacity * kvd;
    const auto q = random_bf16(rows * q_stride, rng);
    std::vector<uint16_t> k(rows * slot, 0xFFFF), v(rows * slot, 0xFFFF);  // NaN past each written position
    std::vector<double> ref;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t written = positions[r] + 1;
      const auto kr = random_bf16(written * kvd, rng), vr = random_bf16(written * kvd, rng);
      std::copy(kr.begin(), kr.end(), k.begin() + r * slot);
      std::copy(vr.begin(), vr.end(), v.begin() + r * slot);
      const std::vector<uint16_t> qr(q.begin() + r * q_stride, q.begin() + r * q_stride + qd);
      const AttentionCase c{1, positions[r], heads, kv_heads, head_dim, window};
      const std::vector<double> one = attention_reference(c, widen(qr), widen(kr), widen(vr));
      ref.insert(ref.end(), one.begin(), one.end());
    }
    DeviceArray<uint16_t> d_q(q), d_k(k), d_v(v), out(rows * qd);
    DeviceArray<float> scratch(rows * attention_scratch_floats(heads, head_dim, capacity));
    std::vector<int32_t> at(positions.begin(), positions.end());
    DeviceArray<int32_t> d_positions(at);
    AttentionShape shape;
    shape.n = rows;
    shape.heads = heads;
    shape.kv_heads = kv_heads;
    shape.head_dim = head_dim;
    shape.window = window;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    attention_decode_batch(d_q.get(), q_stride, d_k.get(), d_v.get(), slot, out.get(), shape, d_positions.get(),
                           capacity, scratch.get(), nullptr);
    expect_close(widen(out.host()), ref, 1e-2, 1e-2, "batched decode attention, window " + std::to_string(window));
  }
}

TEST(CudaAttention, DecodeMatchesTheReferenceOverLongAndWindowedCaches) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  for (int head_dim : {16, 32, 64, 128, 256})
    for (AttentionCase c : {AttentionCase{1, 0, 8, 2, 0, 0}, AttentionCase{1, 5, 4, 4, 0, 0},
                            AttentionCase{1, 1000, 8, 2, 0, 0}, AttentionCase{1, 4099, 32, 8, 0, 0},
                            AttentionCase{1, 700, 8, 1, 0, 64}, AttentionCase{1, 3, 6, 2, 0, 6}}) {
      c.head_dim = head_dim;
      run_attention_case(c, AttentionRun::Dispatched, rng);
      run_attention_case(c, AttentionRun::Prefill, rng);  // the prompt kernel takes one row too
      run_attention_case(c, AttentionRun::DevicePosition, rng);
    }
}

TEST(CudaAttention, PromptMatchesTheReferenceCausallyWithGqaAndWindows) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(6);
  for (int head_dim : {16, 32, 64, 128, 256})
    for (AttentionCase c : {AttentionCase{2, 0, 4, 2, 0, 0}, AttentionCase{37, 0, 8, 2, 0, 0},
                            AttentionCase{33, 50, 4, 1, 0, 0}, AttentionCase{100, 0, 4, 2, 0, 16},
                            AttentionCase{70, 20, 6, 3, 0, 6}, AttentionCase{129, 300, 2, 2, 0, 0}}) {
      c.head_dim = head_dim;
      run_attention_case(c, AttentionRun::Dispatched, rng);
    }
}

TEST(CudaAttention, RejectsShapesNoKernelTakes) {
  SKIP_WITHOUT_GPU();
  AttentionShape s;
  s.n = 1;
  s.heads = 6;
  s.kv_heads = 4;  // not a divisor
  s.head_dim = 64;
  s.scale = 0.125f;
  EXPECT_THROW(attention_prefill(nullptr, nullptr, nullptr, nullptr, s, nullptr), Error);
  s.kv_heads = 2;
  s.head_dim = 512;
  EXPECT_THROW(attention_decode(nullptr, nullptr, nullptr, nullptr, s, nullptr, nullptr), Error);
}

TEST(CudaElementwise, SwigluResidualAndBiasMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  const int64_t rows = 3, n = 1000, count = rows * n;
  const auto gate = random_bf16(count, rng, 3.f), up = random_bf16(count, rng);
  DeviceArray<uint16_t> d_gate(gate), d_up(up), out(count);
  swiglu(d_gate.get(), d_up.get(), out.get(), count, nullptr);
  std::vector<double> ref(count);
  for (int64_t i = 0; i < count; ++i) {
    const double g = bf16_to_f32(gate[i]);
    ref[i] = g / (1 + std::exp(-g)) * bf16_to_f32(up[i]);
  }
  expect_close(widen(out.host()), ref, 1e-2, 1e-6, "swiglu");

  // The fused gate/up output: each row holds its gate, then its up.
  std::vector<uint16_t> gate_up;
  for (int64_t r = 0; r < rows; ++r) {
    gate_up.insert(gate_up.end(), gate.begin() + r * n, gate.begin() + (r + 1) * n);
    gate_up.insert(gate_up.end(), up.begin() + r * n, up.begin() + (r + 1) * n);
  }
  DeviceArray<uint16_t> d_gate_up(gate_up), rows_out(count);
  swiglu_rows(d_gate_up.get(), rows, n, rows_out.get(), nullptr);
  expect_close(widen(rows_out.host()), ref, 1e-2, 1e-6, "swiglu_rows");

  std::vector<float> x(count);
  std::normal_distribution<float> normal(0.f, 10.f);
  for (auto& v : x) v = normal(rng);
  DeviceArray<float> d_x(x);
  add_residual(d_x.get(), d_up.get(), count, nullptr);
  for (int64_t i = 0; i < count; ++i) ref[i] = double(x[i]) + bf16_to_f32(up[i]);
  expect_close(d_x.host(), ref, 1e-6, 1e-5, "add_residual");

  std::vector<float> bias(n);
  for (auto& v : bias) v = normal(rng);
  DeviceArray<float> d_bias(bias), y32(widen(up));
  add_bias(y32.get(), DType::F32, d_bias.get(), rows, n, nullptr);
  for (int64_t i = 0; i < count; ++i) ref[i] = double(bf16_to_f32(up[i])) + bias[i % n];
  expect_close(y32.host(), ref, 1e-6, 1e-5, "add_bias f32");
  DeviceArray<uint16_t> y16(up);
  add_bias(y16.get(), DType::BF16, d_bias.get(), rows, n, nullptr);
  expect_close(widen(y16.host()), ref, 1e-2, 1e-6, "add_bias bf16");
}

TEST(CudaArgmax, PicksTheLargestAndTheLowestIndexAmongEquals) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(8);
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{1025}, int64_t{8193}, int64_t{128256}}) {
    std::vector<float> values(n);
    std::normal_distribution<float> normal(0.f, 4.f);
    for (auto& v : values) v = normal(rng);
    const int64_t planted = n * 2 / 3;
    values[planted] = 100.f;
    if (n > 3) values[n - 1] = 100.f;  // an equal maximum after it: the first one wins
    if (planted + 1024 < n - 1) values[planted + 1024] = 100.f;  // one in the same pass of the kernel
    DeviceArray<float> d_values(values);
    DeviceArray<int32_t> out(1);
    argmax(d_values.get(), DType::F32, n, out.get(), nullptr);
    EXPECT_EQ(out.host()[0], planted) << "f32 n=" << n;
    std::vector<uint16_t> b(n), h(n);
    for (int64_t i = 0; i < n; ++i) {
      b[i] = f32_to_bf16(values[i]);
      h[i] = f32_to_f16(values[i]);
    }
    DeviceArray<uint16_t> d_b(b), d_h(h);
    argmax(d_b.get(), DType::BF16, n, out.get(), nullptr);
    EXPECT_EQ(out.host()[0], planted) << "bf16 n=" << n;
    argmax(d_h.get(), DType::F16, n, out.get(), nullptr);
    EXPECT_EQ(out.host()[0], planted) << "f16 n=" << n;
  }
}

TEST(CudaArgmax, EachRowOfABatchGetsItsOwn) {
  SKIP_WITHOUT_GPU();
  const int64_t rows = 5, n = 128256;
  std::vector<float> values(rows * n, -1.f);
  const std::vector<int64_t> planted = {0, n - 1, 77, 4096, 65537};
  for (int64_t r = 0; r < rows; ++r) values[r * n + planted[r]] = 3.f;
  values[2 * n + 78] = 3.f;  // an equal maximum after the planted one: the first one wins
  DeviceArray<float> d_values(values);
  DeviceArray<int32_t> out(rows);
  argmax_rows(d_values.get(), DType::F32, rows, n, out.get(), nullptr);
  const std::vector<int32_t> got = out.host();
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(got[r], planted[r]) << "row " << r;
}

// The device's draws against afq::sample_in_token_order (the same rule on the host, in double):
// a 128k vocabulary in F32 and F16, every filter alone and together, a grid of uniforms. Masses
// are fixed-point on the device and double here, so a uniform within rounding of a boundary
// between two tokens may pick either: at most 2 of 256 draws may differ, a wrong candidate set
// or a wrong order would differ in many.
TEST(CudaSample, DrawsAsTheHostRuleForEveryFilter) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(12);
  const int64_t n = 128256, draws = 256;
  std::vector<float> logits(n);
  std::normal_distribution<float> normal(0.f, 3.f);
  for (auto& v : logits) v = normal(rng);
  std::vector<uint16_t> half(n);
  for (int64_t i = 0; i < n; ++i) half[i] = f32_to_f16(logits[i]);
  std::vector<float> half_values(n);
  for (int64_t i = 0; i < n; ++i) half_values[i] = f16_to_f32(half[i]);
  struct Case {
    float temperature;
    int top_k;
    float top_p, min_p;
  };
  for (const Case c :
       {Case{1.f, 0, 1.f, 0.f}, Case{0.7f, 40, 1.f, 0.f}, Case{1.f, 0, 0.9f, 0.f}, Case{1.f, 0, 1.f, 0.05f},
        Case{0.8f, 50, 0.95f, 0.02f}, Case{1.5f, 1, 1.f, 0.f}, Case{0.f, 0, 1.f, 0.f}}) {
    SamplingOptions host;
    host.temperature = c.temperature;
    host.top_k = c.top_k;
    host.top_p = c.top_p;
    host.min_p = c.min_p;
    const DeviceSampling settings{c.temperature, c.top_k, c.top_p, c.min_p};
    DeviceArray<uint8_t> d_settings(std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(&settings),
                                                         reinterpret_cast<const uint8_t*>(&settings + 1)));
    std::vector<float> uniforms(draws);
    for (int64_t i = 0; i < draws; ++i) uniforms[i] = (static_cast<float>(i) + 0.37f) / draws;
    DeviceArray<float> d_uniforms(uniforms);
    const std::string what = "T=" + std::to_string(c.temperature) + " top_k=" + std::to_string(c.top_k) +
                             " top_p=" + std::to_string(c.top_p) + " min_p=" + std::to_string(c.min_p);
    for (DType dtype : {DType::F32, DType::F16}) {
      // One row per draw: the same logits `draws` times.
      const std::vector<float>& values = dtype == DType::F32 ? logits : half_values;
      std::vector<float> rows32;
      std::vector<uint16_t> rows16;
      for (int64_t r = 0; r < draws; ++r) {
        if (dtype == DType::F32)
          rows32.insert(rows32.end(), logits.begin(), logits.end());
        else
          rows16.insert(rows16.end(), half.begin(), half.end());
      }
      DeviceArray<float> d_rows32(dtype == DType::F32 ? rows32 : std::vector<float>(1));
      DeviceArray<uint16_t> d_rows16(dtype == DType::F16 ? rows16 : std::vector<uint16_t>(1));
      DeviceArray<int32_t> out(draws);
      const void* rows = dtype == DType::F32 ? static_cast<const void*>(d_rows32.get()) : d_rows16.get();
      sample_rows(rows, dtype, draws, n, reinterpret_cast<const DeviceSampling*>(d_settings.get()), d_uniforms.get(),
                  out.get(), nullptr);
      const std::vector<int32_t> got = out.host();
      int differ = 0;
      std::set<int32_t> distinct;
      for (int64_t i = 0; i < draws; ++i) {
        const int32_t expected = sample_in_token_order(values, host, uniforms[i]);
        differ += got[i] != expected;
        distinct.insert(got[i]);
      }
      EXPECT_LE(differ, 2) << what << (dtype == DType::F32 ? " f32" : " f16");
      if (c.temperature == 0 || c.top_k == 1)
        EXPECT_EQ(distinct.size(), 1u) << what;
      else
        EXPECT_GT(distinct.size(), 3u) << what;  // the draws spread over several tokens
    }
  }
}

TEST(CudaGemmBf16, MatchesADoubleReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(9);
  for (int64_t m : {int64_t{1}, int64_t{7}, int64_t{130}}) {
    const int64_t n = 100, k = 192;
    const auto x = random_bf16(m * k, rng), w = random_bf16(n * k, rng, 0.1f);
    std::vector<double> ref(m * n);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double acc = 0;
        for (int64_t i = 0; i < k; ++i) acc += double(bf16_to_f32(x[r * k + i])) * bf16_to_f32(w[c * k + i]);
        ref[r * n + c] = acc;
      }
    DeviceArray<uint16_t> d_x(x), d_w(w), y16(m * n);
    DeviceArray<float> y32(m * n);
    gemm_bf16_t(d_x.get(), m, d_w.get(), n, k, y32.get(), DType::F32, nullptr);
    expect_close(y32.host(), ref, 1e-4, 1e-4, "gemm f32 out, m=" + std::to_string(m));
    gemm_bf16_t(d_x.get(), m, d_w.get(), n, k, y16.get(), DType::BF16, nullptr);
    expect_close(widen(y16.host()), ref, 1e-2, 1e-3, "gemm bf16 out, m=" + std::to_string(m));
  }
}

}  // namespace
}  // namespace afq::cuda
