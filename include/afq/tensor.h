// A dense, row-major tensor on the host. It either owns its bytes or borrows them from
// something kept alive with it (a memory-mapped safetensors file), so views cost no copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "afq/dtype.h"

namespace afq {

using Shape = std::vector<int64_t>;

std::string shape_to_string(const Shape& shape);  // "[16, 256]"
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // A new tensor of zeros that owns its bytes.
  static Tensor zeros(DType dtype, Shape shape);

  // A read-only view of `data`, valid while `owner` lives (the owner is kept by the view).
  static Tensor borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool defined() const { return owner_ != nullptr; }
  bool writable() const { return writable_; }

  const std::byte* bytes() const { return data_; }
  std::byte* mutable_bytes();  // throws afq::Error on a read-only view

  // Typed access; T must have the element size of the dtype.
  template <class T>
  const T* data() const {
    check_element_size(sizeof(T));
    return reinterpret_cast<const T*>(data_);
  }
  template <class T>
  T* mutable_data() {
    check_element_size(sizeof(T));
    return reinterpret_cast<T*>(mutable_bytes());
  }

  // A copy that owns its bytes (a view becomes writable).
  Tensor clone() const;

  // Same bytes, another shape with the same element count.
  Tensor reshape(Shape shape) const;

 private:
  void check_element_size(size_t size) const;

  DType dtype_ = DType::F32;
  Shape shape_;
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  bool writable_ = false;
};

// Element i of a float tensor (F64, F32, F16, BF16) widened to float32.
float float_at(const Tensor& t, int64_t i);

// Converts a float tensor to another float dtype (round to nearest even); a copy.
Tensor to_dtype(const Tensor& t, DType dtype);

}  // namespace afq
