// The plain description of one separable convolution that every kernel receives: sizes,
// element strides, pointers, flags. No PyTorch types, so the kernels compile with nvcc alone.
#pragma once

#include <cstdint>

#include "activation.h"
#include "fast_divmod.h"
#include "sepconv_bwd_plan.h"

namespace xsep {

struct SepConvParams {
  // Sizes. Each fits in 32 bits (the host checks); products of them are formed in 64 bits.
  int N, C, H, W;
  int M;         // depth multiplier: depthwise channel cm = c * M + m reads input channel c
  int Cmid;      // C * M
  int Cout;
  int kh, kw;    // depthwise kernel
  int sh, sw;    // stride
  int pt, pl;    // padding at the top and left (bottom/right padding is implied by Ho, Wo)
  int dh, dw;    // dilation
  int Ho, Wo;
  // Element strides (n, c, h, w) of x and y: both memory formats, and views, are just strides.
  int64_t x_stride[4];
  int64_t y_stride[4];
  const void* x;          // (N, C, H, W)
  const void* dw_weight;  // (Cmid, kh * kw), contiguous
  const void* pw_weight;  // (Cout, Cmid), contiguous
  const void* bias;       // (Cout,) or nullptr; same dtype as x
  void* y;                // (N, Cout, Ho, Wo)
  void* workspace;        // the forward's device scratch (sepconv_forward_workspace_bytes), or nullptr
  Activation activation;  // between the depthwise and the pointwise part (kNone: Xception's)
  bool channels_last;     // which coalescing pattern to use (the strides say where things are)
  bool allow_tf32;        // float32 only: TF32 tensor cores (true) or exact FFMA (false)
  // Measurement only (XSEP_PHASE_CLOCKS=1): where the instrumented kernels' CTAs record their
  // phases' clocks (phase_clocks.h; the backward's in fwd.phase_clocks), else nullptr.
  unsigned long long* phase_clocks;
  // Ho * Wo and Wo as multiply-high divisors (set_output_divisors), for fwd_pixel_origin's image,
  // row and column of a flat output pixel. Where they do not match Ho * Wo and Wo (never set, or
  // Ho * Wo of 2^31 or more), the kernels divide the long way.
  FastDivmod out_hw, out_w;
};

// Sets p.out_hw and p.out_w from p.Ho and p.Wo (after those are set).
inline void set_output_divisors(SepConvParams& p) {
  const int64_t hw = static_cast<int64_t>(p.Ho) * p.Wo;
  if (p.Wo >= 1 && hw >= 1 && hw < INT32_MAX) {
    p.out_hw = FastDivmod(static_cast<int>(hw));
    p.out_w = FastDivmod(p.Wo);
  }
}

// The backward: the forward's description (x, weights, geometry; y_stride are grad_y's strides)
// plus the gradients wanted (nullptr: not wanted), the fp32 workspace for the deterministic
// cross-CTA sums, and the launch plan (plan_backward in sepconv_bwd.h fills it).
struct SepConvBwdParams {
  SepConvParams fwd;
  const void* grad_y;       // (N, Cout, Ho, Wo), element strides fwd.y_stride
  void* grad_x;             // (N, C, H, W), element strides gx_stride
  int64_t gx_stride[4];
  void* grad_dw;            // (Cmid, kh * kw), contiguous
  void* grad_pw;            // (Cout, Cmid), contiguous
  void* grad_bias;          // (Cout,)
  float* workspace;         // workspace_floats of the plan
  // Plan.
  BwdTilePlan tiles;        // input-gradient kernel: input tiles with their halo of outputs
  int channels_per_cta;     // input channels per CTA of the input-gradient kernel (x M = GEMM N)
  int pw_splits;            // split-K over pixels of the pointwise-weight gradient
  int64_t pw_pixels_per_split;
  int pw_resident_splits;   // the resident pw-gradient kernel's split (plan_resident_pw; 0: none)
  int64_t pw_resident_pixels_per_split;
  int pw_resident_max_pixels;  // its kernel's largest split (resident_pw_max_pixels: 1024, or 512)
  int64_t dw_partials;      // N * tiles: rows of the grad_dw partial sums
};

enum class DType { kFloat16, kBFloat16, kFloat32 };

// What a launcher did: the CUDA error of the launch (cudaSuccess or not) and which kernel variant
// ran, for the dispatch log.
struct LaunchResult {
  int error;  // a cudaError_t
  const char* variant;
};

}  // namespace xsep
