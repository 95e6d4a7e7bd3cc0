// Element types of tensors, named as safetensors names them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace afq {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, U32, Bool };

// Bytes per element.
size_t dtype_size(DType dtype);

// "F32", "BF16", ... as in a safetensors header.
std::string_view dtype_name(DType dtype);

// Parses a safetensors dtype name; std::nullopt when unknown.
std::optional<DType> parse_dtype(std::string_view name);

// Parses the names users type and configs hold: "bf16"/"bfloat16", "f16"/"float16", "f32"/"float32".
std::optional<DType> parse_float_dtype(std::string_view name);

inline bool is_float(DType dtype) {
  return dtype == DType::F64 || dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

}  // namespace afq
