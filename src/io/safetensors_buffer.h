// The safetensors container inside a buffer: 8-byte little-endian header length, JSON header,
// data section. Shared by SafetensorsFile::open and the fuzzer.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "afq/safetensors.h"

namespace afq {

struct ParsedSafetensors {
  SafetensorsHeader header;
  size_t data_offset = 0;  // where the data section starts in the buffer
};

// Throws afq::Error starting with `source` on any malformed input; reads nothing outside `bytes`.
ParsedSafetensors parse_safetensors_buffer(std::span<const std::byte> bytes, const std::string& source);

}  // namespace afq
