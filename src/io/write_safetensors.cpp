// One .safetensors file, written under a temporary name beside the target and renamed when complete.
#include <algorithm>
#include <numeric>

#include "afq/error.h"
#include "afq/safetensors.h"
#include "output_file.h"
#include "safetensors_layout.h"

namespace afq {

namespace fs = std::filesystem;

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string where = path.string();
  std::vector<TensorSpec> plan;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) throw Error(where + ": tensor '" + name + "' is undefined");
    plan.push_back({name, t.dtype(), t.shape()});
  }
  check_plan(plan, where);
  std::vector<size_t> all(plan.size());
  std::iota(all.begin(), all.end(), size_t{0});
  const FileLayout layout = lay_out(all, plan, metadata, where);

  const fs::path temp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  try {
    OutputFile file(temp, std::min<uint64_t>(layout.data_start() + layout.data_bytes, 8 << 20));
    write_header(file, layout);
    for (size_t k = 0; k < tensors.size(); ++k) {
      const Tensor& t = tensors[k].second;
      file.write_at(layout.data_start() + layout.begin[k], std::span(t.bytes(), t.nbytes()));
    }
    file.close();
    std::error_code ec;
    fs::rename(temp, path, ec);
    if (ec) throw Error(where + ": cannot rename " + temp.filename().string() + " into place: " + ec.message());
  } catch (...) {
    std::error_code ec;
    fs::remove(temp, ec);
    throw;
  }
}

}  // namespace afq
