// Both quantize rules of the spec (section 3), bit-exact with MLX and transformers: every float32
// operation is one IEEE operation (this library builds with -ffp-contract=off: no FMA), rounding
// is half to even, and q is computed with the float32 scale and bias before they are rounded to
// the weight's dtype.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "afq/error.h"
#include "afq/half.h"
#include "afq/quant.h"

namespace afq {
namespace {

struct GroupParams {
  float scale;
  float bias;
};

// MLX: the edge with the larger magnitude lands exactly on the grid, and so does zero when the
// group spans it; the scale is negative when the edge is the maximum.
GroupParams mlx_params(float lo, float hi, int bits) {
  const float n = static_cast<float>((1 << bits) - 1);
  float scale = std::max((hi - lo) / n, 1e-7f);
  float edge = hi;
  if (std::fabs(lo) > std::fabs(hi)) {
    edge = lo;
  } else {
    scale = -scale;
  }
  const float q0 = std::nearbyint(edge / scale);
  if (q0 == 0.0f) return {scale, 0.0f};
  return {edge / q0, edge};
}

// transformers' MetalQuantize: plain min/max; the scale is never negative.
GroupParams minmax_params(float lo, float hi, int bits) {
  const float n = static_cast<float>((1 << bits) - 1);
  return {std::max((hi - lo) / n, 1e-8f), lo};
}

uint16_t to_half_bits(float v, DType dtype) { return dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v); }

void store(Tensor& t, int64_t i, float v) {
  if (t.dtype() == DType::F32)
    t.mutable_data<float>()[i] = v;
  else
    t.mutable_data<uint16_t>()[i] = to_half_bits(v, t.dtype());
}

// Row r of a F32 / F16 / BF16 weight widened to float32 (exact for every dtype).
void widen_row(const Tensor& w, int64_t r, float* out) {
  const int64_t k = w.dim(1);
  if (w.dtype() == DType::F32) {
    std::memcpy(out, w.data<float>() + r * k, static_cast<size_t>(k) * sizeof(float));
    return;
  }
  const uint16_t* in = w.data<uint16_t>() + r * k;
  if (w.dtype() == DType::BF16)
    for (int64_t c = 0; c < k; ++c) out[c] = bf16_to_f32(in[c]);
  else
    for (int64_t c = 0; c < k; ++c) out[c] = f16_to_f32(in[c]);
}

// Round half to even for |x| < 2^22, as std::nearbyint but without a libm call: adding 1.5 * 2^23
// leaves no fraction bits, so the IEEE addition itself rounds to nearest even; the subtraction is
// exact. Needs the default rounding mode and no -ffast-math.
inline float round_half_even_small(float x) {
  constexpr float kMagic = 0x1.8p23f;
  return (x + kMagic) - kMagic;
}

[[noreturn]] void throw_not_finite(const float* v, int64_t row, int64_t first_col, int count) {
  int i = 0;
  while (i < count && std::isfinite(v[i])) ++i;
  throw Error(std::string(std::isnan(v[i]) ? "NaN" : "Inf") + " in the weight at [" + std::to_string(row) + ", " +
              std::to_string(first_col + i) + "]; cannot quantize");
}

void quantize_rows(const Tensor& w, int64_t row_begin, int64_t row_end, int bits, int group_size,
                   QuantMethod method, QuantizedWeight& out) {
  const int64_t k = w.dim(1);
  const int64_t groups = k / group_size;
  const int64_t words_per_row = k * bits / 32;
  const float max_q = static_cast<float>((1 << bits) - 1);
  std::vector<float> row(k);    // [K] the row in float32
  std::vector<uint8_t> q(k);    // [K] its codes, packed once the row is done
  for (int64_t r = row_begin; r < row_end; ++r) {
    widen_row(w, r, row.data());
    for (int64_t g = 0; g < groups; ++g) {
      const float* v = row.data() + g * group_size;
      float lo = v[0], hi = v[0];
      bool all_finite = true;
      for (int i = 0; i < group_size; ++i) {
        all_finite &= std::fabs(v[i]) <= std::numeric_limits<float>::max();  // false for NaN too
        lo = std::min(lo, v[i]);  // this order keeps the first of equal values (0 vs -0), as torch and MLX
        hi = std::max(hi, v[i]);
      }
      if (!all_finite) throw_not_finite(v, r, g * group_size, group_size);
      if (!std::isfinite(hi - lo))
        throw Error("the values of the weight's row " + std::to_string(r) + ", columns [" +
                    std::to_string(g * group_size) + ", " + std::to_string((g + 1) * group_size) + ") range from " +
                    std::to_string(lo) + " to " + std::to_string(hi) +
                    ", a span that overflows float32; cannot quantize");
      const GroupParams p = method == QuantMethod::Mlx ? mlx_params(lo, hi, bits) : minmax_params(lo, hi, bits);
      uint8_t* codes = q.data() + g * group_size;
      for (int i = 0; i < group_size; ++i) {
        // Clamping to [-1, max_q + 1] before rounding gives the same code as rounding first (both
        // ends clamp to the grid anyway) and keeps the fast rounding in its range.
        const float x = std::clamp((v[i] - p.bias) / p.scale, -1.0f, max_q + 1.0f);
        codes[i] = static_cast<uint8_t>(std::clamp(round_half_even_small(x), 0.0f, max_q));
      }
      store(out.scales, r * groups + g, p.scale);
      store(out.biases, r * groups + g, p.bias);
    }
    pack_row(q.data(), k, bits, out.weight.mutable_data<uint32_t>() + r * words_per_row);
  }
}

}  // namespace

QuantizedWeight QuantizedWeight::zeros(int64_t n, int64_t k, int bits, int group_size, DType scale_dtype) {
  QuantizedWeight w;
  w.bits = bits;
  w.group_size = group_size;
  w.weight = Tensor::zeros(DType::U32, {n, k * bits / 32});
  w.scales = Tensor::zeros(scale_dtype, {n, k / group_size});
  w.biases = Tensor::zeros(scale_dtype, {n, k / group_size});
  return w;
}

QuantizedWeight quantize(const Tensor& w, int bits, int group_size, QuantMethod method) {
  check_bits(bits);
  check_group_size(group_size);
  if (w.ndim() != 2)
    throw Error("[quantize] expected a 2-D weight [N, K], got shape " + shape_to_string(w.shape()));
  if (w.dtype() != DType::F32 && w.dtype() != DType::F16 && w.dtype() != DType::BF16)
    throw Error("[quantize] expected a F32, F16 or BF16 weight, got " + std::string(dtype_name(w.dtype())));
  const int64_t n = w.dim(0), k = w.dim(1);
  if (k % group_size != 0)
    throw Error("[quantize] the last dimension " + std::to_string(k) + " is not a multiple of the group size " +
                std::to_string(group_size));

  QuantizedWeight out = QuantizedWeight::zeros(n, k, bits, group_size, w.dtype());

  // Rows are independent: large weights are split over the cores.
  const int64_t work = n * k;
  const int threads = work < (int64_t{1} << 20)
                          ? 1
                          : static_cast<int>(std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, n));
  if (threads == 1) {
    quantize_rows(w, 0, n, bits, group_size, method, out);
    return out;
  }
  std::exception_ptr first_error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    pool.emplace_back([&, begin, end] {
      try {
        quantize_rows(w, begin, end, bits, group_size, method, out);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
      }
    });
  }
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);
  return out;
}

}  // namespace afq
