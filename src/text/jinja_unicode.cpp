#include "jinja_unicode.h"

#include <algorithm>

namespace afq::jinja {

namespace {

size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// Unicode's simple case mappings over the blocks named in the header.
uint32_t lower_cp(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
    return c % 2 == 0 ? c + 1 : c;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 == 1 ? c + 1 : c;
  if (c == 0x178) return 0xFF;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

uint32_t upper_cp(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
    return c % 2 == 1 ? c - 1 : c;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 == 0 ? c - 1 : c;
  if (c == 0x17F) return 'S';
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;  // final sigma
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

std::string map_cp(const std::string& cp, bool upper) {
  if (upper && cp == "\u00df") return "SS";  // Python's full mapping of sharp s
  const uint32_t c = decode_utf8(cp);
  const uint32_t m = upper ? upper_cp(c) : lower_cp(c);
  if (m == c) return cp;
  std::string out;
  append_utf8(out, m);
  return out;
}

}  // namespace

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(sequence_length(static_cast<unsigned char>(s[i])), s.size() - i);
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t code_point_count(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

uint32_t decode_utf8(std::string_view cp) {
  const unsigned char lead = static_cast<unsigned char>(cp[0]);
  if (cp.size() == 1) return lead;
  uint32_t v = lead & (0xFF >> (cp.size() + 1));
  for (size_t i = 1; i < cp.size(); ++i) v = (v << 6) | (static_cast<unsigned char>(cp[i]) & 0x3F);
  return v;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_space(std::string_view cp) {
  const uint32_t c = decode_utf8(cp);
  return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_printable(std::string_view cp) {
  const uint32_t c = decode_utf8(cp);
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;   // controls, NBSP, soft hyphen
  if (c != ' ' && is_space(cp)) return false;                            // separators other than space
  return !((c >= 0x200B && c <= 0x200F) || c == 0x2060 || c == 0xFEFF);  // format characters
}

std::string py_upper(std::string_view s) {
  std::string out;
  for (const std::string& cp : code_points(s)) out += map_cp(cp, true);
  return out;
}

std::string py_lower(std::string_view s) {
  std::string out;
  for (const std::string& cp : code_points(s)) out += map_cp(cp, false);
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (const std::string& cp : code_points(s)) {
    out += map_cp(cp, first);
    first = false;
  }
  return out;
}

std::string py_title(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (const std::string& cp : code_points(s)) {
    out += map_cp(cp, !previous_cased);
    previous_cased = is_cased(cp);
  }
  return out;
}

bool is_cased(std::string_view cp) {
  const uint32_t c = decode_utf8(cp);
  return upper_cp(c) != c || lower_cp(c) != c || c == 0xDF;
}

bool is_lower_cp(std::string_view cp) {
  const uint32_t c = decode_utf8(cp);
  return upper_cp(c) != c || c == 0xDF;
}

bool is_upper_cp(std::string_view cp) {
  const uint32_t c = decode_utf8(cp);
  return lower_cp(c) != c;
}

}  // namespace afq::jinja
