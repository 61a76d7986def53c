// The Hopper forwards' depthwise phase (sepconv_fwd_wgmma_kernel.cuh, sepconv_fwd_streamed_kernel.cuh):
// Z of a tile of output pixels, one K chunk at a time, in work items of one pair of neighbouring
// channels of four neighbouring output pixels (QuadDepthwise: a thread's items, the same in every
// chunk).
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

#include "activation.h"
#include "element_types.cuh"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_params.h"
#include "wgmma_common.cuh"  // round_to_tf32

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
    if constexpr (std::is_same_v<T, __nv_bfloat16>)
      return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
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

// The depthwise weight ([Cmid][3][3], multiplier 1, Cmid even) in fp32 as [Cmid / 2][tap][2]: a
// tap's weights for a channel pair are one 8-byte load. Cmid * 9 floats.
template <typename T>
__global__ void sepconv_fwd_dw_pairs_pack_kernel(const SepConvParams p, float* packed) {
  const T* __restrict__ w = static_cast<const T*>(p.dw_weight);
  const int64_t total = static_cast<int64_t>(p.Cmid) * 9;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t pair = i / 18;
    const int t = static_cast<int>(i / 2 % 9), j = static_cast<int>(i % 2);
    packed[i] = to_float(w[(2 * pair + j) * 9 + t]);
  }
}

#if defined(XSEP_WITH_CUTE)
// v as Z stores it: rounded once to T, then the intermediate activation, then (fp32) TF32.
template <typename T>
__device__ __forceinline__ T z_value(const SepConvParams& p, float v) {
  T z = from_float<T>(v);
  if (p.activation != Activation::kNone) z = from_float<T>(activate(p.activation, to_float(z)));
  if constexpr (std::is_same_v<T, float>) z = round_to_tf32(z);
  return z;
}

template <typename T>
__device__ __forceinline__ ChannelPair<T> z_pair(const SepConvParams& p, float2 v) {
  PairBits<T> out;
  out.e[0] = z_value<T>(p, v.x), out.e[1] = z_value<T>(p, v.y);
  return out.u;
}

// A thread's share of Z for a tile of BM output pixels (from pixel p0), chunk by chunk of BK
// channels, among kThreads threads (thread t of them): kItems (pair, quad) items a chunk, the same
// channel pair and quads in every chunk. packed_dw: sepconv_fwd_dw_pairs_pack_kernel's weights.
template <typename T, int BM, int BK, int kThreads>
struct QuadDepthwise {
  static constexpr int kPairs = BK / 2;
  static constexpr int kItems = kPairs * (BM / kQuadPixels) / kThreads;
  static_assert(kThreads % kPairs == 0, "a thread keeps its channel pair in every chunk");
  static_assert(kItems >= 1 && kItems * kThreads == kPairs * (BM / kQuadPixels), "whole items a thread");
  int pair;
  int m0[kItems];
  QuadWindow<T> quads[kItems];
  const float2* packed_dw;

  __device__ __forceinline__ QuadDepthwise(const SepConvParams& p, int64_t p0, int t, const float2* dw)
      : pair(t % kPairs), packed_dw(dw) {
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      m0[i] = (t + i * kThreads) / kPairs * kQuadPixels;
      quads[i] = quad_window<T>(p, p0, m0[i]);
    }
  }

  // Z of chunk g (channels g * BK ..): store(m, kk, bits) for each of the thread's pixels m, with
  // kk the pair's first channel within the chunk; zero past the last pixel and past Cmid (the
  // pointwise weight's padding is zero too). px: the tile's tap table (the per-pixel path).
  template <class TapTable, class Store>
  __device__ __forceinline__ void chunk(const SepConvParams& p, const TapTable& px, int g, Store&& store) const {
    const int k = g * BK + 2 * pair;  // the pair's first channel
    const bool live = k < p.Cmid;     // Cmid even: a pair is wholly in or out
    float2 w[9];
#pragma unroll
    for (int t = 0; t < 9; ++t) w[t] = live ? __ldg(packed_dw + static_cast<int64_t>(k / 2) * 9 + t) : float2{};
    // Every item's window loads first (all in flight at once), then the arithmetic.
    ChannelPair<T> window[kItems][3][kQuadCols];
#pragma unroll
    for (int i = 0; i < kItems; ++i)
      if (live && quads[i].window) load_quad_window(p, quads[i], k, window[i]);
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      float2 out[kQuadPixels];
      if (live && quads[i].window) {
        quad_window_sums<T>(window[i], w, out);
      } else if (live) {
        quad_pixel_sums<T>(p, px, m0[i], k, w, out);
      } else {
#pragma unroll
        for (int r = 0; r < kQuadPixels; ++r) out[r] = make_float2(0.f, 0.f);
      }
#pragma unroll
      for (int r = 0; r < kQuadPixels; ++r) store(m0[i] + r, 2 * pair, z_pair<T>(p, out[r]));
    }
  }
};
#endif  // XSEP_WITH_CUTE

}  // namespace xsep
