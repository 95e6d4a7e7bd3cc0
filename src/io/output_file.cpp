#include "output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "afq/error.h"

namespace afq {

OutputFile::OutputFile(std::filesystem::path path, size_t buffer_bytes) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) fail("cannot create", errno);
  buffer_.resize(std::max<size_t>(buffer_bytes, 1));
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::fail(const char* what, int error) const {
  std::string message = path_.string() + ": " + what + ": " + std::strerror(error);
  if (error == ENOSPC || error == EDQUOT) message += " (disk full)";
  throw Error(message);
}

void OutputFile::write_fully(uint64_t offset, const std::byte* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed", errno);
    }
    if (n == 0) fail("write failed", EIO);
    data += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
}

void OutputFile::flush() {
  if (buffered_ == 0) return;
  write_fully(buffer_offset_, buffer_.data(), buffered_);
  buffer_offset_ += buffered_;
  buffered_ = 0;
}

void OutputFile::write_at(uint64_t offset, std::span<const std::byte> bytes) {
  if (fd_ < 0) fail("write after close", EBADF);
  if (offset != buffer_offset_ + buffered_) {
    flush();
    buffer_offset_ = offset;
  }
  if (buffered_ == 0 && bytes.size() >= buffer_.size()) {  // large: straight from the caller's memory
    write_fully(offset, bytes.data(), bytes.size());
    buffer_offset_ = offset + bytes.size();
    return;
  }
  while (!bytes.empty()) {
    const size_t n = std::min(bytes.size(), buffer_.size() - buffered_);
    std::memcpy(buffer_.data() + buffered_, bytes.data(), n);
    buffered_ += n;
    bytes = bytes.subspan(n);
    if (buffered_ == buffer_.size()) flush();
  }
}

void OutputFile::close() {
  if (fd_ < 0) return;
  flush();
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("write failed", errno);  // NFS and quotas may report errors only here
}

}  // namespace afq
