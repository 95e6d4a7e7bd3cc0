// Feeds arbitrary bytes to the safetensors parser. It must either throw afq::Error with a one-line
// message that starts with the source name, or return a header whose every tensor lies inside the
// buffer with a byte count that matches its dtype and shape. Anything else (a crash, another
// exception, an out-of-bounds read caught by ASan) is a finding.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "afq/error.h"
#include "safetensors_buffer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const afq::ParsedSafetensors parsed = afq::parse_safetensors_buffer(bytes, "fuzz");
    uint64_t previous_end = 0;
    for (const auto& e : parsed.header.entries) {
      if (e.begin > e.end || parsed.data_offset + e.end > size) __builtin_trap();
      if (e.begin == e.end) continue;  // empty tensors occupy nothing
      if (e.begin < previous_end) __builtin_trap();  // an overlap let through
      previous_end = e.end > previous_end ? e.end : previous_end;
      uint64_t numel = 1;
      for (int64_t d : e.shape) {
        if (d < 0) __builtin_trap();
        numel *= static_cast<uint64_t>(d);
      }
      if (numel * afq::dtype_size(e.dtype) != e.end - e.begin) __builtin_trap();
    }
  } catch (const afq::Error& error) {
    const std::string_view what = error.what();
    if (what.substr(0, 6) != "fuzz: " || what.find('\n') != std::string_view::npos) __builtin_trap();
  }
  return 0;
}
