// Feeds arbitrary bytes to the safetensors parser: it must answer with afq::Error or a header whose
// every tensor lies inside the buffer, and never crash or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <span>

#include "afq/error.h"
#include "safetensors_buffer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    afq::ParsedSafetensors parsed = afq::parse_safetensors_buffer(bytes, "fuzz");
    for (const auto& e : parsed.header.entries)
      if (parsed.data_offset + e.end > size || e.begin > e.end) __builtin_trap();
  } catch (const afq::Error&) {
  }
  return 0;
}
