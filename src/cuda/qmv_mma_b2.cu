// The 2-bit register-dequant tensor-core GEMV kernels (one file per bit width keeps the build parallel).
#include "src/cuda/qmv_mma.cuh"

namespace afq::cuda {
void qmv_mma_bits2(const QmmProblem& p) { qmv_mma_for_bits<2>(p); }
}  // namespace afq::cuda
