#include "safetensors_layout.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "afq/error.h"

namespace afq {

uint64_t planned_bytes(const TensorSpec& spec, const std::string& where) {
  uint64_t numel = 1;
  for (int64_t d : spec.shape) {
    if (d < 0 || (d != 0 && numel > (uint64_t{1} << 60) / static_cast<uint64_t>(d)))
      throw Error(where + ": tensor '" + spec.name + "' has shape " + shape_to_string(spec.shape) +
                  "; dimensions must be non-negative with fewer than 2^60 elements in all");
    numel *= static_cast<uint64_t>(d);
  }
  return numel * dtype_size(spec.dtype);
}

void check_plan(const std::vector<TensorSpec>& plan, const std::string& where) {
  std::set<std::string_view> names;
  for (const TensorSpec& spec : plan) {
    if (spec.name == "__metadata__") throw Error(where + ": \"__metadata__\" cannot name a tensor");
    if (!names.insert(spec.name).second) throw Error(where + ": tensor '" + spec.name + "' is planned twice");
    planned_bytes(spec, where);
  }
}

FileLayout lay_out(std::vector<size_t> tensors, const std::vector<TensorSpec>& plan,
                   const std::map<std::string, std::string>& metadata, const std::string& where) {
  FileLayout layout;
  std::vector<size_t> order = tensors;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return dtype_size(plan[a].dtype) > dtype_size(plan[b].dtype); });
  std::map<size_t, uint64_t> begin_of;
  for (size_t i : order) {
    begin_of[i] = layout.data_bytes;
    layout.data_bytes += planned_bytes(plan[i], where);
  }
  layout.tensors = std::move(tensors);
  for (size_t i : layout.tensors) layout.begin.push_back(begin_of[i]);

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (size_t k = 0; k < layout.tensors.size(); ++k) {
    const TensorSpec& spec = plan[layout.tensors[k]];
    const uint64_t begin = layout.begin[k];
    header[spec.name] = {{"dtype", std::string(dtype_name(spec.dtype))},
                         {"shape", spec.shape},
                         {"data_offsets", {begin, begin + planned_bytes(spec, where)}}};
  }
  try {
    layout.header = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata string that is not UTF-8
    throw Error(where + ": cannot write the header: " + std::string(e.what()));
  }
  layout.header.resize((layout.header.size() + 7) / 8 * 8, ' ');
  return layout;
}

void write_header(OutputFile& file, const FileLayout& layout) {
  std::byte length[8];
  for (int i = 0; i < 8; ++i) length[i] = std::byte(static_cast<uint8_t>(uint64_t{layout.header.size()} >> (8 * i)));
  file.write_at(0, length);
  file.write_at(8, std::as_bytes(std::span(layout.header.data(), layout.header.size())));
}

}  // namespace afq
