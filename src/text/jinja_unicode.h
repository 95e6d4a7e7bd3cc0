// Strings as Python sees them: sequences of code points (UTF-8 here), with Python's notions of
// whitespace, printable characters and case for the scripts chat text mostly uses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace afq::jinja {

// The code points of `s`, each as its UTF-8 bytes (a stray byte stands for itself).
std::vector<std::string> code_points(std::string_view s);
size_t code_point_count(std::string_view s);
uint32_t decode_utf8(std::string_view one_code_point);
void append_utf8(std::string& out, uint32_t cp);

bool is_space(std::string_view cp);      // str.isspace()
bool is_printable(std::string_view cp);  // str.isprintable(), for repr()

// str.upper() / str.lower() for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic; other
// scripts pass through unchanged.
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);  // first code point upper, the rest lower
std::string py_title(std::string_view s);       // a cased character after an uncased one is upper
bool is_cased(std::string_view cp);
bool is_lower_cp(std::string_view cp);
bool is_upper_cp(std::string_view cp);

}  // namespace afq::jinja
