// Parsing and validating safetensors headers. Every check names the file and the tensor or field,
// so a corrupt download gets a one-line error instead of a crash.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "afq/error.h"
#include "safetensors_buffer.h"

namespace afq {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the safetensors library's limit
// Keeps numel * element size (at most 8) well inside uint64_t and every dimension inside int64_t.
constexpr uint64_t kMaxElements = uint64_t{1} << 60;
// root object -> tensor object -> shape list; anything deeper is not a safetensors header.
constexpr int kMaxDepth = 2;
constexpr size_t kMaxShown = 80;  // longest excerpt of input quoted in a message

// `s` as a JSON string literal (control characters escaped, so messages stay one line), shortened.
std::string as_json_string(std::string_view s) {
  std::string text = json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...\"";
  return text;
}

// A JSON value as it appears in the header, shortened.
std::string shown(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  return text;
}

std::string what_of(const json::exception& e) {
  std::string what = e.what();
  if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);  // drop "[json.exception...]"
  if (what.size() > 2 * kMaxShown) what = what.substr(0, 2 * kMaxShown) + "...";
  return what;
}

uint64_t non_negative_integer(const json& value, const std::string& where) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return static_cast<uint64_t>(value.get<int64_t>());
  throw Error(where + " must be a non-negative integer, got " + shown(value));
}

TensorEntry parse_entry(const std::string& name, const json& value, uint64_t data_size, const std::string& source) {
  const std::string where = source + ": tensor " + as_json_string(name);
  if (!value.is_object())
    throw Error(where + ": expected an object with \"dtype\", \"shape\" and \"data_offsets\", got " + shown(value));
  TensorEntry entry;
  entry.name = name;

  auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string())
    throw Error(where + ": \"dtype\" must be a string, got " + (dtype == value.end() ? "nothing" : shown(*dtype)));
  auto parsed = parse_dtype(dtype->get<std::string>());
  if (!parsed)
    throw Error(where + ": unknown dtype " + shown(*dtype) + " (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 U32 BOOL)");
  entry.dtype = *parsed;

  auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array())
    throw Error(where + ": \"shape\" must be a list of non-negative integers, got " +
                (shape == value.end() ? "nothing" : shown(*shape)));
  uint64_t numel = 1;
  for (size_t i = 0; i < shape->size(); ++i) {
    const uint64_t dim = non_negative_integer((*shape)[i], where + ": \"shape\" entry " + std::to_string(i));
    if (dim > kMaxElements || (dim != 0 && numel > kMaxElements / dim))
      throw Error(where + ": \"shape\" " + shown(*shape) + " has more than 2^60 elements");
    numel *= dim;
    entry.shape.push_back(static_cast<int64_t>(dim));
  }

  auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2)
    throw Error(where + ": \"data_offsets\" must be [begin, end], got " +
                (offsets == value.end() ? "nothing" : shown(*offsets)));
  entry.begin = non_negative_integer((*offsets)[0], where + ": \"data_offsets\" begin");
  entry.end = non_negative_integer((*offsets)[1], where + ": \"data_offsets\" end");
  const std::string range = "[" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
  if (entry.begin > entry.end) throw Error(where + ": \"data_offsets\" " + range + " end before they begin");
  if (entry.end > data_size)
    throw Error(where + ": \"data_offsets\" " + range + " run past the data section of " + std::to_string(data_size) +
                " bytes (truncated file?)");
  const uint64_t expected = numel * dtype_size(entry.dtype);
  if (entry.end - entry.begin != expected)
    throw Error(where + ": " + std::string(dtype_name(entry.dtype)) + " " + shape_to_string(entry.shape) + " needs " +
                std::to_string(expected) + " bytes, but \"data_offsets\" " + range + " hold " +
                std::to_string(entry.end - entry.begin));
  return entry;
}

// Parses the header text. JSON objects silently keep the last of two equal keys, so duplicates are
// caught while parsing; nesting is capped so that a hostile header cannot make the parser grow deep.
json parse_json(std::string_view text, const std::string& source) {
  std::vector<std::set<std::string>> keys;  // keys seen, one set per open object
  std::string tensor;                       // the top-level key being parsed
  auto where = [&] { return tensor == "__metadata__" ? std::string("\"__metadata__\"") : "tensor " + as_json_string(tensor); };
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth > kMaxDepth) throw Error(source + ": " + where() + ": nested deeper than a safetensors header is");
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end: keys.pop_back(); break;
      case json::parse_event_t::key: {
        std::string key = parsed.get<std::string>();
        if (depth == 1) tensor = key;
        if (!keys.back().insert(key).second) {
          if (depth == 1) throw Error(source + ": tensor " + as_json_string(key) + " appears twice in the header");
          throw Error(source + ": " + where() + ": field " + as_json_string(key) + " appears twice");
        }
        break;
      }
      default: break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for numbers like 1e999
    throw Error(source + ": invalid JSON in the header: " + what_of(e));
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::string_view text, uint64_t data_size, const std::string& source) {
  const json doc = parse_json(text, source);
  if (!doc.is_object()) throw Error(source + ": the header is not a JSON object but " + shown(doc));

  SafetensorsHeader header;
  for (const auto& [name, value] : doc.items()) {
    if (name == "__metadata__") {
      if (value.is_null()) continue;  // MLX writes null
      if (!value.is_object())
        throw Error(source + ": \"__metadata__\" must be an object of strings (or null), got " + shown(value));
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string())
          throw Error(source + ": \"__metadata__\" entry " + as_json_string(key) + " must be a string, got " + shown(v));
        header.metadata[key] = v.get<std::string>();
      }
      continue;
    }
    header.entries.push_back(parse_entry(name, value, data_size, source));
  }
  std::sort(header.entries.begin(), header.entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Sorted by begin, a tensor overlaps an earlier one exactly when it begins before the furthest
  // end so far. Empty tensors occupy no bytes and overlap nothing.
  const TensorEntry* furthest = nullptr;
  for (const TensorEntry& cur : header.entries) {
    if (cur.begin == cur.end) continue;
    if (furthest && cur.begin < furthest->end)
      throw Error(source + ": tensors " + as_json_string(furthest->name) + " [" + std::to_string(furthest->begin) +
                  ", " + std::to_string(furthest->end) + "] and " + as_json_string(cur.name) + " [" +
                  std::to_string(cur.begin) + ", " + std::to_string(cur.end) + "] overlap in the data section");
    if (!furthest || cur.end > furthest->end) furthest = &cur;
  }
  return header;
}

ParsedSafetensors parse_safetensors_buffer(std::span<const std::byte> bytes, const std::string& source) {
  if (bytes.size() < 8)
    throw Error(source + ": " + std::to_string(bytes.size()) +
                " bytes is too short for a safetensors file (an 8-byte header length comes first)");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | std::to_integer<uint64_t>(bytes[i]);
  if (header_size > kMaxHeaderBytes)
    throw Error(source + ": header length " + std::to_string(header_size) +
                " is over the 100 MB limit (not a safetensors file?)");
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
