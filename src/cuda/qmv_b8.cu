// The 8-bit decode GEMV kernels (one file per bit width keeps the build parallel).
#include "src/cuda/qmv.cuh"

namespace afq::cuda {
void qmv_bits8(const QmmProblem& p) { qmv_for_bits<8>(p); }
}  // namespace afq::cuda
