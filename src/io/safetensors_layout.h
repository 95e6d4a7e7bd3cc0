// Where each tensor goes in a safetensors file about to be written, and its header. Shared by
// CheckpointWriter (many files, streamed) and write_safetensors (one file).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "afq/safetensors.h"
#include "output_file.h"

namespace afq {

// Byte count of a planned tensor; throws (starting with `where`) on negative or overflowing shapes.
uint64_t planned_bytes(const TensorSpec& spec, const std::string& where);

// Throws (starting with `where`) on duplicate names, "__metadata__" as a name, or bad shapes.
void check_plan(const std::vector<TensorSpec>& plan, const std::string& where);

struct FileLayout {
  std::vector<size_t> tensors;  // indices into the plan, in plan order
  std::vector<uint64_t> begin;  // data-section offset of each, parallel to tensors
  uint64_t data_bytes = 0;
  std::string header;  // the JSON, padded with spaces to a multiple of 8 bytes

  uint64_t data_start() const { return 8 + header.size(); }
};

// Places `tensors` (plan indices) in the data section, widest elements first and otherwise in plan
// order, so that every tensor is aligned to its element size when the file is mapped (the header
// is padded to 8 bytes). Builds the header; throws (starting with `where`) on names JSON cannot hold.
FileLayout lay_out(std::vector<size_t> tensors, const std::vector<TensorSpec>& plan,
                   const std::map<std::string, std::string>& metadata, const std::string& where);

// The 8-byte little-endian length and the header, at the start of `file`.
void write_header(OutputFile& file, const FileLayout& layout);

}  // namespace afq
