// `afq bench qmm --device cuda`: the CUDA back end of the benchmark. This build has no CUDA
// kernels yet (src/cuda), so asking for the device is a clear error rather than a silent CPU run.
#include "afq/error.h"
#include "bench_qmm.h"

namespace afq::cli {

void run_cuda_qmm_bench(const QmmBenchOptions&) {
  throw Error("afq bench qmm --device cuda: this build of afq has no CUDA kernels; use --device cpu");
}

}  // namespace afq::cli
