#include "staging_dir.h"

#include <unistd.h>

#include <system_error>

#include "afq/error.h"

namespace afq {

namespace fs = std::filesystem;

StagingDir::StagingDir(fs::path out) : out_(std::move(out)) {
  if (out_.filename().empty()) out_ = out_.parent_path();  // "dir/" -> "dir"
  std::error_code ec;
  if (fs::exists(out_, ec)) throw Error(out_.string() + ": output path exists; choose a new one or remove it first");
  fs::path parent = out_.has_parent_path() ? out_.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) throw Error(parent.string() + ": no such directory for the output");
  staging_ = parent / ("." + out_.filename().string() + ".afq-partial-" + std::to_string(::getpid()));
  fs::remove_all(staging_, ec);
  if (!fs::create_directory(staging_, ec) || ec)
    throw Error(staging_.string() + ": cannot create the output directory: " + ec.message());
}

StagingDir::~StagingDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

void StagingDir::commit() {
  std::error_code ec;
  if (fs::exists(out_, ec)) throw Error(out_.string() + ": output path appeared while writing; left untouched");
  fs::rename(staging_, out_, ec);
  if (ec) throw Error(out_.string() + ": cannot move the finished output into place: " + ec.message());
  committed_ = true;
}

}  // namespace afq
