// The 2-bit tensor-core GEMM kernels (one file per bit width keeps the build parallel).
#include "src/cuda/qmm_sm80.cuh"

namespace afq::cuda {
void qmm_sm80_bits2(const QmmProblem& p) { qmm_sm80_for_bits<2>(p); }
}  // namespace afq::cuda
