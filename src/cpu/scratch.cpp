#include "src/cpu/scratch.h"

#include <cstdlib>
#include <memory>
#include <new>

namespace afq::cpu {
namespace {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

struct Buffer {
  std::unique_ptr<float, FreeDeleter> data;
  size_t floats = 0;
};

thread_local Buffer buffers[static_cast<int>(ScratchSlot::Count)];

}  // namespace

float* thread_scratch(ScratchSlot slot, size_t floats) {
  Buffer& b = buffers[static_cast<int>(slot)];
  if (floats > b.floats) {
    // Round up to 64 bytes (aligned_alloc needs a multiple of the alignment) and keep some room
    // so that slowly growing requests do not reallocate every time.
    size_t want = (floats + floats / 4 + 15) / 16 * 16;
    auto* p = static_cast<float*>(std::aligned_alloc(64, want * sizeof(float)));
    if (!p) throw std::bad_alloc();
    b.data.reset(p);
    b.floats = want;
  }
  return b.data.get();
}

}  // namespace afq::cpu
