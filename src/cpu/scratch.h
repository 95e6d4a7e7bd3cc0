// Per-thread scratch buffers that grow on demand and are kept for the next call, so that a
// forward pass allocates nothing once warm.
#pragma once

#include <cstddef>

namespace afq::cpu {

// Which buffer: each slot is independent, so one thread can hold several at once.
enum class ScratchSlot {
  PackedX, XSums, RowScales, RowBiases, Tile, PaddedX, TransposedX, TileScales, QuantizedX, NaturalX, Count
};

// At least `floats` floats, 64-byte aligned, owned by the calling thread; the contents are
// unspecified and stay valid until this thread asks for the same slot again.
float* thread_scratch(ScratchSlot slot, size_t floats);

}  // namespace afq::cpu
