// Packing: a row is one little-endian bit stream; value i takes bits [i*bits, (i+1)*bits), where
// bit j of the stream is bit j % 32 of word j / 32. 3, 5 and 6-bit values straddle words.
#include <cstring>

#include "afq/quant.h"

namespace afq {

void pack_row(const uint8_t* q, int64_t k, int bits, uint32_t* words) {
  const int64_t n_words = k * bits / 32;
  std::memset(words, 0, static_cast<size_t>(n_words) * sizeof(uint32_t));
  uint64_t bit = 0;
  for (int64_t i = 0; i < k; ++i, bit += bits) {
    const uint64_t value = q[i] & ((1u << bits) - 1);
    const int64_t word = static_cast<int64_t>(bit / 32);
    const int shift = static_cast<int>(bit % 32);
    words[word] |= static_cast<uint32_t>(value << shift);
    if (shift + bits > 32) words[word + 1] |= static_cast<uint32_t>(value >> (32 - shift));
  }
}

void unpack_row(const uint32_t* words, int64_t k, int bits, uint8_t* q) {
  const uint32_t mask = (1u << bits) - 1;
  uint64_t bit = 0;
  for (int64_t i = 0; i < k; ++i, bit += bits) {
    const int64_t word = static_cast<int64_t>(bit / 32);
    const int shift = static_cast<int>(bit % 32);
    uint64_t window = words[word];
    if (shift + bits > 32) window |= uint64_t{words[word + 1]} << 32;
    q[i] = static_cast<uint8_t>((window >> shift) & mask);
  }
}

}  // namespace afq
