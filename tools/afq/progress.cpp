#include "progress.h"

#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>

namespace afq::cli {

ProgressFn terminal_progress(std::string label) {
  if (!::isatty(STDERR_FILENO)) return {};
  return [label = std::move(label)](size_t done, size_t total, const std::string& name) {
    constexpr int kWidth = 30;
    int filled = total ? static_cast<int>(kWidth * done / total) : kWidth;
    std::string bar(filled, '=');
    bar.resize(kWidth, ' ');
    std::string shown = name.size() > 40 ? "..." + name.substr(name.size() - 37) : name;
    fmt::print(stderr, "\r{} [{}] {}/{} {:<40}", label, bar, done, total, shown);
    if (done == total) fmt::print(stderr, "\n");
    std::fflush(stderr);
  };
}

}  // namespace afq::cli
