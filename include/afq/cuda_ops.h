// The Llama family's operations on the GPU, on device pointers: device memory, embedding lookup,
// RMSNorm, RoPE, attention over a bf16 KV cache, SwiGLU, adds, argmax and the bf16 GEMM of float
// linear layers. Host declarations only, so it compiles without the CUDA toolkit. Every op is
// asynchronous on `stream` (nullptr: the default stream) and throws afq::Error on arguments it
// does not take and on launch failures. Activations are bf16 unless a dtype argument says
// otherwise; all arithmetic is float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "afq/cuda.h"

struct CUgraphExec_st;  // cudaGraphExec_t is CUgraphExec_st*

namespace afq::cuda {

#ifdef AFQ_HAVE_CUDA

// Device memory owned by one object (cudaMalloc in the constructor, cudaFree in the destructor).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // `what` names the buffer in the out-of-memory message.
  explicit DeviceBuffer(size_t bytes, const char* what = "device buffer");
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A non-blocking CUDA stream owned by one object.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  CUstream_st* get() const { return stream_; }

 private:
  CUstream_st* stream_ = nullptr;
};

// A CUDA graph: the work one call enqueues on a stream, captured once and replayed by launch()
// with a single launch (a decode step is some 10 kernels a layer, each costing microseconds to
// launch from the host). What the captured kernels read must stay at the same device addresses:
// the ops' `_at` variants below read the step's position from device memory for that reason.
class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(Graph&& other) noexcept;
  Graph& operator=(Graph&& other) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Captures what `record` enqueues on `stream` (nothing runs); throws afq::Error, leaving the
  // graph empty and the stream usable, when the work cannot be captured.
  void capture(CUstream_st* stream, const std::function<void()>& record);
  void launch(CUstream_st* stream) const;  // asynchronous
  bool empty() const { return exec_ == nullptr; }

 private:
  CUgraphExec_st* exec_ = nullptr;
};

struct MemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};
MemoryInfo memory_info();  // of the current device

void copy_to_device(void* dst, const void* src, size_t bytes, CUstream_st* stream);  // asynchronous
void copy_on_device(void* dst, const void* src, size_t bytes, CUstream_st* stream);  // asynchronous
// `rows` rows of `row_bytes` each, from src (rows src_pitch bytes apart) to dst (dst_pitch apart).
void copy_rows_on_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes, int64_t rows,
                         CUstream_st* stream);  // asynchronous
void copy_to_host(void* dst, const void* src, size_t bytes, CUstream_st* stream);    // waits for it
void zero_fill(void* dst, size_t bytes, CUstream_st* stream);                       // asynchronous
void synchronize(CUstream_st* stream);

// Bytes read + written per second by a 1 GiB device-to-device copy (median of 10): the decode roofline.
double measure_copy_bandwidth();

// x[t, :] = table[tokens[t], :] as float32 (the residual stream), t < n. tokens [n] int32 on the
// device, each in [0, vocab) (the caller checks); table [vocab, hidden] in table_dtype (BF16, F16, F32).
void embedding_lookup(const int32_t* tokens, int64_t n, const void* table, DType table_dtype, int64_t hidden,
                      float* x, CUstream_st* stream);
// The same from a quantized table: each row dequantized as afq::dequantize_row does (bit-exact).
void embedding_lookup_quantized(const int32_t* tokens, int64_t n, const DeviceQuantizedWeight& table, float* x,
                                CUstream_st* stream);

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight for `rows` rows of `dim` (LlamaRMSNorm).
// x in F32 or BF16, y in BF16 or F16, weight F32 [dim]. In place (y == x) when the dtypes agree.
void rms_norm(const void* x, DType x_dtype, const float* weight, void* y, DType y_dtype, int64_t rows, int64_t dim,
              float eps, CUstream_st* stream);

// x += y (x the float32 residual stream, y bf16, both [rows, dim]), then out = RMSNorm(x) * weight
// in bf16: the residual add and the next norm in one pass.
void add_residual_rms_norm(float* x, const void* y, const float* weight, void* out, int64_t rows, int64_t dim, float eps,
                           CUstream_st* stream);

// Rotary embedding of x [n, heads, head_dim] (bf16) for the tokens at positions position + t:
// element i pairs with i + head_dim/2 (rotate_half), angle = position * inv_freq[i], inv_freq the
// F32 [head_dim/2] table of afq::rope_inv_freq. Writes y of the same layout; y may equal x.
void rope(const void* x, void* y, int64_t n, int heads, int head_dim, int64_t position, const float* inv_freq,
          CUstream_st* stream);

// The same for one token whose position is one int32 in device memory (a decode step replayed
// from a CUDA graph); y moves by y_position_stride elements per position (0: in place; kv_dim:
// straight into that position's row of the KV cache).
void rope_at(const void* x, void* y, int64_t y_position_stride, int heads, int head_dim, const int32_t* position,
             const float* inv_freq, CUstream_st* stream);

// A decode step's three in one launch: rope_at(q, q, 0, ...), rope_at(k, k_cache, kv_dim, ...)
// and store_at_position(v_cache, v, kv_dim, ...), kv_dim = kv_heads * head_dim.
void rope_qk_store_v_at(void* q, const void* k, const void* v, void* k_cache, void* v_cache, int heads, int kv_heads,
                        int head_dim, const int32_t* position, const float* inv_freq, CUstream_st* stream);

// The same for `rows` decode tokens of as many sequences (batched decoding): row r's q, k and v
// start at q + r * q_stride, k + r * kv_stride and v + r * kv_stride (elements; a fused q/k/v
// output has q_dim + 2 kv_dim per row), its position is positions[r] (int32 on the device), and
// its sequence's cache starts at k_cache + r * slot_stride and v_cache + r * slot_stride.
void rope_qk_store_v_batch(void* q, const void* k, const void* v, int64_t rows, int64_t q_stride, int64_t kv_stride,
                           void* k_cache, void* v_cache, int64_t slot_stride, int heads, int kv_heads, int head_dim,
                           const int32_t* positions, const float* inv_freq, CUstream_st* stream);

// dst[*position * count + i] = src[i], i < count, bf16: one token's values into the KV cache.
void store_at_position(void* dst, const void* src, int64_t count, const int32_t* position, CUstream_st* stream);

// Causal attention with grouped KV heads (GQA) over a bf16 cache:
//   out[t, h, :] = softmax_s(q[t, h, :] . k[s, h / group, :] * scale) @ v[s, h / group, :]
// for keys s in [first, position + t], first = max(0, position + t - window + 1) with a sliding
// window, else 0. q, out [n, heads, head_dim]; k, v [>= position + n, kv_heads, head_dim] (the
// layer's cache, already holding these tokens' keys and values).
struct AttentionShape {
  int64_t n = 0;         // query rows (tokens of this step)
  int64_t position = 0;  // position of the first query row
  int heads = 0, kv_heads = 0, head_dim = 0;  // head_dim even, <= 256
  int window = 0;        // 0: full causal attention
  float scale = 0;       // 1 / sqrt(head_dim)
};
// Float32 scratch the decode kernel needs for a cache of up to max_keys keys.
size_t attention_scratch_floats(int heads, int head_dim, int64_t max_keys);
// Picks the kernel: attention_decode for one query row, else attention_prefill.
void attention(const void* q, const void* k, const void* v, void* out, const AttentionShape& shape, float* scratch,
               CUstream_st* stream);
// One query row (n == 1): the keys split into chunks over blocks, partial softmaxes merged after.
void attention_decode(const void* q, const void* k, const void* v, void* out, const AttentionShape& shape,
                      float* scratch, CUstream_st* stream);
// The same for a query at the position held in device memory (shape.position unused), against a
// cache of at most max_keys keys: the launch does not depend on the position, so a CUDA graph
// replays it at every step.
void attention_decode_at(const void* q, const void* k, const void* v, void* out, const AttentionShape& shape,
                         const int32_t* position, int64_t max_keys, float* scratch, CUstream_st* stream);
// One query row for each of shape.n sequences (batched decoding): row r's query at
// q + r * q_stride elements (heads * head_dim apart in a plain [n, heads, head_dim] q), its keys
// and values at k + r * slot_stride and v + r * slot_stride (its sequence's cache), its position
// positions[r] on the device; out [n, heads, head_dim]; scratch of shape.n times
// attention_scratch_floats(heads, head_dim, max_keys). Graph-replayable, as attention_decode_at.
void attention_decode_batch(const void* q, int64_t q_stride, const void* k, const void* v, int64_t slot_stride,
                            void* out, const AttentionShape& shape, const int32_t* positions, int64_t max_keys,
                            float* scratch, CUstream_st* stream);
// Any n: tiles of query rows against tiles of keys with an online softmax (flash-attention order).
void attention_prefill(const void* q, const void* k, const void* v, void* out, const AttentionShape& shape,
                       CUstream_st* stream);

// out = silu(gate) * up elementwise over `count` bf16 values (out may equal gate).
void swiglu(const void* gate, const void* up, void* out, int64_t count, CUstream_st* stream);
// out[r, i] = silu(gate_up[r, i]) * gate_up[r, inter + i] for gate_up [rows, 2 * inter] (a fused
// gate/up projection's output), out [rows, inter], bf16.
void swiglu_rows(const void* gate_up, int64_t rows, int64_t inter, void* out, CUstream_st* stream);
// x += y over `count` values: x float32 (the residual stream), y bf16.
void add_residual(float* x, const void* y, int64_t count, CUstream_st* stream);
// y[r, c] += bias[c] for y [rows, n] in y_dtype (BF16, F16, F32), bias F32 [n].
void add_bias(void* y, DType y_dtype, const float* bias, int64_t rows, int64_t n, CUstream_st* stream);

// *out = the index of the largest of values[0, n) in dtype (F32, F16, BF16); the lowest index
// among equal maxima, as std::max_element. out is one int32 on the device.
void argmax(const void* values, DType dtype, int64_t n, int32_t* out, CUstream_st* stream);
// The same for each of `rows` rows of n values: out[r] for values[r * n, (r + 1) * n).
void argmax_rows(const void* values, DType dtype, int64_t rows, int64_t n, int32_t* out, CUstream_st* stream);

// Sampling settings as the device reads them (from device memory, so that a CUDA graph replays
// one launch for any settings); see sample_rows.
struct DeviceSampling {
  float temperature = 0;  // 0: greedy
  int32_t top_k = 0;      // 0: off
  float top_p = 1;        // 1: off
  float min_p = 0;        // 0: off
};

// out[r] = a token drawn for row r of values [rows, n] (F32, F16, BF16; n at most 2^23) at the
// uniform uniforms[r] in [0, 1), by afq::sample_in_token_order's rule: the candidates are what
// top-k (ties at the k-th kept), min-p and top-p (the smallest set of the largest logits, ties
// kept, holding top_p of the candidates' mass) leave, and the token is where their cumulative
// softmax mass at the temperature, in token order, passes uniform * their total. Temperature 0:
// the argmax (the lowest index among equals). params, uniforms and out are on the device.
void sample_rows(const void* values, DType dtype, int64_t rows, int64_t n, const DeviceSampling* params,
                 const float* uniforms, int32_t* out, CUstream_st* stream);

// y[m, n] = x[m, k] @ w[n, k]^T with cuBLAS: x and w BF16, y BF16 or F32, float32 accumulation.
void gemm_bf16_t(const void* x, int64_t m, const void* w, int64_t n, int64_t k, void* y, DType y_dtype,
                 CUstream_st* stream);

#endif  // AFQ_HAVE_CUDA

}  // namespace afq::cuda
