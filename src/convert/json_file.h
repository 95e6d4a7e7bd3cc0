// JSON files of a checkpoint (config.json, the index): read with errors that name the file,
// written atomically.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

namespace afq {

nlohmann::json read_json_file(const std::filesystem::path& path);

// Writes `value` with `indent` spaces through a temporary file and a rename.
void write_json_file(const std::filesystem::path& path, const nlohmann::json& value, int indent);

}  // namespace afq
