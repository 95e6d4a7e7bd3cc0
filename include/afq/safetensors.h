// safetensors files and Hugging Face checkpoints made of them: memory-mapped reading (tensors
// are zero-copy views of the mapping), sharded checkpoints through model.safetensors.index.json,
// and streaming writes that go to temporary names and are renamed only when complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "afq/tensor.h"

namespace afq {

// One tensor as a safetensors header describes it.
struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0;  // byte offsets into the data section, [begin, end)
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<TensorEntry> entries;           // in data order
  std::map<std::string, std::string> metadata;  // "__metadata__" (string values only, as the format says)
};

// Parses and validates a header: the JSON text after the 8-byte length. `data_size` is the byte
// count of the data section. Throws afq::Error whose message starts with `source` and names the
// tensor or field at fault (unknown dtype, shape/byte-count mismatch, overlapping or
// out-of-range offsets, invalid JSON). Never reads outside `json`.
SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t data_size, const std::string& source);

// One memory-mapped .safetensors file.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorEntry>& entries() const { return header_.entries; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorEntry* find(std::string_view name) const;  // nullptr when absent

  // A zero-copy, read-only view that keeps the mapping alive. Throws when absent.
  // The view is aligned to its element size when the file is (files from CheckpointWriter and the
  // safetensors library are); MLX pads nothing, so its views may be misaligned: read them with
  // memcpy or unaligned SIMD loads, or clone() them.
  Tensor tensor(std::string_view name) const;

 private:
  std::filesystem::path path_;
  SafetensorsHeader header_;
  std::shared_ptr<const void> mapping_;  // the mapped file; views keep it alive
  const std::byte* data_ = nullptr;      // the data section inside the mapping
};

// A Hugging Face checkpoint: a directory with model.safetensors, or shards listed by
// model.safetensors.index.json (else every *.safetensors in it), or a single .safetensors file.
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& dir_or_file);

  // The directory (the file's own directory for a single file).
  const std::filesystem::path& dir() const { return dir_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }

  std::vector<std::string> tensor_names() const;  // sorted
  bool contains(std::string_view name) const;
  const TensorEntry& entry(std::string_view name) const;      // throws naming the tensor
  Tensor tensor(std::string_view name) const;                 // zero-copy view; throws when absent
  const SafetensorsFile& file_of(std::string_view name) const;

 private:
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t, std::less<>> where_;  // tensor name -> index into files_
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
};

struct WriteOptions {
  uint64_t max_shard_bytes = 5ull << 30;        // a new shard starts before one would pass this
  std::map<std::string, std::string> metadata;  // each file's "__metadata__"
  bool always_write_index = true;               // mlx-lm writes the index even for one shard
  std::map<std::string, uint64_t> index_metadata;  // extra numbers for the index ("total_parameters")
};

// Writes a checkpoint into `dir` as model.safetensors, or model-0000i-of-0000n.safetensors
// shards plus model.safetensors.index.json. Tensors are planned up front (so headers are known)
// and then streamed one by one in plan order, so memory stays at one tensor. Shards take tensors
// in plan order; inside a shard wider elements come first, so every tensor is aligned to its
// element size. Files are written under hidden temporary names (.model.safetensors.tmp) and
// renamed by finish(); a writer destroyed before finish() removes them. Errors (a plan with a
// duplicate name, a tensor out of order or of the wrong size, a full disk) throw afq::Error
// naming the directory or file.
class CheckpointWriter {
 public:
  CheckpointWriter(std::filesystem::path dir, std::vector<TensorSpec> plan, WriteOptions options = {});
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // The next tensor of the plan; its name, dtype and byte count must match.
  void write(std::string_view name, std::span<const std::byte> bytes);
  void write(std::string_view name, const Tensor& tensor);

  // Checks every tensor was written, then renames the files into place and writes the index.
  void finish();

  // Files the checkpoint will have, in order (names only).
  std::vector<std::string> file_names() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes one .safetensors file atomically (a temporary name beside it, then rename), laid out
// as CheckpointWriter lays out a shard.
void write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace afq
