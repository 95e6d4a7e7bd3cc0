// A Hugging Face checkpoint: its shards, found through model.safetensors.index.json when present.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "afq/error.h"
#include "afq/safetensors.h"

namespace afq {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_index(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw Error(path.string() + ": invalid JSON: " + what);
  }
}

// The shard files of a directory: those the index names, else model.safetensors, else every
// *.safetensors (sorted). Fills `index_map` (tensor -> file name) from the index when there is one.
std::vector<fs::path> shards_of(const fs::path& dir, const fs::path& index_path,
                                std::map<std::string, std::string>& index_map) {
  std::error_code ec;
  std::vector<fs::path> paths;
  if (fs::exists(index_path, ec)) {
    nlohmann::json index = read_index(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw Error(index_path.string() + ": missing \"weight_map\" object (tensor name -> shard file)");
    std::set<std::string> files;
    for (const auto& [tensor, file] : index["weight_map"].items()) {
      if (!file.is_string())
        throw Error(index_path.string() + ": weight_map entry '" + tensor + "' is not a file name but " +
                    file.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      const std::string name = file.get<std::string>();
      if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
        throw Error(index_path.string() + ": weight_map entry '" + tensor + "' names '" + name +
                    "', not a file in this directory");
      index_map[tensor] = name;
      files.insert(name);
    }
    for (const auto& f : files) {
      if (!fs::is_regular_file(dir / f, ec))
        throw Error((dir / f).string() + ": shard named by " + index_path.filename().string() + " is missing");
      paths.push_back(dir / f);
    }
  }
  // An index naming no tensors (an empty checkpoint) leaves the files to the rules below.
  if (!paths.empty()) return paths;
  if (fs::exists(dir / "model.safetensors", ec)) return {dir / "model.safetensors"};
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".safetensors" && fs::is_regular_file(it->path(), ec)) paths.push_back(it->path());
  if (ec) throw Error(dir.string() + ": cannot list the directory: " + ec.message());
  std::sort(paths.begin(), paths.end());
  if (paths.empty()) throw Error(dir.string() + ": no .safetensors files in this directory");
  return paths;
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir_or_file) {
  std::error_code ec;
  if (!fs::exists(dir_or_file, ec)) throw Error(dir_or_file.string() + ": no such file or directory");
  Checkpoint checkpoint;
  std::vector<fs::path> paths;
  std::map<std::string, std::string> index_map;  // tensor -> shard file, from the index
  const fs::path index_path = dir_or_file / "model.safetensors.index.json";
  if (fs::is_directory(dir_or_file, ec)) {
    checkpoint.dir_ = dir_or_file;
    paths = shards_of(dir_or_file, index_path, index_map);
  } else {
    checkpoint.dir_ = dir_or_file.has_parent_path() ? dir_or_file.parent_path() : fs::path(".");
    paths.push_back(dir_or_file);
  }

  for (const auto& path : paths) {
    checkpoint.files_.push_back(SafetensorsFile::open(path));
    const size_t file_index = checkpoint.files_.size() - 1;
    for (const auto& entry : checkpoint.files_.back().entries()) {
      auto [it, inserted] = checkpoint.where_.emplace(entry.name, file_index);
      if (!inserted)
        throw Error(path.string() + ": tensor '" + entry.name + "' is also in " +
                    checkpoint.files_[it->second].path().string());
    }
  }
  for (const auto& [tensor, file] : index_map) {
    auto it = checkpoint.where_.find(tensor);
    if (it == checkpoint.where_.end() || checkpoint.files_[it->second].path().filename() != file)
      throw Error(index_path.string() + ": tensor '" + tensor + "' is not in " + file + " as the index says");
  }
  return checkpoint;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(where_.size());
  for (const auto& [name, file] : where_) names.push_back(name);
  return names;  // std::map keeps them sorted
}

bool Checkpoint::contains(std::string_view name) const { return where_.find(name) != where_.end(); }

const SafetensorsFile& Checkpoint::file_of(std::string_view name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(dir_.string() + ": no tensor named '" + std::string(name) + "'");
  return files_[it->second];
}

const TensorEntry& Checkpoint::entry(std::string_view name) const { return *file_of(name).find(name); }

Tensor Checkpoint::tensor(std::string_view name) const { return file_of(name).tensor(name); }

}  // namespace afq
