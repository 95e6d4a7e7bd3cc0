// The 4-bit register-dequant tensor-core GEMV kernels (one file per bit width keeps the build parallel).
#include "src/cuda/qmv_mma.cuh"

namespace afq::cuda {
void qmv_mma_bits4(const QmmProblem& p) { qmv_mma_for_bits<4>(p); }
}  // namespace afq::cuda
