#include "weight_kinds.h"

namespace afq {

std::string module_of(std::string_view tensor_name) {
  auto dot = tensor_name.rfind('.');
  return std::string(dot == std::string_view::npos ? std::string_view{} : tensor_name.substr(0, dot));
}

WeightKind classify_weight(std::string_view tensor_name, const Shape& shape) {
  if (shape.size() != 2 || !tensor_name.ends_with(".weight")) return WeightKind::Other;
  std::string module = module_of(tensor_name);
  std::string_view leaf = module;
  if (auto dot = leaf.rfind('.'); dot != std::string_view::npos) leaf = leaf.substr(dot + 1);
  if (leaf == "lm_head") return WeightKind::OutputHead;
  if (leaf.find("embed") != std::string_view::npos || leaf == "wte" || leaf == "wpe") return WeightKind::Embedding;
  if (leaf.find("norm") != std::string_view::npos) return WeightKind::Other;
  return WeightKind::Linear;
}

}  // namespace afq
