// Streaming, sharded, atomic safetensors writing. The plan fixes every header before the first
// byte of data, so tensors can be written one at a time as they are produced.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "afq/error.h"
#include "afq/safetensors.h"

namespace afq {

namespace fs = std::filesystem;

namespace {

struct Shard {
  std::string name;                    // final file name
  std::vector<size_t> tensors;         // indices into the plan
  std::vector<uint64_t> begins;        // data offsets, parallel to tensors
  uint64_t data_bytes = 0;
};

uint64_t spec_bytes(const TensorSpec& spec) { return static_cast<uint64_t>(shape_numel(spec.shape)) * dtype_size(spec.dtype); }

std::string shard_name(size_t i, size_t count) {
  if (count == 1) return "model.safetensors";
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, count);
  return buf;
}

fs::path temp_path(const fs::path& dir, const std::string& name) { return dir / ("." + name + ".tmp"); }

// The header of one shard, padded with spaces to a multiple of 8 bytes as safetensors does.
std::string shard_header(const Shard& shard, const std::vector<TensorSpec>& plan,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (size_t i = 0; i < shard.tensors.size(); ++i) {
    const TensorSpec& spec = plan[shard.tensors[i]];
    header[spec.name] = {{"dtype", std::string(dtype_name(spec.dtype))},
                         {"shape", spec.shape},
                         {"data_offsets", {shard.begins[i], shard.begins[i] + spec_bytes(spec)}}};
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  return text;
}

}  // namespace

struct CheckpointWriter::Impl {
  fs::path dir;
  std::vector<TensorSpec> plan;
  WriteOptions options;
  std::vector<Shard> shards;
  std::vector<size_t> shard_of;  // plan index -> shard
  size_t next = 0;               // next plan index to write
  size_t open_shard = SIZE_MAX;
  std::FILE* file = nullptr;
  bool finished = false;

  void fail_io(const fs::path& path, const char* what) {
    throw Error(path.string() + ": " + what + ": " + std::strerror(errno) + (errno == ENOSPC ? " (disk full)" : ""));
  }

  void put(const void* data, size_t size, const fs::path& path) {
    if (size && std::fwrite(data, 1, size, file) != size) fail_io(path, "write failed");
  }

  void close_file() {
    if (!file) return;
    const fs::path path = temp_path(dir, shards[open_shard].name);
    std::FILE* f = file;
    file = nullptr;
    if (std::fclose(f) != 0) fail_io(path, "write failed");
  }

  void open_file(size_t shard) {
    close_file();
    open_shard = shard;
    const fs::path path = temp_path(dir, shards[shard].name);
    file = std::fopen(path.c_str(), "wb");
    if (!file) fail_io(path, "cannot create");
    std::setvbuf(file, nullptr, _IOFBF, 4 << 20);
    const std::string header = shard_header(shards[shard], plan, options.metadata);
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(uint64_t{header.size()} >> (8 * i));
    put(length, 8, path);
    put(header.data(), header.size(), path);
  }
};

CheckpointWriter::CheckpointWriter(fs::path dir, std::vector<TensorSpec> plan, WriteOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
  impl_->plan = std::move(plan);
  impl_->options = std::move(options);
  if (!fs::is_directory(impl_->dir)) throw Error(impl_->dir.string() + ": output directory does not exist");
  // A new shard starts before one would pass max_shard_bytes (as mlx-lm and transformers).
  std::vector<Shard>& shards = impl_->shards;
  shards.emplace_back();
  for (size_t i = 0; i < impl_->plan.size(); ++i) {
    const uint64_t bytes = spec_bytes(impl_->plan[i]);
    if (!shards.back().tensors.empty() && shards.back().data_bytes + bytes > impl_->options.max_shard_bytes)
      shards.emplace_back();
    Shard& shard = shards.back();
    shard.tensors.push_back(i);
    shard.begins.push_back(shard.data_bytes);
    shard.data_bytes += bytes;
    impl_->shard_of.push_back(shards.size() - 1);
  }
  for (size_t s = 0; s < shards.size(); ++s) shards[s].name = shard_name(s, shards.size());
}

CheckpointWriter::~CheckpointWriter() {
  if (impl_->finished) return;
  if (impl_->file) std::fclose(impl_->file);
  std::error_code ec;
  for (const auto& shard : impl_->shards) fs::remove(temp_path(impl_->dir, shard.name), ec);
}

std::vector<std::string> CheckpointWriter::file_names() const {
  std::vector<std::string> names;
  for (const auto& s : impl_->shards) names.push_back(s.name);
  return names;
}

void CheckpointWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  Impl& w = *impl_;
  if (w.next >= w.plan.size()) throw Error("checkpoint writer: tensor '" + std::string(name) + "' is not in the plan");
  const TensorSpec& spec = w.plan[w.next];
  if (spec.name != name)
    throw Error("checkpoint writer: expected tensor '" + spec.name + "' next, got '" + std::string(name) + "'");
  if (bytes.size() != spec_bytes(spec))
    throw Error("checkpoint writer: tensor '" + spec.name + "' has " + std::to_string(bytes.size()) +
                " bytes, the plan says " + std::to_string(spec_bytes(spec)));
  if (w.shard_of[w.next] != w.open_shard) w.open_file(w.shard_of[w.next]);
  w.put(bytes.data(), bytes.size(), temp_path(w.dir, w.shards[w.open_shard].name));
  ++w.next;
}

void CheckpointWriter::write(std::string_view name, const Tensor& tensor) {
  const TensorSpec& spec = impl_->plan.at(std::min(impl_->next, impl_->plan.size() - 1));
  if (spec.name == name && (tensor.dtype() != spec.dtype || tensor.shape() != spec.shape))
    throw Error("checkpoint writer: tensor '" + spec.name + "' is " + std::string(dtype_name(tensor.dtype())) + " " +
                shape_to_string(tensor.shape()) + ", the plan says " + std::string(dtype_name(spec.dtype)) + " " +
                shape_to_string(spec.shape));
  write(name, std::span<const std::byte>(tensor.bytes(), tensor.nbytes()));
}

void CheckpointWriter::finish() {
  Impl& w = *impl_;
  if (w.next != w.plan.size())
    throw Error("checkpoint writer: " + std::to_string(w.plan.size() - w.next) + " tensors not written, first '" +
                w.plan[w.next].name + "'");
  // Shards without tensors (an empty plan) still get their header.
  for (size_t s = 0; s < w.shards.size(); ++s)
    if (w.shards[s].tensors.empty()) w.open_file(s);
  w.close_file();
  for (const auto& shard : w.shards) {
    std::error_code ec;
    fs::rename(temp_path(w.dir, shard.name), w.dir / shard.name, ec);
    if (ec) throw Error((w.dir / shard.name).string() + ": cannot rename into place: " + ec.message());
  }
  if (w.shards.size() > 1 || w.options.always_write_index) {
    uint64_t total = 0;
    nlohmann::json weight_map = nlohmann::json::object();  // sorted by name
    for (size_t i = 0; i < w.plan.size(); ++i) {
      total += spec_bytes(w.plan[i]);
      weight_map[w.plan[i].name] = w.shards[w.shard_of[i]].name;
    }
    nlohmann::json metadata = {{"total_size", total}};
    for (const auto& [key, value] : w.options.index_metadata) metadata[key] = value;
    nlohmann::json index = {{"metadata", metadata}, {"weight_map", weight_map}};
    const fs::path path = w.dir / "model.safetensors.index.json";
    const fs::path tmp = temp_path(w.dir, "model.safetensors.index.json");
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) w.fail_io(tmp, "cannot create");
    const std::string text = index.dump(4) + "\n";
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (std::fclose(f) != 0 || !ok) w.fail_io(tmp, "write failed");
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error(path.string() + ": cannot rename into place: " + ec.message());
  }
  w.finished = true;
}

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // One shard, no index, under the requested name: write through a writer in a private directory
  // beside the target, then move the file.
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const fs::path staging = dir / ("." + path.filename().string() + ".staging");
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directory(staging, ec);
  if (ec) throw Error(staging.string() + ": cannot create: " + ec.message());
  try {
    std::vector<TensorSpec> plan;
    for (const auto& [name, t] : tensors) plan.push_back({name, t.dtype(), t.shape()});
    WriteOptions options;
    options.max_shard_bytes = UINT64_MAX;
    options.metadata = metadata;
    options.always_write_index = false;
    {
      CheckpointWriter writer(staging, plan, options);
      for (const auto& [name, t] : tensors) writer.write(name, t);
      writer.finish();
    }
    fs::rename(staging / "model.safetensors", path, ec);
    if (ec) throw Error(path.string() + ": cannot rename into place: " + ec.message());
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  fs::remove_all(staging, ec);
}

}  // namespace afq
