// The 2-bit decode GEMV kernels (one file per bit width keeps the build parallel).
#include "src/cuda/qmv.cuh"

namespace afq::cuda {
void qmv_bits2(const QmmProblem& p) { qmv_for_bits<2>(p); }
}  // namespace afq::cuda
