// Attention: one query row goes to the split decode kernel, more to the tiled prompt kernel.
#include "afq/cuda_ops.h"
#include "src/cuda/attention_shape.h"

namespace afq::cuda {

size_t attention_scratch_floats(int heads, int head_dim, int64_t max_keys) {
  const int64_t splits =
      std::clamp<int64_t>((max_keys + kDecodeMinKeysPerSplit - 1) / kDecodeMinKeysPerSplit, 1, kDecodeMaxSplits);
  return static_cast<size_t>(heads) * static_cast<size_t>(splits) * static_cast<size_t>(head_dim + 2);
}

void attention(const void* q, const void* k, const void* v, void* out, const AttentionShape& shape, float* scratch,
               CUstream_st* stream) {
  if (shape.n == 1) return attention_decode(q, k, v, out, shape, scratch, stream);
  attention_prefill(q, k, v, out, shape, stream);
}

}  // namespace afq::cuda
