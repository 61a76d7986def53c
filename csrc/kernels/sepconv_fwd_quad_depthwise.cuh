// The streamed forward's depthwise work item (sepconv_fwd_streamed_kernel.cuh): one pair of
// neighbouring channels of four neighbouring output pixels, for one K chunk.
//
// Where the four pixels lie on one output row and the layer has stride 1 and dilation 1 along the
// row (every Xception separable conv), they read a 3 x 6 window of input pixels: 18 loads of the
// pair instead of 36, each converted to fp32 once and used by up to three pixels, and the pair's
// 18 weights (fp32, repacked: StreamedDwPack) stay in registers for the whole chunk. Taps in the
// padding read zero (the window's bits say which), so the loop has no branch. Elsewhere (a row
// break inside the four, stride or dilation along the row, the tile's tail) each pixel reads its
// own 9 taps through the CTA's tap table.
//
// Arithmetic: per channel, fp32 products summed in tap order (ky, then kx) from 0, as the other
// forward kernels; a tap in the padding adds 0 * w (the others skip it: the same value for a finite
// weight; an infinite one gives NaN there, as the explicitly padded reference does).
#pragma once

#include <cstdint>
#include <type_traits>

#include "element_types.cuh"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_params.h"

namespace xsep {

// Two neighbouring channels as stored: 4 bytes for fp16/bf16, 8 for fp32.
template <typename T>
using ChannelPair = std::conditional_t<sizeof(T) == 2, uint32_t, float2>;

// A pair's bits and its two elements.
template <typename T>
union PairBits {
  ChannelPair<T> u;
  T e[2];
  __device__ PairBits() {}
};

template <typename T>
__device__ __forceinline__ ChannelPair<T> zero_pair() {
  if constexpr (sizeof(T) == 2) {
    return 0u;
  } else {
    return make_float2(0.f, 0.f);
  }
}

template <typename T>
__device__ __forceinline__ ChannelPair<T> load_pair(const T* p) {
  return __ldg(reinterpret_cast<const ChannelPair<T>*>(p));
}

// The pair as fp32, one instruction an element for bf16 (its bits are fp32's top half).
template <typename T>
__device__ __forceinline__ float2 pair_to_float2(ChannelPair<T> v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
#if defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<T, __nv_bfloat16>) return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
#endif
    PairBits<T> bits;
    bits.u = v;
    return make_float2(to_float(bits.e[0]), to_float(bits.e[1]));
  }
}

// The four pixels m0..m0 + 3 of a CTA's tile, found once per thread (they are the same in every
// chunk): whether they take the window path, where the window's corner is in x (channel 0), and
// which of its 3 x 6 taps are inside the image (bit ky * 6 + c).
template <typename T>
struct QuadWindow {
  const T* corner;
  uint32_t inside;
  bool window;
};

constexpr int kQuadPixels = 4;

// p0: the tile's first pixel; m0: the quad's first pixel in the tile.
template <typename T>
__device__ __forceinline__ QuadWindow<T> quad_window(const SepConvParams& p, int64_t p0, int m0) {
  QuadWindow<T> q{static_cast<const T*>(p.x), 0u, false};
  const int64_t pix = p0 + m0, pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  if (p.sw != 1 || p.dw != 1 || pix + kQuadPixels > pixels) return q;
  const FwdPixelOrigin o = fwd_pixel_origin(p, pix);
  const int ox = static_cast<int>((pix % (static_cast<int64_t>(p.Ho) * p.Wo)) % p.Wo);
  if (ox + kQuadPixels > p.Wo) return q;  // a row break inside the four
  q.window = true;
  q.corner += o.x_base;
  for (int ky = 0; ky < 3; ++ky)
    for (int c = 0; c < kQuadPixels + 2; ++c)
      if (inside_image(p, o.iy + ky * p.dh, o.ix + c)) q.inside |= 1u << (ky * (kQuadPixels + 2) + c);
  return q;
}

constexpr int kQuadCols = kQuadPixels + 2;

// The window path's loads for channels k, k + 1 (k < Cmid): the 3 x 6 input pixels, zero in the
// padding. Separate from the arithmetic so a thread can have every item's loads in flight at once.
// The addresses are a chain of pointer steps (one 64-bit add a load: the compiler would otherwise
// rebuild each from element offsets).
template <typename T>
__device__ __forceinline__ void load_quad_window(const SepConvParams& p, const QuadWindow<T>& q, int k,
                                                 ChannelPair<T> (&v)[3][kQuadCols]) {
  const int64_t row_step = static_cast<int64_t>(p.dh) * p.x_stride[2], col_step = p.x_stride[3];
#pragma unroll
  for (int ky = 0; ky < 3; ++ky) {
    const T* at = q.corner + k + ky * row_step;
#pragma unroll
    for (int c = 0; c < kQuadCols; ++c, at += col_step) {
      v[ky][c] = zero_pair<T>();
      if ((q.inside >> (ky * kQuadCols + c)) & 1u) v[ky][c] = load_pair<T>(at);
    }
  }
}

// The four pixels' depthwise values from their window: out[r] for pixel m0 + r, fp32. w: the pair's
// weights, [tap][channel].
template <typename T>
__device__ __forceinline__ void quad_window_sums(const ChannelPair<T> (&v)[3][kQuadCols], const float2 (&w)[9],
                                                 float2 (&out)[kQuadPixels]) {
#pragma unroll
  for (int r = 0; r < kQuadPixels; ++r) out[r] = make_float2(0.f, 0.f);
#pragma unroll
  for (int ky = 0; ky < 3; ++ky) {
#pragma unroll
    for (int c = 0; c < kQuadCols; ++c) {
      const float2 f = pair_to_float2<T>(v[ky][c]);
#pragma unroll
      for (int r = 0; r < kQuadPixels; ++r) {
        const int kx = c - r;  // ascending within the row: each pixel's taps in (ky, kx) order
        if (kx < 0 || kx > 2) continue;
        out[r].x = fmaf(f.x, w[ky * 3 + kx].x, out[r].x);
        out[r].y = fmaf(f.y, w[ky * 3 + kx].y, out[r].y);
      }
    }
  }
}

// The per-pixel path (no window): the same values, each pixel's 9 taps read through the CTA's tap
// table `px`.
template <typename T, class TapTable>
__device__ __forceinline__ void quad_pixel_sums(const SepConvParams& p, const TapTable& px, int m0, int k,
                                                const float2 (&w)[9], float2 (&out)[kQuadPixels]) {
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const int64_t row_step = static_cast<int64_t>(p.dh) * p.x_stride[2];
  const int64_t col_step = static_cast<int64_t>(p.dw) * p.x_stride[3];
#pragma unroll  // out[r] stays in registers
  for (int r = 0; r < kQuadPixels; ++r) {
    out[r] = make_float2(0.f, 0.f);
    const int m = m0 + r;
    if (!px.reads_input(m)) continue;  // past the last pixel, or a window wholly in the padding
    const T* origin = x + px.x_base[m] + k;
    ChannelPair<T> v[9];
#pragma unroll
    for (int t = 0; t < 9; ++t) {
      v[t] = zero_pair<T>();
      if (px.tap_inside(p, m, t / 3, t % 3)) v[t] = load_pair<T>(origin + (t / 3) * row_step + (t % 3) * col_step);
    }
#pragma unroll
    for (int t = 0; t < 9; ++t) {
      const float2 f = pair_to_float2<T>(v[t]);
      out[r].x = fmaf(f.x, w[t].x, out[r].x);
      out[r].y = fmaf(f.y, w[t].y, out[r].y);
    }
  }
}

}  // namespace xsep
