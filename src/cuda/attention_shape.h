// Internal to src/cuda: the argument checks both attention kernels share, and the decode
// kernel's split of the keys over blocks (which also sizes its scratch).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "afq/cuda_ops.h"
#include "afq/error.h"

namespace afq::cuda {

inline constexpr int kAttentionMaxHeadDim = 256;
inline constexpr int64_t kDecodeMinKeysPerSplit = 32;  // fewer keys per block wastes the merge
inline constexpr int64_t kDecodeMaxSplits = 128;

inline std::string describe(const AttentionShape& s) {
  return "n=" + std::to_string(s.n) + " position=" + std::to_string(s.position) + " heads=" + std::to_string(s.heads) +
         " kv_heads=" + std::to_string(s.kv_heads) + " head_dim=" + std::to_string(s.head_dim) +
         " window=" + std::to_string(s.window);
}

inline void check_attention_shape(const AttentionShape& s, const char* op) {
  const bool ok = s.n >= 1 && s.n <= 65535 * 32 && s.position >= 0 && s.heads >= 1 && s.heads <= 65535 &&
                  s.kv_heads >= 1 && s.heads % s.kv_heads == 0 && s.head_dim >= 2 && s.head_dim % 2 == 0 &&
                  s.head_dim <= kAttentionMaxHeadDim && s.window >= 0;
  if (!ok)
    throw Error(std::string("[") + op + "] shape not allowed (" + describe(s) +
                "): n >= 1, heads a multiple of kv_heads, head_dim even and at most 256, window >= 0");
}

// Blocks per head for `keys` keys: enough to fill the device (about two blocks per SM over all
// heads), never fewer than kDecodeMinKeysPerSplit keys each.
inline int64_t decode_splits(int64_t keys, int heads, int multiprocessors) {
  const int64_t by_keys = (keys + kDecodeMinKeysPerSplit - 1) / kDecodeMinKeysPerSplit;
  const int64_t by_device = std::max<int64_t>(1, (2 * int64_t{multiprocessors} + heads - 1) / heads);
  return std::clamp<int64_t>(std::min(by_keys, by_device), 1, kDecodeMaxSplits);
}

}  // namespace afq::cuda
