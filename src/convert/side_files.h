#pragma once

#include <filesystem>

namespace afq {

// Copies the files that travel with a checkpoint (tokenizer files, generation_config.json,
// chat templates, README, ...) from `from` to `to`: every regular file except the weights
// (safetensors and other weight formats), their index and config.json, which the converter writes.
void copy_side_files(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace afq
