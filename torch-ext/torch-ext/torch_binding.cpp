// afq's kernels registered as PyTorch operators: the schemas, the checks every implementation
// shares, and thin CPU and CUDA implementations that call libafq (no kernel is copied here).
// Fake (meta) implementations for torch.compile are registered in Python (afq_torch/__init__.py).

// Which implementations this build has. torch-ext/CMakeLists.txt defines AFQ_TORCH_LOCAL_BUILD and
// AFQ_TORCH_WITH_CPU / AFQ_TORCH_WITH_CUDA; kernel-builder defines CPU_KERNEL or CUDA_KERNEL for
// the variant it builds (quantize and dequantize on the CPU need only libafq's portable part).
#if !defined(AFQ_TORCH_LOCAL_BUILD)
#if defined(CUDA_KERNEL)
#define AFQ_TORCH_WITH_CUDA 1
#define AFQ_HAVE_CUDA 1  // what afq_cuda's CMake target defines for its users
#elif defined(CPU_KERNEL)
#define AFQ_TORCH_WITH_CPU 1
#endif
#include "registration.h"  // kernel-builder's: TORCH_LIBRARY_EXPAND, REGISTER_EXTENSION (includes Python.h)
#elif defined(AFQ_TORCH_PYTHON_MODULE)
#include <Python.h>  // first, as Python asks: the module is also importable (see the end of this file)
#endif

#include <ATen/ATen.h>
#include <ATen/Config.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "afq/error.h"
#include "afq/quant.h"
#include "afq/tensor.h"
#include "torch_binding.h"

#ifdef AFQ_TORCH_WITH_CPU
#include "afq/cpu.h"
// at::parallel_for, which the CPU ops run on, is an inline template that is serial unless this
// file is compiled with OpenMP (as PyTorch is): the ops would silently use one core.
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "afq_torch: compile torch_binding.cpp with OpenMP (-fopenmp), or its CPU ops run on one thread"
#endif
#endif
#ifdef AFQ_TORCH_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "afq/cuda.h"
#endif

// The operator namespace: `afq` in a local build (torch.ops.afq); on the kernels hub the build's
// unique id (TORCH_EXTENSION_NAME, which the generated _ops.py names), so that several versions of
// the kernel can be loaded side by side.
#ifndef AFQ_OPS_NAMESPACE
#ifdef AFQ_TORCH_LOCAL_BUILD
#define AFQ_OPS_NAMESPACE afq
#else
#define AFQ_OPS_NAMESPACE TORCH_EXTENSION_NAME
#endif
#endif
// TORCH_LIBRARY pastes its namespace argument unexpanded; one more level expands the macro first.
#define AFQ_TORCH_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define AFQ_TORCH_LIBRARY_IMPL(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)

namespace afq_torch {
namespace {

constexpr const char* kQmm = "afq::affine_qmm_t";
constexpr const char* kQuantize = "afq::affine_quantize";
constexpr const char* kDequantize = "afq::affine_dequantize";

// A dtype as Python prints it ("torch.bfloat16"), for messages.
std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::ScalarType::Float: return "torch.float32";
    case at::ScalarType::Double: return "torch.float64";
    case at::ScalarType::Half: return "torch.float16";
    case at::ScalarType::BFloat16: return "torch.bfloat16";
    case at::ScalarType::Int: return "torch.int32";
    case at::ScalarType::Long: return "torch.int64";
    case at::ScalarType::Short: return "torch.int16";
    case at::ScalarType::Char: return "torch.int8";
    case at::ScalarType::Byte: return "torch.uint8";
    case at::ScalarType::Bool: return "torch.bool";
    case at::ScalarType::UInt32: return "torch.uint32";
    default: return std::string("torch.") + c10::toString(type);
  }
}

bool is_float_dtype(at::ScalarType type) {
  return type == at::ScalarType::Float || type == at::ScalarType::Half || type == at::ScalarType::BFloat16;
}

afq::DType to_afq(at::ScalarType type) {
  switch (type) {
    case at::ScalarType::Float: return afq::DType::F32;
    case at::ScalarType::Half: return afq::DType::F16;
    case at::ScalarType::BFloat16: return afq::DType::BF16;
    default: TORCH_CHECK(false, "afq: no afq dtype for ", dtype_name(type));
  }
  return afq::DType::F32;  // not reached
}

void check_bits(const char* op, int64_t bits) {
  TORCH_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8, op,
              ": bits must be one of 2, 3, 4, 5, 6, 8, got ", bits);
}

void check_group_size(const char* op, int64_t group_size) {
  TORCH_CHECK(group_size == 32 || group_size == 64 || group_size == 128, op,
              ": group_size must be one of 32, 64, 128, got ", group_size);
}

struct QuantizedShape {
  int64_t n;  // rows of W (output features)
  int64_t k;  // columns of W (input features)
};

// Checks weight, scales and qbiases against each other and against bits and group_size.
QuantizedShape check_quantized(const char* op, const at::Tensor& weight, const at::Tensor& scales,
                               const at::Tensor& qbiases, int64_t group_size, int64_t bits) {
  check_bits(op, bits);
  check_group_size(op, group_size);
  TORCH_CHECK(weight.scalar_type() == at::ScalarType::UInt32 || weight.scalar_type() == at::ScalarType::Int, op,
              ": weight must be torch.uint32 or torch.int32 (packed words), got ", dtype_name(weight.scalar_type()));
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-D [N, K * bits / 32], got shape ", weight.sizes());
  const int64_t n = weight.size(0), words = weight.size(1);
  TORCH_CHECK(words > 0, op, ": weight must have at least one word per row, got shape ", weight.sizes());
  TORCH_CHECK(words * 32 % bits == 0, op, ": weight has ", words, " words per row, not a whole number of ", bits,
              "-bit values (bits=", bits, ")");
  const int64_t k = words * 32 / bits;
  TORCH_CHECK(k % group_size == 0, op, ": K = ", k, " (", words, " words per row at bits=", bits,
              ") must be a multiple of group_size ", group_size);
  TORCH_CHECK(is_float_dtype(scales.scalar_type()), op,
              ": scales must be torch.float32, torch.float16 or torch.bfloat16, got ", dtype_name(scales.scalar_type()));
  TORCH_CHECK(qbiases.scalar_type() == scales.scalar_type(), op, ": qbiases must have the dtype of scales (",
              dtype_name(scales.scalar_type()), "), got ", dtype_name(qbiases.scalar_type()));
  const std::vector<int64_t> groups = {n, k / group_size};
  TORCH_CHECK(scales.sizes() == at::IntArrayRef(groups), op, ": scales must have shape [N, K / group_size] = ",
              at::IntArrayRef(groups), ", got ", scales.sizes());
  TORCH_CHECK(qbiases.sizes() == at::IntArrayRef(groups), op, ": qbiases must have shape [N, K / group_size] = ",
              at::IntArrayRef(groups), ", got ", qbiases.sizes());
  TORCH_CHECK(scales.device() == weight.device() && qbiases.device() == weight.device(), op,
              ": weight, scales and qbiases must be on one device, got ", weight.device(), ", ", scales.device(),
              " and ", qbiases.device());
  return {n, k};
}

// Checks x [..., K] and returns M, the product of its leading dimensions.
int64_t check_x(const char* op, const at::Tensor& x, const at::Tensor& weight, int64_t k) {
  TORCH_CHECK(is_float_dtype(x.scalar_type()), op, ": x must be torch.float32, torch.float16 or torch.bfloat16, got ",
              dtype_name(x.scalar_type()));
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == k, op, ": x must have shape [..., K] with K = ", k,
              " (from weight and bits), got ", x.sizes());
  TORCH_CHECK(x.device() == weight.device(), op, ": x is on ", x.device(), " but weight is on ", weight.device(),
              "; all tensors must be on one device");
  return x.numel() / k;
}

// x's shape with the last dimension replaced by N.
std::vector<int64_t> output_shape(const at::Tensor& x, int64_t n) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  return shape;
}

// The packed words as a contiguous int32 tensor (a uint32 tensor is viewed, not copied: few
// operations support torch.uint32).
at::Tensor words_of(const at::Tensor& weight) {
  const at::Tensor words = weight.scalar_type() == at::ScalarType::UInt32 ? weight.view(at::ScalarType::Int) : weight;
  return words.contiguous();
}

// Runs f, turning afq's exceptions into PyTorch's (a RuntimeError in Python) named after the operator.
template <class F>
auto call_afq(const char* op, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const afq::Error& e) {
    TORCH_CHECK(false, op, ": ", e.what());
    throw;  // not reached: TORCH_CHECK(false, ...) throws
  }
}

// A read-only afq view of a contiguous tensor's memory, valid while the tensor lives (the call).
afq::Tensor borrow(const at::Tensor& t, afq::DType dtype) {
  return afq::Tensor::borrow(dtype, afq::Shape(t.sizes().begin(), t.sizes().end()), t.const_data_ptr(), nullptr);
}

afq::QuantizedWeight borrow_quantized(const at::Tensor& words, const at::Tensor& scales, const at::Tensor& qbiases,
                                      int64_t group_size, int64_t bits) {
  afq::QuantizedWeight w;
  w.weight = borrow(words, afq::DType::U32);
  w.scales = borrow(scales, to_afq(scales.scalar_type()));
  w.biases = borrow(qbiases, to_afq(qbiases.scalar_type()));
  w.bits = static_cast<int>(bits);
  w.group_size = static_cast<int>(group_size);
  return w;
}

// A CPU tensor over an afq tensor's memory, which it keeps alive (no copy).
at::Tensor to_torch(afq::Tensor t, at::ScalarType type) {
  const std::vector<int64_t> sizes(t.shape().begin(), t.shape().end());
  void* data = t.mutable_bytes();  // afq::quantize and afq::dequantize return tensors that own their bytes
  return at::from_blob(data, sizes, [owner = std::move(t)](void*) {}, at::TensorOptions().dtype(type));
}

#ifdef AFQ_TORCH_WITH_CUDA
// afq's CUDA kernels take 16-byte aligned pointers: a contiguous tensor whose data is not
// aligned (a view at an odd offset) is copied to a fresh allocation, which is.
at::Tensor aligned16(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return reinterpret_cast<uintptr_t>(c.const_data_ptr()) % 16 == 0 ? c : c.clone();
}

cudaStream_t current_stream(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

// W [n, k] in out_type from aligned device tensors, on the current stream.
at::Tensor dequantize_on_device(const char* op, const at::Tensor& words, const at::Tensor& scales,
                                const at::Tensor& qbiases, QuantizedShape shape, int64_t group_size, int64_t bits,
                                at::ScalarType out_type) {
  at::Tensor out = at::empty({shape.n, shape.k}, scales.options().dtype(out_type));
  if (shape.n == 0) return out;
  call_afq(op, [&] {
    afq::cuda::affine_dequantize(static_cast<const uint32_t*>(words.const_data_ptr()), scales.const_data_ptr(),
                                 qbiases.const_data_ptr(), out.mutable_data_ptr(), shape.n, shape.k,
                                 static_cast<int>(group_size), static_cast<int>(bits), to_afq(scales.scalar_type()),
                                 to_afq(out_type), current_stream(words));
  });
  return out;
}
#endif

}  // namespace

#ifdef AFQ_TORCH_WITH_CPU
// afq's CPU kernels run on PyTorch's intra-op threads (torch.set_num_threads applies), not on a
// second pool: two pools that both spin on the same cores slowed decoding tenfold.
const bool afq_on_torch_threads = [] {
  afq::cpu::set_host_parallel_for(
      {[](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
         const int64_t threads = std::max(1, at::get_num_threads());
         at::parallel_for(0, n, (n + threads - 1) / threads, fn);
       },
       [] { return at::get_num_threads(); }});
  return true;
}();

at::Tensor affine_qmm_t_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scales,
                            const at::Tensor& qbiases, int64_t group_size, int64_t bits) {
  const QuantizedShape shape = check_quantized(kQmm, weight, scales, qbiases, group_size, bits);
  const int64_t m = check_x(kQmm, x, weight, shape.k);
  const std::vector<int64_t> y_shape = output_shape(x, shape.n);
  if (m == 0 || shape.n == 0) return at::empty(y_shape, x.options());
  // The CPU kernels take float32 activations and write float32 (no copy when x is float32 already).
  const at::Tensor x32 = x.reshape({m, shape.k}).to(at::ScalarType::Float).contiguous();
  const at::Tensor words = words_of(weight), s = scales.contiguous(), b = qbiases.contiguous();
  at::Tensor y = at::empty({m, shape.n}, x.options().dtype(at::ScalarType::Float));
  call_afq(kQmm, [&] {
    const afq::QuantizedWeight w = borrow_quantized(words, s, b, group_size, bits);
    afq::cpu::affine_qmm_t(x32.const_data_ptr<float>(), m, w, nullptr, y.mutable_data_ptr<float>());
  });
  return y.to(x.scalar_type()).reshape(y_shape);
}
#endif

#ifdef AFQ_TORCH_WITH_CUDA
at::Tensor affine_qmm_t_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scales,
                             const at::Tensor& qbiases, int64_t group_size, int64_t bits) {
  const QuantizedShape shape = check_quantized(kQmm, weight, scales, qbiases, group_size, bits);
  const int64_t m = check_x(kQmm, x, weight, shape.k);
  const std::vector<int64_t> y_shape = output_shape(x, shape.n);
  if (m == 0 || shape.n == 0) return at::empty(y_shape, x.options());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor words = aligned16(words_of(weight)), s = aligned16(scales), b = aligned16(qbiases);
  if (x.scalar_type() == at::ScalarType::Float) {
    // The kernels take BF16 / F16 activations; float32 goes through afq's dequantize and a float32 matmul.
    const at::Tensor w = dequantize_on_device(kQmm, words, s, b, shape, group_size, bits, at::ScalarType::Float);
    return at::matmul(x, w.t());
  }
  const at::Tensor x2 = aligned16(x.reshape({m, shape.k}));
  at::Tensor y = at::empty({m, shape.n}, x.options());
  call_afq(kQmm, [&] {
    afq::cuda::affine_qmm_t(x2.const_data_ptr(), static_cast<const uint32_t*>(words.const_data_ptr()),
                            s.const_data_ptr(), b.const_data_ptr(), /*bias=*/nullptr, y.mutable_data_ptr(), m, shape.n,
                            shape.k, static_cast<int>(group_size), static_cast<int>(bits), to_afq(x.scalar_type()),
                            to_afq(s.scalar_type()), afq::DType::F32, current_stream(x2));
  });
  return y.reshape(y_shape);
}
#endif

std::tuple<at::Tensor, at::Tensor, at::Tensor> affine_quantize(const at::Tensor& w, int64_t group_size,
                                                               int64_t bits, std::string_view method) {
  check_bits(kQuantize, bits);
  check_group_size(kQuantize, group_size);
  const std::optional<afq::QuantMethod> parsed = afq::parse_quant_method(method);
  TORCH_CHECK(parsed.has_value(), kQuantize, ": method must be \"mlx\" or \"minmax\", got \"", std::string(method),
              "\"");
  TORCH_CHECK(is_float_dtype(w.scalar_type()), kQuantize,
              ": w must be torch.float32, torch.float16 or torch.bfloat16, got ", dtype_name(w.scalar_type()));
  TORCH_CHECK(w.dim() == 2, kQuantize, ": w must be 2-D [N, K], got shape ", w.sizes());
  TORCH_CHECK(w.size(1) % group_size == 0, kQuantize, ": w has K = ", w.size(1),
              " columns, not a multiple of group_size ", group_size);
  // afq quantizes on the CPU (all cores); a CUDA weight makes the round trip once, at load time.
  const at::Tensor host = w.cpu().contiguous();
  afq::QuantizedWeight q = call_afq(kQuantize, [&] {
    return afq::quantize(borrow(host, to_afq(host.scalar_type())), static_cast<int>(bits),
                         static_cast<int>(group_size), *parsed);
  });
  at::Tensor words = to_torch(std::move(q.weight), at::ScalarType::Int);
  at::Tensor scales = to_torch(std::move(q.scales), w.scalar_type());
  at::Tensor qbiases = to_torch(std::move(q.biases), w.scalar_type());
  if (!w.device().is_cpu()) {
    words = words.to(w.device());
    scales = scales.to(w.device());
    qbiases = qbiases.to(w.device());
  }
  return {words.view(at::ScalarType::UInt32), scales, qbiases};
}

at::Tensor affine_dequantize_cpu(const at::Tensor& weight, const at::Tensor& scales, const at::Tensor& qbiases,
                                 int64_t group_size, int64_t bits) {
  const QuantizedShape shape = check_quantized(kDequantize, weight, scales, qbiases, group_size, bits);
  if (shape.n == 0) return at::empty({0, shape.k}, scales.options());
  const at::Tensor words = words_of(weight), s = scales.contiguous(), b = qbiases.contiguous();
  return call_afq(kDequantize, [&] {
    const afq::QuantizedWeight w = borrow_quantized(words, s, b, group_size, bits);
    return to_torch(afq::dequantize(w, to_afq(s.scalar_type())), s.scalar_type());
  });
}

#ifdef AFQ_TORCH_WITH_CUDA
at::Tensor affine_dequantize_cuda(const at::Tensor& weight, const at::Tensor& scales, const at::Tensor& qbiases,
                                  int64_t group_size, int64_t bits) {
  const QuantizedShape shape = check_quantized(kDequantize, weight, scales, qbiases, group_size, bits);
  const c10::cuda::CUDAGuard guard(weight.device());
  return dequantize_on_device(kDequantize, aligned16(words_of(weight)), aligned16(scales), aligned16(qbiases), shape,
                              group_size, bits, scales.scalar_type());
}
#endif

// This build's operators through the dispatcher, for the autograd kernel to call below itself.
using QmmSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                int64_t);
using DequantizeSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t);

#define AFQ_STRINGIFY_EXPANDED(x) #x
#define AFQ_STRINGIFY(x) AFQ_STRINGIFY_EXPANDED(x)

const c10::TypedOperatorHandle<QmmSignature>& qmm_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow(AFQ_STRINGIFY(AFQ_OPS_NAMESPACE) "::affine_qmm_t", "")
                             .typed<QmmSignature>();
  return op;
}

const c10::TypedOperatorHandle<DequantizeSignature>& dequantize_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow(AFQ_STRINGIFY(AFQ_OPS_NAMESPACE) "::affine_dequantize", "")
                             .typed<DequantizeSignature>();
  return op;
}

// The gradient of affine_qmm_t for x (weight, scales and qbiases are frozen: they get none),
// in C++ rather than through torch.library.register_autograd: a Python autograd kernel runs on
// every call, grad mode on or off, and costs more host time than the GEMV it wraps launches in.
class QmmFunction : public torch::autograd::Function<QmmFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& scales, const at::Tensor& qbiases, int64_t group_size, int64_t bits) {
    ctx->save_for_backward({weight, scales, qbiases});
    ctx->saved_data["group_size"] = group_size;
    ctx->saved_data["bits"] = bits;
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    return qmm_op().call(x, weight, scales, qbiases, group_size, bits);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor w =
        dequantize_op()
            .call(saved[0], saved[1], saved[2], ctx->saved_data["group_size"].toInt(), ctx->saved_data["bits"].toInt())
            .to(grads[0].scalar_type());
    const at::Tensor grad_x = at::matmul(grads[0], w);  // [..., N] @ [N, K]
    return {grad_x, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Without grad mode or an x that needs a gradient (inference), straight to the device kernel.
at::Tensor affine_qmm_t_autograd(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& scales,
                                 const at::Tensor& qbiases, int64_t group_size, int64_t bits) {
  if (!(at::GradMode::is_enabled() && x.requires_grad())) {
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    return qmm_op().call(x, weight, scales, qbiases, group_size, bits);
  }
  return QmmFunction::apply(x, weight, scales, qbiases, group_size, bits);
}

}  // namespace afq_torch

AFQ_TORCH_LIBRARY(AFQ_OPS_NAMESPACE, m) {
  m.def("affine_qmm_t(Tensor x, Tensor weight, Tensor scales, Tensor qbiases, int group_size, int bits) -> Tensor");
  m.def("affine_quantize(Tensor w, int group_size, int bits, str method) -> (Tensor, Tensor, Tensor)");
  m.def("affine_dequantize(Tensor weight, Tensor scales, Tensor qbiases, int group_size, int bits) -> Tensor");
}

AFQ_TORCH_LIBRARY_IMPL(AFQ_OPS_NAMESPACE, CPU, m) {
#ifdef AFQ_TORCH_WITH_CPU
  m.impl("affine_qmm_t", TORCH_FN(afq_torch::affine_qmm_t_cpu));
#endif
  m.impl("affine_quantize", TORCH_FN(afq_torch::affine_quantize));
  m.impl("affine_dequantize", TORCH_FN(afq_torch::affine_dequantize_cpu));
}

AFQ_TORCH_LIBRARY_IMPL(AFQ_OPS_NAMESPACE, Autograd, m) {
  m.impl("affine_qmm_t", TORCH_FN(afq_torch::affine_qmm_t_autograd));
}

#ifdef AFQ_TORCH_WITH_CUDA
AFQ_TORCH_LIBRARY_IMPL(AFQ_OPS_NAMESPACE, CUDA, m) {
  m.impl("affine_qmm_t", TORCH_FN(afq_torch::affine_qmm_t_cuda));
  m.impl("affine_quantize", TORCH_FN(afq_torch::affine_quantize));
  m.impl("affine_dequantize", TORCH_FN(afq_torch::affine_dequantize_cuda));
}
#endif

#if !defined(AFQ_TORCH_LOCAL_BUILD)
REGISTER_EXTENSION(TORCH_EXTENSION_NAME)
#elif defined(AFQ_TORCH_PYTHON_MODULE)
// Also importable as a Python module (`import afq_torch._afq_torch_ops`), as kernels-hub builds
// are; loading it with torch.ops.load_library works either way.
PyMODINIT_FUNC PyInit__afq_torch_ops() {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_afq_torch_ops", nullptr, 0, nullptr, nullptr, nullptr,
                               nullptr, nullptr};
  return PyModule_Create(&module);
}
#endif
