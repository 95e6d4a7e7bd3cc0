#include <cstdint>
#include "afq/error.h"
#include "afq/safetensors.h"
#include "mapped_file.h"
#include "safetensors_buffer.h"

namespace afq {

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto mapped = MappedFile::open(path);
  ParsedSafetensors parsed = parse_safetensors_buffer({mapped->data(), mapped->size()}, path.string());
  SafetensorsFile file;
  file.path_ = path;
  file.header_ = std::move(parsed.header);
  file.data_ = mapped->data() + parsed.data_offset;
  file.mapping_ = std::move(mapped);
  return file;
}

const TensorEntry* SafetensorsFile::find(std::string_view name) const {
  for (const auto& e : header_.entries)
    if (e.name == name) return &e;
  return nullptr;
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const TensorEntry* e = find(name);
  if (!e) throw Error(path_.string() + ": no tensor named '" + std::string(name) + "'");
  Tensor view = Tensor::borrow(e->dtype, e->shape, data_ + e->begin, mapping_);
  // MLX writes unpadded headers, so its tensors can start at addresses their element type may not
  // be read from; those (only) are copied to aligned memory.
  if (reinterpret_cast<uintptr_t>(view.bytes()) % dtype_size(e->dtype) != 0) return view.clone();
  return view;
}

}  // namespace afq
