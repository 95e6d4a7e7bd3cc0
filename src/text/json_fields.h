// Reading tokenizer.json: errors that name the file, the field and the value, e.g.
// `tokenizer.json: model.type "Unigram" is not supported (BPE only)`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "afq/error.h"

namespace afq::text {

// `file: field value is not supported (allowed)`
[[noreturn]] inline void unsupported(const std::string& file, const std::string& field,
                                     const nlohmann::json& value, const std::string& allowed) {
  throw Error(file + ": " + field + " " + value.dump() + " is not supported (" + allowed + ")");
}

// The string at `spec[key]`, "" when absent or null.
inline std::string string_field(const nlohmann::json& spec, const char* key) {
  auto it = spec.find(key);
  return it == spec.end() || it->is_null() ? std::string() : it->get<std::string>();
}

}  // namespace afq::text
