// The 4-bit int8-activation decode GEMV (one file per bit width keeps the build parallel).
#include "src/cuda/qmv_int8.cuh"

namespace afq::cuda {
bool qmv_int8_fits_bits4(const QmmProblem& p, const DeviceInfo& device) { return qmv_int8_fits<4>(p, device); }
void qmv_int8_bits4(const QmmProblem& p) { qmv_int8_for_bits<4>(p); }
}  // namespace afq::cuda
