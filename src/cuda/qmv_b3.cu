// The 3-bit decode GEMV kernels (one file per bit width keeps the build parallel).
#include "src/cuda/qmv.cuh"

namespace afq::cuda {
void qmv_bits3(const QmmProblem& p) { qmv_for_bits<3>(p); }
}  // namespace afq::cuda
