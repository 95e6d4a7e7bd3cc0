#include <string>

#include "afq/error.h"
#include "afq/quant.h"

namespace afq {

std::optional<QuantMethod> parse_quant_method(std::string_view name) {
  if (name == "mlx") return QuantMethod::Mlx;
  if (name == "minmax") return QuantMethod::MinMax;
  return std::nullopt;
}

std::string_view quant_method_name(QuantMethod method) { return method == QuantMethod::Mlx ? "mlx" : "minmax"; }

void check_bits(int bits) {
  for (int b : kSupportedBits)
    if (b == bits) return;
  throw Error("[quantize] The requested number of bits " + std::to_string(bits) +
              " is not supported. The supported bits are 2, 3, 4, 5, 6 and 8.");
}

void check_group_size(int group_size) {
  for (int g : kSupportedGroupSizes)
    if (g == group_size) return;
  throw Error("[quantize] The requested group size " + std::to_string(group_size) +
              " is not supported. The supported group sizes are 32, 64, and 128.");
}

void validate(const QuantizedWeight& w, std::string_view name) {
  const std::string where = std::string(name) + ": ";
  try {
    check_bits(w.bits);
    check_group_size(w.group_size);
  } catch (const Error& e) {
    throw Error(where + e.what());
  }
  if (w.weight.dtype() != DType::U32 || w.weight.ndim() != 2)
    throw Error(where + "weight must be a 2-D U32 tensor, got " + std::string(dtype_name(w.weight.dtype())) + " " +
                shape_to_string(w.weight.shape()));
  if (!is_float(w.scales.dtype()) || w.scales.dtype() == DType::F64 || w.scales.dtype() != w.biases.dtype())
    throw Error(where + "scales and biases must share one of the dtypes F32, F16, BF16");
  const int64_t n = w.weight.dim(0);
  if ((w.weight.dim(1) * 32) % w.bits != 0)
    throw Error(where + "weight has " + std::to_string(w.weight.dim(1)) + " words per row, not a whole number of " +
                std::to_string(w.bits) + "-bit values");
  const int64_t k = w.weight.dim(1) * 32 / w.bits;
  const Shape groups = {n, k / w.group_size};
  if (k % w.group_size != 0 || w.scales.shape() != groups || w.biases.shape() != groups)
    throw Error(where + "weight " + shape_to_string(w.weight.shape()) + " holds rows of " + std::to_string(k) +
                " values, so scales and biases must be " + shape_to_string(groups) + " for group size " +
                std::to_string(w.group_size) + ", got " + shape_to_string(w.scales.shape()) + " and " +
                shape_to_string(w.biases.shape()));
}

}  // namespace afq
