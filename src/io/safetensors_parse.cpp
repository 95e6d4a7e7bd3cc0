// Parsing and validating safetensors headers. Every check names the file and the tensor or field,
// so a corrupt download gets a one-line error instead of a crash.
#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "afq/error.h"
#include "safetensors_buffer.h"

namespace afq {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // as the safetensors library

uint64_t read_offset(const json& value, const std::string& where) {
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0))
    throw Error(where + " must be a non-negative integer, got " + value.dump());
  return value.get<uint64_t>();
}

TensorEntry parse_entry(const std::string& name, const json& value, uint64_t data_size, const std::string& source) {
  const std::string where = source + ": tensor '" + name + "'";
  if (!value.is_object()) throw Error(where + ": expected an object with dtype, shape and data_offsets");
  TensorEntry entry;
  entry.name = name;

  auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) throw Error(where + ": missing or non-string \"dtype\"");
  auto parsed = parse_dtype(dtype->get<std::string>());
  if (!parsed)
    throw Error(where + ": unknown dtype " + dtype->dump() + " (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 U32 BOOL)");
  entry.dtype = *parsed;

  auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) throw Error(where + ": missing or non-list \"shape\"");
  uint64_t numel = 1;
  for (const auto& d : *shape) {
    const uint64_t dim = read_offset(d, where + ": shape entry");
    // Keep numel * element size well inside uint64_t.
    if (dim != 0 && numel > (uint64_t{1} << 60) / dim) throw Error(where + ": shape " + shape->dump() + " is too large");
    numel *= dim;
    entry.shape.push_back(static_cast<int64_t>(dim));
  }

  auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2)
    throw Error(where + ": \"data_offsets\" must be [begin, end]");
  entry.begin = read_offset((*offsets)[0], where + ": data_offsets[0]");
  entry.end = read_offset((*offsets)[1], where + ": data_offsets[1]");
  if (entry.begin > entry.end)
    throw Error(where + ": data_offsets [" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) +
                "] end before they begin");
  if (entry.end > data_size)
    throw Error(where + ": data_offsets end at byte " + std::to_string(entry.end) + ", past the data section of " +
                std::to_string(data_size) + " bytes (truncated file?)");
  const uint64_t expected = numel * dtype_size(entry.dtype);
  if (entry.end - entry.begin != expected)
    throw Error(where + ": " + std::string(dtype_name(entry.dtype)) + " " + shape_to_string(entry.shape) + " needs " +
                std::to_string(expected) + " bytes, but data_offsets hold " + std::to_string(entry.end - entry.begin));
  return entry;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::string_view text, uint64_t data_size, const std::string& source) {
  // Duplicate names would silently shadow each other in a JSON object: catch them while parsing.
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      auto key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw Error(source + ": invalid JSON in the header: " + what);
  }
  if (!doc.is_object()) throw Error(source + ": the header is not a JSON object");
  if (!duplicate.empty()) throw Error(source + ": tensor '" + duplicate + "' appears twice in the header");

  SafetensorsHeader header;
  for (const auto& [name, value] : doc.items()) {
    if (name == "__metadata__") {
      if (value.is_null()) continue;  // MLX writes null
      if (!value.is_object()) throw Error(source + ": \"__metadata__\" must be an object of strings");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string())
          throw Error(source + ": \"__metadata__\" entry '" + key + "' must be a string, got " + v.dump());
        header.metadata[key] = v.get<std::string>();
      }
      continue;
    }
    header.entries.push_back(parse_entry(name, value, data_size, source));
  }
  std::sort(header.entries.begin(), header.entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < header.entries.size(); ++i) {
    const TensorEntry& prev = header.entries[i - 1];
    const TensorEntry& cur = header.entries[i];
    if (cur.begin < prev.end)
      throw Error(source + ": tensors '" + prev.name + "' and '" + cur.name + "' overlap in the data section");
  }
  return header;
}

ParsedSafetensors parse_safetensors_buffer(std::span<const std::byte> bytes, const std::string& source) {
  if (bytes.size() < 8)
    throw Error(source + ": " + std::to_string(bytes.size()) + " bytes is too short for a safetensors file");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | std::to_integer<uint64_t>(bytes[i]);
  if (header_size > kMaxHeaderBytes)
    throw Error(source + ": header length " + std::to_string(header_size) + " is over the 100 MB limit (not a safetensors file?)");
  if (header_size > bytes.size() - 8)
    throw Error(source + ": header length " + std::to_string(header_size) + " runs past the end of the file (" +
                std::to_string(bytes.size()) + " bytes)");
  ParsedSafetensors parsed;
  parsed.data_offset = 8 + header_size;
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
  parsed.header = parse_safetensors_header(text, bytes.size() - parsed.data_offset, source);
  return parsed;
}

}  // namespace afq
