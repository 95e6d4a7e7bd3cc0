#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "afq/quant.h"

namespace afq {
namespace {

TEST(Pack, ThreeBitValuesStraddleWordsAsTheSpecShows) {
  std::vector<uint8_t> q(32);
  for (int i = 0; i < 32; ++i) q[i] = static_cast<uint8_t>(7 - i % 8);
  std::vector<uint32_t> words(3);
  pack_row(q.data(), 32, 3, words.data());
  EXPECT_EQ(words, (std::vector<uint32_t>{0x77053977u, 0x39770539u, 0x05397705u}));
}

TEST(Pack, FourBitValuesFillWordsFromTheLowBits) {
  std::vector<uint8_t> q = {1, 2, 3, 4, 5, 6, 7, 8};
  uint32_t word = 0;
  pack_row(q.data(), 8, 4, &word);
  EXPECT_EQ(word, 0x87654321u);
}

TEST(Pack, UnpackInvertsPackForEveryBitWidth) {
  std::mt19937 rng(3);
  for (int bits : kSupportedBits) {
    const int64_t k = 256;
    std::vector<uint8_t> q(k), back(k);
    for (auto& v : q) v = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
    std::vector<uint32_t> words(k * bits / 32);
    pack_row(q.data(), k, bits, words.data());
    unpack_row(words.data(), k, bits, back.data());
    EXPECT_EQ(q, back) << bits << " bits";
    // Element i of the stream sits at bits [i*bits, (i+1)*bits).
    for (int64_t i = 0; i < k; ++i) {
      uint32_t v = 0;
      for (int b = 0; b < bits; ++b) {
        const int64_t bit = i * bits + b;
        v |= ((words[bit / 32] >> (bit % 32)) & 1u) << b;
      }
      ASSERT_EQ(v, q[i]) << bits << " bits, element " << i;
    }
  }
}

}  // namespace
}  // namespace afq
