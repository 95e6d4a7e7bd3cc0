#include "side_files.h"

#include <array>
#include <string_view>
#include <system_error>

#include "afq/error.h"

namespace afq {

namespace fs = std::filesystem;

void copy_side_files(const fs::path& from, const fs::path& to) {
  constexpr std::array<std::string_view, 9> kWeightExtensions = {
      ".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack", ".onnx"};
  for (const auto& item : fs::directory_iterator(from)) {
    if (!item.is_regular_file()) continue;
    const std::string name = item.path().filename().string();
    if (name == "config.json" || name == "model.safetensors.index.json" || name.starts_with(".")) continue;
    bool is_weights = false;
    for (auto ext : kWeightExtensions) is_weights |= name.ends_with(ext);
    if (is_weights) continue;
    std::error_code ec;
    fs::copy_file(item.path(), to / name, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error(item.path().string() + ": cannot copy into the output: " + ec.message());
  }
}

}  // namespace afq
