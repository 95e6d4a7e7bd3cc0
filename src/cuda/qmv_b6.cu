// The 6-bit decode GEMV kernels (one file per bit width keeps the build parallel).
#include "src/cuda/qmv.cuh"

namespace afq::cuda {
void qmv_bits6(const QmmProblem& p) { qmv_for_bits<6>(p); }
}  // namespace afq::cuda
