#include "afq/dtype.h"

#include <array>
#include <utility>

namespace afq {
namespace {

constexpr std::array<std::pair<DType, std::string_view>, 11> kNames = {{
    {DType::F64, "F64"}, {DType::F32, "F32"}, {DType::F16, "F16"}, {DType::BF16, "BF16"},
    {DType::I64, "I64"}, {DType::I32, "I32"}, {DType::I16, "I16"}, {DType::I8, "I8"},
    {DType::U8, "U8"},   {DType::U32, "U32"}, {DType::Bool, "BOOL"},
}};

}  // namespace

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32:
    case DType::U32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::Bool: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType dtype) {
  for (const auto& [d, name] : kNames)
    if (d == dtype) return name;
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& [d, n] : kNames)
    if (n == name) return d;
  return std::nullopt;
}

std::optional<DType> parse_float_dtype(std::string_view name) {
  if (name == "bf16" || name == "bfloat16" || name == "BF16") return DType::BF16;
  if (name == "f16" || name == "float16" || name == "fp16" || name == "F16") return DType::F16;
  if (name == "f32" || name == "float32" || name == "fp32" || name == "F32") return DType::F32;
  return std::nullopt;
}

}  // namespace afq
