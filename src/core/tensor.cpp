#include "afq/tensor.h"

#include <cstring>

#include "afq/error.h"
#include "afq/half.h"

namespace afq {

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  for (int64_t d : shape)
    if (d < 0) throw Error("tensor shape " + shape_to_string(shape) + " has a negative dimension");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  // At least one byte so that an empty tensor still has a distinct, owned buffer.
  auto storage = std::shared_ptr<std::byte[]>(new std::byte[std::max<size_t>(t.nbytes(), 1)]());
  t.data_ = storage.get();
  t.owner_ = std::move(storage);
  t.writable_ = true;
  return t;
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = static_cast<const std::byte*>(data);
  t.owner_ = owner ? std::move(owner) : std::make_shared<int>(0);
  t.writable_ = false;
  return t;
}

std::byte* Tensor::mutable_bytes() {
  if (!writable_) throw Error("tensor " + shape_to_string(shape_) + " is a read-only view");
  return const_cast<std::byte*>(data_);
}

void Tensor::check_element_size(size_t size) const {
  if (size != dtype_size(dtype_))
    throw Error("tensor of dtype " + std::string(dtype_name(dtype_)) + " read with an element of " +
                std::to_string(size) + " bytes");
}

Tensor Tensor::clone() const {
  Tensor copy = zeros(dtype_, shape_);
  if (nbytes()) std::memcpy(copy.mutable_bytes(), data_, nbytes());
  return copy;
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel())
    throw Error("cannot reshape " + shape_to_string(shape_) + " to " + shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

float float_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32: return t.data<float>()[i];
    case DType::F64: return static_cast<float>(t.data<double>()[i]);
    case DType::F16: return f16_to_f32(t.data<uint16_t>()[i]);
    case DType::BF16: return bf16_to_f32(t.data<uint16_t>()[i]);
    default: throw Error("expected a float tensor, got " + std::string(dtype_name(t.dtype())));
  }
}

Tensor to_dtype(const Tensor& t, DType dtype) {
  if (!is_float(dtype) || !is_float(t.dtype()))
    throw Error("cannot convert " + std::string(dtype_name(t.dtype())) + " to " + std::string(dtype_name(dtype)));
  if (dtype == t.dtype()) return t.clone();
  Tensor out = Tensor::zeros(dtype, t.shape());
  const int64_t n = t.numel();
  switch (dtype) {
    case DType::F32: {
      float* o = out.mutable_data<float>();
      for (int64_t i = 0; i < n; ++i) o[i] = float_at(t, i);
      break;
    }
    case DType::F64: {
      double* o = out.mutable_data<double>();
      for (int64_t i = 0; i < n; ++i) o[i] = float_at(t, i);
      break;
    }
    case DType::F16: {
      uint16_t* o = out.mutable_data<uint16_t>();
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_f16(float_at(t, i));
      break;
    }
    case DType::BF16: {
      uint16_t* o = out.mutable_data<uint16_t>();
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(float_at(t, i));
      break;
    }
    default: break;
  }
  return out;
}

}  // namespace afq
