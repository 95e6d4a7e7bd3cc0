// Output directories that appear whole or not at all: everything is written into a hidden
// sibling "<out>.afq-partial-<pid>", renamed to <out> by commit(); destroyed uncommitted, the
// staging directory is removed.
#pragma once

#include <filesystem>

namespace afq {

class StagingDir {
 public:
  // Throws afq::Error when `out` exists (as mlx_lm.convert, we never write into an existing path)
  // or its parent directory cannot be written.
  explicit StagingDir(std::filesystem::path out);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  void commit();

 private:
  std::filesystem::path out_;
  std::filesystem::path staging_;
  bool committed_ = false;
};

}  // namespace afq
