// The 6-bit tensor-core GEMM kernels (one file per bit width keeps the build parallel).
#include "src/cuda/qmm_sm80.cuh"

namespace afq::cuda {
void qmm_sm80_bits6(const QmmProblem& p) { qmm_sm80_for_bits<6>(p); }
}  // namespace afq::cuda
