// What the CPU forward and backward share: operands in the accumulation type and a view of a
// raw buffer as a matrix for ATen's GEMM (MKL/OpenBLAS underneath).
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include "../common/sepconv_geometry.h"

namespace xsep::cpu {

// float for float/half/bfloat16, double for double: every sum runs in at least fp32.
template <typename scalar_t>
using acc_type = at::opmath_type<scalar_t>;

template <typename T>
constexpr at::ScalarType scalar_type_of() {
  return c10::CppTypeToScalarType<std::remove_const_t<T>>::value;
}

// Rounds an fp32 intermediate (Z, or dZ in the backward) to the input dtype and back, as the
// unfused op stores it: a 16-bit intermediate then overflows to inf exactly where the unfused
// op's does (and the CUDA kernels do the same). A no-op for float and double.
template <typename scalar_t, typename acc_t>
inline void round_like_input(acc_t* v, int64_t count) {
  if constexpr (!std::is_same_v<scalar_t, acc_t>) {
    for (int64_t i = 0; i < count; ++i) v[i] = static_cast<acc_t>(static_cast<scalar_t>(v[i]));
  }
}

// The intermediate activation over a buffer, in place, rounded like the unfused op's stored
// activation for 16-bit inputs. No-op for Activation::kNone.
template <typename scalar_t, typename acc_t>
inline void activate_like_input(Activation a, acc_t* v, int64_t count) {
  if (a == Activation::kNone) return;
  for (int64_t i = 0; i < count; ++i) v[i] = activate(a, v[i]);
  round_like_input<scalar_t>(v, count);
}

// grad *= activate'(pre), in place, rounded like the unfused op's stored gradient. No-op for kNone.
template <typename scalar_t, typename acc_t>
inline void backprop_activation(Activation a, const acc_t* pre, acc_t* grad, int64_t count) {
  if (a == Activation::kNone) return;
  for (int64_t i = 0; i < count; ++i) grad[i] *= activation_grad(a, pre[i]);
  round_like_input<scalar_t>(grad, count);
}

// Whether every depthwise weight is finite (see depthwise_tile_nchw's padded_planes).
inline bool all_finite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }

// A (rows x cols) row-major matrix over p whose rows are ld elements apart; no copy.
template <typename T>
at::Tensor matrix(T* p, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(const_cast<std::remove_const_t<T>*>(p), {rows, cols}, {ld, 1},
                       at::TensorOptions().dtype(scalar_type_of<T>()));
}

// The weights in the accumulation type, laid out for the tile loops of one memory format.
struct AccWeights {
  at::Tensor dw;  // NCHW: (Cmid, kh * kw); NHWC: (kh * kw, Cmid), so a tap's weights are contiguous
  at::Tensor pw;  // (Cout, Cmid)
};

inline AccWeights to_acc_weights(const at::Tensor& dw_weight, const at::Tensor& pw_weight, const SepConvGeometry& g,
                                 bool nhwc, at::ScalarType acc) {
  // detach(): the kernels' internal ATen calls (out= GEMMs, also on worker threads, where no
  // dispatch guard reaches) must not see tensors that require grad.
  at::Tensor dw = dw_weight.detach().to(acc).reshape({g.Cmid, g.kh * g.kw});
  if (nhwc) dw = dw.t();
  return {dw.contiguous(), pw_weight.detach().to(acc).reshape({g.Cout, g.Cmid}).contiguous()};
}

}  // namespace xsep::cpu
