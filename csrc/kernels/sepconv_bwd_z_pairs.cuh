// The depthwise intermediate Z as the pw-gradient kernels recompute it from x
// (sepconv_bwd_pw_staged_kernel.cuh, sepconv_bwd_pw_resident_kernel.cuh): a thread's item is one
// channel pair of four neighbouring output pixels (the forward's QuadDepthwise items,
// sepconv_fwd_quad_depthwise.cuh), the pair's 9 x 2 weights in registers for every item.
//
// A quad on one output row (stride and dilation 1 along it, wholly before `end`) reads a 3 x 6
// input window, whose loads `prefetch` issues ahead of the arithmetic (`compute`), so a kernel can
// keep one item's loads in flight while it works on another. Other quads (a row break, stride or
// dilation along the row, the tail, or a pair with a non-finite weight) read pixel by pixel in
// `compute`, where a tap in the padding multiplies zero by a zero weight: it contributes nothing
// even for an infinite weight (SECURITY.md).
#pragma once

#include <cstdint>

#include "activation.h"
#include "element_types.cuh"
#include "fast_divmod.h"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_fwd_quad_depthwise.cuh"
#include "sepconv_params.h"

namespace xsep {

// Output pixel q's image, row and column: by multiply-high (FastDivmod) where every pixel index
// fits 31 bits, else by 64-bit division.
struct PixelLocator {
  int64_t hw;
  bool narrow;
  FastDivmod by_hw, by_wo;

  __device__ __forceinline__ explicit PixelLocator(const SepConvParams& f)
      : hw(static_cast<int64_t>(f.Ho) * f.Wo),
        narrow(static_cast<int64_t>(f.N) * f.Ho * f.Wo <= INT32_MAX),
        by_hw(narrow ? static_cast<int>(static_cast<int64_t>(f.Ho) * f.Wo) : 1),
        by_wo(f.Wo) {}

  __device__ __forceinline__ void locate(int64_t q, int64_t* img, int* oy, int* ox) const {
    int rem;
    if (narrow) {
      int i;
      by_hw.divmod(static_cast<int>(q), &i, &rem);
      *img = i;
    } else {
      *img = q / hw;
      rem = static_cast<int>(q - *img * hw);
    }
    by_wo.divmod(rem, oy, ox);
  }
};

// One thread's channel pair (cm, cm + 1) of Z, quad by quad. 3x3 kernels, depth multiplier 1
// (Z's channel cm is x's channel cm), channels_last x, C even (a pair is wholly in or out).
template <typename T>
struct ZPairItems {
  using Pair = ChannelGroup<T, 2>;
  using Window = Pair[3][kQuadCols];

  const SepConvParams& f;
  const T* __restrict__ x;
  PixelLocator at;
  int cm;
  bool live;     // cm < Cmid
  bool windows;  // the window path may be taken: a live pair with finite weights
  float w[9][2];

  // wq: the pair's weights [tap][lane] in fp32.
  __device__ __forceinline__ ZPairItems(const SepConvParams& params, int first_channel, const float (&wq)[9][2])
      : f(params),
        x(static_cast<const T*>(params.x)),
        at(params),
        cm(first_channel),
        live(first_channel < params.Cmid) {
#pragma unroll
    for (int t = 0; t < 9; ++t) w[t][0] = wq[t][0], w[t][1] = wq[t][1];
    // The window path adds its zero-filled padding taps: only with finite weights is that nothing.
    windows = live && weights_finite<2>(w);
  }

  // The window of the quad of pixels q .. q + 3 (pixels from `end` on do not exist) with its loads
  // issued into v, or the per-pixel path (window.window false).
  __device__ __forceinline__ void prefetch(int64_t q, int64_t end, QuadWindow<T>& window, Window& v) const {
    window = QuadWindow<T>{x, 0u, false};
    if (!windows || f.sw != 1 || f.dw != 1 || q + kQuadPixels > end) return;
    int64_t img;
    int oy, ox;
    at.locate(q, &img, &oy, &ox);
    if (ox + kQuadPixels > f.Wo) return;  // a row break inside the four
    const int iy0 = oy * f.sh - f.pt, ix0 = ox - f.pl;
    window.window = true;
    window.corner =
        x + img * f.x_stride[0] + static_cast<int64_t>(iy0) * f.x_stride[2] + static_cast<int64_t>(ix0) * f.x_stride[3];
    for (int ky = 0; ky < 3; ++ky)
      for (int c = 0; c < kQuadCols; ++c)
        if (inside_image(f, iy0 + ky * f.dh, ix0 + c)) window.inside |= 1u << (ky * kQuadCols + c);
    load_quad_window<T, 2>(f, window, cm, v);
  }

  // The quad's values (fp32, zero past `end` and for a dead pair): from its prefetched window, or
  // pixel by pixel.
  __device__ __forceinline__ void compute(int64_t q, int64_t end, const QuadWindow<T>& window, const Window& v,
                                          float (&out)[kQuadPixels][2]) const {
    if (window.window) {
      quad_window_sums<T, 2>(v, w, out);
      return;
    }
#pragma unroll  // out[r] stays in registers
    for (int r = 0; r < kQuadPixels; ++r) {
      out[r][0] = out[r][1] = 0.f;
      if (!live || q + r >= end) continue;
      int64_t img;
      int oy, ox;
      at.locate(q + r, &img, &oy, &ox);
      const int iy0 = oy * f.sh - f.pt, ix0 = ox * f.sw - f.pl;
      const T* origin = x + img * f.x_stride[0] + cm;
#pragma unroll
      for (int tap = 0; tap < 9; ++tap) {
        const int iy = iy0 + (tap / 3) * f.dh, ix = ix0 + (tap % 3) * f.dw;
        const bool inside = inside_image(f, iy, ix);
        Pair xv{};
        if (inside)
          xv = load_group<T, 2>(origin + static_cast<int64_t>(iy) * f.x_stride[2] +
                                static_cast<int64_t>(ix) * f.x_stride[3]);
        float xf[2];
        group_to_floats<T, 2>(xv, xf);
        // A tap in the padding: zero times a zero weight (nothing, even for an infinite one).
        out[r][0] = fmaf(xf[0], inside ? w[tap][0] : 0.f, out[r][0]);
        out[r][1] = fmaf(xf[1], inside ? w[tap][1] : 0.f, out[r][1]);
      }
    }
  }

  // A pixel's pair as Z stores it: rounded as the unfused op stores it, then the intermediate
  // activation, then rounded again.
  __device__ __forceinline__ GroupBits<T, 2> bits(const float (&v)[2]) const {
    float a = v[0], b = v[1];
    if (f.activation != Activation::kNone) {
      a = activate(f.activation, round_like_storage<T>(a));
      b = activate(f.activation, round_like_storage<T>(b));
    }
    GroupBits<T, 2> z;
    z.e[0] = from_float<T>(a), z.e[1] = from_float<T>(b);
    return z;
  }
};

}  // namespace xsep
