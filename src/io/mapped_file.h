// A read-only memory mapping of a whole file; tensors borrow from it through a shared_ptr.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

namespace afq {

class MappedFile {
 public:
  // Throws afq::Error naming the file when it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace afq
