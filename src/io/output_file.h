// A file written at chosen offsets through one large buffer: consecutive writes are gathered and
// written together, a write elsewhere flushes first. Every failure (disk full, quota, file size
// limit) becomes an afq::Error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace afq {

class OutputFile {
 public:
  // Creates (or truncates) `path`; throws naming it when that fails.
  explicit OutputFile(std::filesystem::path path, size_t buffer_bytes = 8 << 20);
  ~OutputFile();  // closes without reporting errors: call close() to learn of them
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  const std::filesystem::path& path() const { return path_; }

  void write_at(uint64_t offset, std::span<const std::byte> bytes);
  // Writes out what is buffered and closes the file; throws naming it on any error.
  void close();

 private:
  void flush();
  void write_fully(uint64_t offset, const std::byte* data, size_t size);
  [[noreturn]] void fail(const char* what, int error) const;

  std::filesystem::path path_;
  int fd_ = -1;
  std::vector<std::byte> buffer_;
  size_t buffered_ = 0;          // bytes in buffer_
  uint64_t buffer_offset_ = 0;   // file offset of buffer_[0]
};

}  // namespace afq
