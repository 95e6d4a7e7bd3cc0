// The 8-bit int8-activation decode GEMV (one file per bit width keeps the build parallel).
#include "src/cuda/qmv_int8.cuh"

namespace afq::cuda {
bool qmv_int8_fits_bits8(const QmmProblem& p, const DeviceInfo& device) { return qmv_int8_fits<8>(p, device); }
void qmv_int8_bits8(const QmmProblem& p) { qmv_int8_for_bits<8>(p); }
}  // namespace afq::cuda
