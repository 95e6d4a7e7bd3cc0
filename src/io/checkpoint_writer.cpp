// Streaming, sharded, atomic checkpoint writing. The plan fixes every header before the first byte
// of data, so tensors can be written one at a time as they are produced.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "afq/error.h"
#include "afq/safetensors.h"
#include "output_file.h"
#include "safetensors_layout.h"

namespace afq {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

std::string shard_name(size_t i, size_t count) {
  if (count == 1) return "model.safetensors";
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, count);
  return buf;
}

// Hidden, so that a half-written checkpoint never looks like one.
fs::path temp_path(const fs::path& dir, const std::string& name) { return dir / ("." + name + ".tmp"); }

}  // namespace

struct CheckpointWriter::Impl {
  fs::path dir;
  std::string where;  // the directory, as messages name it
  std::vector<TensorSpec> plan;
  WriteOptions options;
  std::vector<std::string> names;     // final file name of each shard
  std::vector<FileLayout> layouts;    // one per shard
  std::vector<size_t> shard_of;       // plan index -> shard
  std::vector<size_t> slot_of;        // plan index -> position in its shard's layout
  size_t next = 0;                    // next plan index to write
  std::optional<size_t> open_shard;
  std::optional<OutputFile> file;
  std::vector<fs::path> renamed;      // final files already in place, removed again if finish() fails
  bool finished = false;

  void open(size_t shard) {
    close();
    open_shard = shard;
    const FileLayout& layout = layouts[shard];
    file.emplace(temp_path(dir, names[shard]), std::min<uint64_t>(layout.data_start() + layout.data_bytes, 8 << 20));
    write_header(*file, layout);
  }

  void close() {
    if (file) {
      file->close();
      file.reset();
    }
  }

  void move_into_place(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::rename(from, to, ec);
    if (ec) throw Error(to.string() + ": cannot rename " + from.filename().string() + " into place: " + ec.message());
    renamed.push_back(to);
  }

  void write_index() {
    uint64_t total = 0;
    nlohmann::json weight_map = nlohmann::json::object();  // a std::map inside: names sorted
    for (size_t i = 0; i < plan.size(); ++i) {
      total += planned_bytes(plan[i], where);
      weight_map[plan[i].name] = names[shard_of[i]];
    }
    nlohmann::json metadata = {{"total_size", total}};
    for (const auto& [key, value] : options.index_metadata) metadata[key] = value;
    const std::string text = nlohmann::json{{"metadata", metadata}, {"weight_map", weight_map}}.dump(4) + "\n";
    OutputFile index(temp_path(dir, kIndexName), text.size());
    index.write_at(0, std::as_bytes(std::span(text.data(), text.size())));
    index.close();
  }
};

CheckpointWriter::CheckpointWriter(fs::path dir, std::vector<TensorSpec> plan, WriteOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.dir = std::move(dir);
  w.where = w.dir.string();
  w.plan = std::move(plan);
  w.options = std::move(options);
  std::error_code ec;
  if (!fs::is_directory(w.dir, ec)) throw Error(w.where + ": output directory does not exist");
  check_plan(w.plan, w.where);

  // Shards in plan order; a new one starts before one would pass max_shard_bytes (as mlx-lm and
  // transformers do), so a tensor larger than the limit gets a shard of its own.
  std::vector<std::vector<size_t>> members(1);
  uint64_t shard_bytes = 0;
  for (size_t i = 0; i < w.plan.size(); ++i) {
    const uint64_t bytes = planned_bytes(w.plan[i], w.where);
    if (!members.back().empty() && shard_bytes + bytes > w.options.max_shard_bytes) {
      members.emplace_back();
      shard_bytes = 0;
    }
    w.shard_of.push_back(members.size() - 1);
    w.slot_of.push_back(members.back().size());
    members.back().push_back(i);
    shard_bytes += bytes;
  }
  for (size_t s = 0; s < members.size(); ++s) {
    w.names.push_back(shard_name(s, members.size()));
    w.layouts.push_back(lay_out(std::move(members[s]), w.plan, w.options.metadata, w.where));
  }
}

CheckpointWriter::~CheckpointWriter() {
  if (impl_->finished) return;
  impl_->file.reset();  // closes without throwing
  std::error_code ec;
  for (const auto& name : impl_->names) fs::remove(temp_path(impl_->dir, name), ec);
  fs::remove(temp_path(impl_->dir, kIndexName), ec);
  for (const auto& path : impl_->renamed) fs::remove(path, ec);
}

std::vector<std::string> CheckpointWriter::file_names() const { return impl_->names; }

void CheckpointWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  Impl& w = *impl_;
  if (w.finished) throw Error(w.where + ": tensor '" + std::string(name) + "' written after finish()");
  if (w.next >= w.plan.size())
    throw Error(w.where + ": tensor '" + std::string(name) + "' written after every planned tensor");
  const TensorSpec& spec = w.plan[w.next];
  if (spec.name != name)
    throw Error(w.where + ": expected tensor '" + spec.name + "' next (plan order), got '" + std::string(name) + "'");
  const uint64_t expected = planned_bytes(spec, w.where);
  if (bytes.size() != expected)
    throw Error(w.where + ": tensor '" + spec.name + "' has " + std::to_string(bytes.size()) + " bytes, its plan (" +
                std::string(dtype_name(spec.dtype)) + " " + shape_to_string(spec.shape) + ") needs " +
                std::to_string(expected));
  const size_t shard = w.shard_of[w.next];
  if (w.open_shard != shard) w.open(shard);
  const FileLayout& layout = w.layouts[shard];
  w.file->write_at(layout.data_start() + layout.begin[w.slot_of[w.next]], bytes);
  ++w.next;
}

void CheckpointWriter::write(std::string_view name, const Tensor& tensor) {
  const Impl& w = *impl_;
  if (!tensor.defined()) throw Error(w.where + ": tensor '" + std::string(name) + "' is undefined");
  if (w.next < w.plan.size()) {
    const TensorSpec& spec = w.plan[w.next];
    if (spec.name == name && (tensor.dtype() != spec.dtype || tensor.shape() != spec.shape))
      throw Error(w.where + ": tensor '" + spec.name + "' is " + std::string(dtype_name(tensor.dtype())) + " " +
                  shape_to_string(tensor.shape()) + ", its plan says " + std::string(dtype_name(spec.dtype)) + " " +
                  shape_to_string(spec.shape));
  }
  write(name, std::span<const std::byte>(tensor.bytes(), tensor.nbytes()));
}

void CheckpointWriter::finish() {
  Impl& w = *impl_;
  if (w.finished) return;
  if (w.next != w.plan.size())
    throw Error(w.where + ": " + std::to_string(w.plan.size() - w.next) + " planned tensors not written, the first '" +
                w.plan[w.next].name + "'");
  if (w.plan.empty()) w.open(0);  // an empty checkpoint is one file with just a header
  w.close();
  if (w.names.size() > 1 || w.options.always_write_index) w.write_index();
  // Everything is written; only renames remain. The index goes last: it names the shards.
  for (const auto& name : w.names) w.move_into_place(temp_path(w.dir, name), w.dir / name);
  if (w.names.size() > 1 || w.options.always_write_index)
    w.move_into_place(temp_path(w.dir, kIndexName), w.dir / kIndexName);
  w.finished = true;
}

}  // namespace afq
