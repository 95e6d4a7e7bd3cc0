// afq bench qmm: times affine_qmm_t on the CPU or the GPU beside its peers (see bench_qmm.h);
// afq bench generate: a whole model (bench_generate.cpp).
#include <memory>
#include <string>

#include "afq/error.h"
#include "bench_qmm.h"
#include "commands.h"

namespace afq::cli {

// Stands in until bench_qmm_cuda.cpp is linked (its definition, when present, wins).
__attribute__((weak)) void run_cuda_qmm_bench(const QmmBenchOptions&) {
  throw Error("[bench qmm] --device cuda: this afq was built without the CUDA benchmark");
}

void add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Measure kernels beside their peers");
  bench->require_subcommand(1);
  add_bench_generate_command(*bench);

  struct Args {
    QmmBenchOptions options;
    std::string device = "cpu";
  };
  auto args = std::make_shared<Args>();
  // The shapes of the issue: 4096x4096, 14336x4096 and 4096x14336, at M = 1, 8, 128, 512.
  args->options.m = {1, 8, 128, 512};
  args->options.n = {4096, 14336, 4096};
  args->options.k = {4096, 4096, 14336};
  CLI::App* qmm = bench->add_subcommand("qmm", "y[M,N] = x[M,K] @ dequant(W[N,K])^T for every M x (N, K)");
  qmm->add_option("--m", args->options.m, "Rows of x (comma-separated list)")->delimiter(',');
  qmm->add_option("--n", args->options.n, "Rows of W, paired with --k (comma-separated list)")->delimiter(',');
  qmm->add_option("--k", args->options.k, "Columns of W, paired with --n (comma-separated list)")->delimiter(',');
  qmm->add_option("--bits", args->options.bits, "Bits per weight: 2, 3, 4, 5, 6 or 8");
  qmm->add_option("--group-size", args->options.group_size, "Group size: 32, 64 or 128");
  qmm->add_option("--threads", args->options.threads, "CPU threads (default: all cores or AFQ_NUM_THREADS)");
  qmm->add_option("--iterations", args->options.iterations, "Timed calls per case (default: about a second)");
  qmm->add_flag("--json", args->options.json, "One JSON object per case instead of a table");
  qmm->add_option("--device", args->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  qmm->callback([args] {
    const QmmBenchOptions& o = args->options;
    if (o.n.size() != o.k.size())
      throw Error("[bench qmm] --n has " + std::to_string(o.n.size()) + " values and --k " +
                  std::to_string(o.k.size()) + "; they pair up, so give as many of each");
    if (args->device == "cuda") {
      run_cuda_qmm_bench(o);
    } else {
      run_cpu_qmm_bench(o);
    }
  });
}

}  // namespace afq::cli
