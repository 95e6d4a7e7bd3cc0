// static_for<N>(f): f called with std::integral_constant<int, 0> ... <N - 1>, so that an unrolled
// loop's index can pick registers (array elements indexed by constants stay in registers).
#pragma once

#include <type_traits>
#include <utility>

namespace afq::cuda {

template <class F, int... I>
__device__ __forceinline__ void static_for_impl(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
// f(std::integral_constant<int, 0>{}), ..., f(...<N - 1>): indices usable in constant expressions.
template <int N, class F>
__device__ __forceinline__ void static_for(F&& f) {
  static_for_impl(f, std::make_integer_sequence<int, N>{});
}

}  // namespace afq::cuda
