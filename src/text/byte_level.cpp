#include "byte_level.h"

#include <array>
#include <cstdint>

#include "utf8.h"

namespace afq::text {

namespace {

struct Table {
  std::array<std::string, 256> chars;
  std::array<int16_t, 324> bytes;  // by code point (all are below 324)

  Table() {
    bytes.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const int cp = printable ? b : next++;
      append_utf8(chars[b], static_cast<uint32_t>(cp));
      bytes[cp] = static_cast<int16_t>(b);
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

const std::string& byte_to_char(unsigned char b) { return table().chars[b]; }

int char_to_byte(std::string_view ch, size_t* length) {
  const auto c = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(ch[i])); };
  uint32_t cp;
  if (c(0) < 0x80) {
    cp = c(0);
    *length = 1;
  } else if ((c(0) & 0xE0) == 0xC0 && ch.size() >= 2) {
    cp = ((c(0) & 0x1F) << 6) | (c(1) & 0x3F);
    *length = 2;
  } else {
    *length = utf8_length(static_cast<unsigned char>(ch[0]));
    return -1;
  }
  return cp < table().bytes.size() ? table().bytes[cp] : -1;
}

std::string byte_level_decode(std::string_view token) {
  std::string bytes;
  for (size_t i = 0, n = 0; i < token.size(); i += n) {
    const int b = char_to_byte(token.substr(i), &n);
    if (b < 0) return std::string(token);
    bytes += static_cast<char>(b);
  }
  return bytes;
}

}  // namespace afq::text
