// GPT-2's bytes_to_unicode: every byte as a printable character, so that byte-level BPE runs on
// text; the ByteLevel pre-tokenizer maps bytes to these characters and its decoder maps them back.
#pragma once

#include <string>
#include <string_view>

namespace afq::text {

// The character (UTF-8) that stands for byte `b`.
const std::string& byte_to_char(unsigned char b);

// The byte that the character at the start of `ch` stands for, or -1; `*length` gets its length.
int char_to_byte(std::string_view ch, size_t* length);

// The bytes a byte-level token stands for; the token as is when a character is not in the table
// (as Hugging Face's ByteLevel decoder does for added tokens).
std::string byte_level_decode(std::string_view token);

}  // namespace afq::text
