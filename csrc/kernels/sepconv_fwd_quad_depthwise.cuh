// The depthwise intermediate Z as the Hopper forwards (sepconv_fwd_wgmma_kernel.cuh,
// sepconv_fwd_streamed_kernel.cuh) and the staged pw-gradient kernel recompute it: in work items of
// kLanes neighbouring channels (2 or 4) of four neighbouring output pixels. QuadDepthwise is a
// thread's share of a tile's Z, the same items in every K chunk.
//
// Where the four pixels lie on one output row and the layer has stride 1 and dilation 1 along the
// row (every Xception separable conv), they read a 3 x 6 window of input pixels: 18 loads of the
// channel group instead of 36, each converted to fp32 once and used by up to three pixels, and the
// group's 9 x kLanes weights (fp32, repacked by sepconv_fwd_dw_pack_kernel) stay in registers for
// the whole chunk. Taps in the padding read zero (the window's bits say which), so the loop has no
// branch: with finite weights adding 0 * w is skipping the tap (whether a group's weights are all
// finite is the pack's word per group, not 36 comparisons a chunk). A row break inside the four takes
// two such windows, one per run of the row (kTwoRuns builds; QuadWindow). Elsewhere (a row break
// in the other builds, stride or dilation along the row, the tile's tail, or a non-finite weight in
// the group) each pixel reads its own 9 taps through the CTA's tap table, and a tap in the padding
// multiplies its zero by a zero weight.
//
// Four channels per item (each load then feeds twice the FMAs: ~22 instructions per value by the
// SASS count against ~27 with pairs) where the tile has enough of them for every thread and the
// kernel's registers allow (the caller's choice: wgmma_dw_lanes, streamed_dw_lanes), else pairs.
//
// Arithmetic: per channel, fp32 products summed in tap order (ky, then kx) from 0, as the other
// forward kernels; a tap in the padding contributes nothing, even for an infinite weight (as cuDNN
// and oneDNN, and SECURITY.md promises), up to the sign of a zero sum.
#pragma once

#include <cstdint>
#include <type_traits>

#include "activation.h"
#include "element_types.cuh"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_params.h"
#include "wgmma_common.cuh"  // round_to_tf32

namespace xsep {

// kLanes neighbouring channels as stored: 4, 8 or 16 bytes (16-bit pairs: one 32-bit word).
template <typename T, int kLanes>
struct LaneStorage {
  static_assert(kLanes == 2 || kLanes == 4, "pairs or quartets of channels");
  static constexpr int kBytes = kLanes * static_cast<int>(sizeof(T));
  using type = std::conditional_t<kBytes == 4, uint32_t, std::conditional_t<kBytes == 8, uint2, uint4>>;
};
template <typename T, int kLanes>
using ChannelGroup = typename LaneStorage<T, kLanes>::type;

// A group's bits and its elements.
template <typename T, int kLanes>
union GroupBits {
  ChannelGroup<T, kLanes> u;
  T e[kLanes];
  __device__ GroupBits() {}
};

template <typename T, int kLanes>
__device__ __forceinline__ ChannelGroup<T, kLanes> load_group(const T* p) {
  return __ldg(reinterpret_cast<const ChannelGroup<T, kLanes>*>(p));
}

// 32-bit word i of a group.
template <class V>
__device__ __forceinline__ uint32_t group_word(const V& v, int i) {
  if constexpr (std::is_same_v<V, uint32_t>) {
    return v;
  } else if constexpr (std::is_same_v<V, uint2>) {
    return i == 0 ? v.x : v.y;
  } else {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
  }
}

// The group as fp32, one instruction an element for bf16 (its bits are fp32's top half).
template <typename T, int kLanes>
__device__ __forceinline__ void group_to_floats(const ChannelGroup<T, kLanes>& v, float (&f)[kLanes]) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
#pragma unroll
    for (int i = 0; i < kLanes / 2; ++i) {
      const uint32_t w = group_word(v, i);
      f[2 * i] = __uint_as_float(w << 16), f[2 * i + 1] = __uint_as_float(w & 0xffff0000u);
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
#pragma unroll
    for (int i = 0; i < kLanes; ++i) f[i] = __uint_as_float(group_word(v, i));
    return;
  }
#endif
  GroupBits<T, kLanes> bits;
  bits.u = v;
#pragma unroll
  for (int i = 0; i < kLanes; ++i) f[i] = to_float(bits.e[i]);
}

// The four pixels m0..m0 + 3 of a CTA's tile, found once per thread (they are the same in every
// chunk): whether they take the window path, where the window's corner is in x (channel 0), and
// which of its 3 x 6 taps are inside the image (bit ky * 6 + c).
//
// Four pixels that an output row ends inside (a row of 19 has three such quads in four, and a tile
// of 128 pixels at 19 x 19 has ~5 of its 32) are two runs: pixels 0 .. split - 1 at the row's end,
// split .. 3 at the next row's start (or the next image's). Each run reads a window of its own, laid
// out as if the four were on one row: the first run's is this window (its taps masked to the
// columns its pixels read, 0 .. split + 1), the second's starts `split` columns left of pixel
// split's window (columns split .. 5), one row down (or at the next image's first row): a fixed step
// from the first (second_window). Their values come from the window arithmetic twice, not from the
// per-pixel path (~3x the instructions, and a warp runs both paths where its items differ).
template <typename T>
struct QuadWindow {
  const T* corner;
  uint32_t inside;      // bits 0..17: the taps; kSplitShift..: split (0: one run); kNextImage
  bool window;
  uint32_t second = 0;  // the second run's taps, as `inside`'s
};

constexpr int kQuadPixels = 4;
constexpr int kQuadCols = kQuadPixels + 2;
constexpr int kSplitShift = 20;                  // QuadWindow::inside: where the split is kept
constexpr uint32_t kNextImage = 1u << 23;        // QuadWindow::inside: the second run is in the next image

// The pixels of the quad's first run (4: the quad is one run).
template <typename T>
__device__ __forceinline__ int quad_split(const QuadWindow<T>& q) {
  const int split = static_cast<int>((q.inside >> kSplitShift) & 3u);
  return split == 0 ? kQuadPixels : split;
}

// The window of a two-run quad's second run (quad_split(q) < 4), from the first's: one row of
// outputs down and Wo columns left (row stride sh), or over an image boundary, from the last
// output row of image n to the first of n + 1. (The split cancels: the first run ends at column
// Wo - 1, the second starts at 0, its window `split` columns left of that.)
template <typename T>
__device__ __forceinline__ QuadWindow<T> second_window(const SepConvParams& p, const QuadWindow<T>& q) {
  int64_t step = static_cast<int64_t>(p.sh) * p.x_stride[2] - static_cast<int64_t>(p.Wo) * p.x_stride[3];
  if (q.inside & kNextImage) step += p.x_stride[0] - static_cast<int64_t>(p.Ho) * p.sh * p.x_stride[2];
  return QuadWindow<T>{q.corner + step, q.second, true};
}

// p0: the tile's first pixel; m0: the quad's first pixel in the tile. kNarrow: fwd_pixel_origin's.
// kTwoRuns: a quad an output row ends inside takes two windows (else the per-pixel path).
template <typename T, bool kNarrow = false, bool kTwoRuns = false>
__device__ __forceinline__ QuadWindow<T> quad_window(const SepConvParams& p, int64_t p0, int m0) {
  QuadWindow<T> q{static_cast<const T*>(p.x), 0u, false};
  const int64_t pix = p0 + m0, pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  if (p.sw != 1 || p.dw != 1 || pix + kQuadPixels > pixels) return q;
  const FwdPixelOrigin o = fwd_pixel_origin<kNarrow>(p, pix);
  const int ox = o.ix + p.pl;  // stride 1 along the row: the output column
  // A row break inside the four: the first `split` pixels end the row. (Rows of fewer pixels than
  // the second run would break it again: the per-pixel path.)
  const int split = ox + kQuadPixels > p.Wo ? p.Wo - ox : kQuadPixels;
  if (split < kQuadPixels && (!kTwoRuns || kQuadPixels - split > p.Wo)) return q;
  q.window = true;
  q.corner += o.x_base;
  for (int ky = 0; ky < 3; ++ky)
    for (int c = 0; c <= split + 1; ++c)  // the columns the first run's pixels read
      if (inside_image(p, o.iy + ky * p.dh, o.ix + c)) q.inside |= 1u << (ky * kQuadCols + c);
  if (split < kQuadPixels) {
    // The second run's window: `split` columns left of its first pixel's (column 0 of the next
    // output row), whose columns split .. 5 its pixels read.
    const FwdPixelOrigin b = fwd_pixel_origin<kNarrow>(p, pix + split);
    for (int ky = 0; ky < 3; ++ky)
      for (int c = split; c < kQuadCols; ++c)
        if (inside_image(p, b.iy + ky * p.dh, b.ix - split + c)) q.second |= 1u << (ky * kQuadCols + c);
    q.inside |= static_cast<uint32_t>(split) << kSplitShift;
    if (b.iy != o.iy + p.sh) q.inside |= kNextImage;  // not the next row: the next image's first
  }
  return q;
}

// The window path's loads for channels k .. k + kLanes (k < Cmid): the 3 x 6 input pixels, zero in
// the padding. Separate from the arithmetic so a thread can have every item's loads in flight at
// once. The addresses are a chain of pointer steps (one 64-bit add a load: the compiler would
// otherwise rebuild each from element offsets).
template <typename T, int kLanes>
__device__ __forceinline__ void load_quad_window(const SepConvParams& p, const QuadWindow<T>& q, int k,
                                                 ChannelGroup<T, kLanes> (&v)[3][kQuadCols]) {
  const int64_t row_step = static_cast<int64_t>(p.dh) * p.x_stride[2], col_step = p.x_stride[3];
#pragma unroll
  for (int ky = 0; ky < 3; ++ky) {
    const T* at = q.corner + k + ky * row_step;
#pragma unroll
    for (int c = 0; c < kQuadCols; ++c, at += col_step) {
      v[ky][c] = ChannelGroup<T, kLanes>{};
      if ((q.inside >> (ky * kQuadCols + c)) & 1u) v[ky][c] = load_group<T, kLanes>(at);
    }
  }
}

// The four pixels' depthwise values from their window: out[r] for pixel m0 + r, fp32. w: the
// group's weights, [tap][lane].
template <typename T, int kLanes>
__device__ __forceinline__ void quad_window_sums(const ChannelGroup<T, kLanes> (&v)[3][kQuadCols],
                                                 const float (&w)[9][kLanes], float (&out)[kQuadPixels][kLanes]) {
#pragma unroll
  for (int r = 0; r < kQuadPixels; ++r)
#pragma unroll
    for (int j = 0; j < kLanes; ++j) out[r][j] = 0.f;
#pragma unroll
  for (int ky = 0; ky < 3; ++ky) {
#pragma unroll
    for (int c = 0; c < kQuadCols; ++c) {
      float f[kLanes];
      group_to_floats<T, kLanes>(v[ky][c], f);
#pragma unroll
      for (int r = 0; r < kQuadPixels; ++r) {
        const int kx = c - r;  // ascending within the row: each pixel's taps in (ky, kx) order
        if (kx < 0 || kx > 2) continue;
#pragma unroll
        for (int j = 0; j < kLanes; ++j) out[r][j] = fmaf(f[j], w[ky * 3 + kx][j], out[r][j]);
      }
    }
  }
}

// The per-pixel path (no window): the same values, each pixel's 9 taps read through the CTA's tap
// table `px`; a tap in the padding multiplies zero by zero (any weight: nothing from it).
template <typename T, int kLanes, class TapTable>
__device__ __forceinline__ void quad_pixel_sums(const SepConvParams& p, const TapTable& px, int m0, int k,
                                                const float (&w)[9][kLanes], float (&out)[kQuadPixels][kLanes]) {
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const int64_t row_step = static_cast<int64_t>(p.dh) * p.x_stride[2];
  const int64_t col_step = static_cast<int64_t>(p.dw) * p.x_stride[3];
#pragma unroll  // out[r] stays in registers
  for (int r = 0; r < kQuadPixels; ++r) {
#pragma unroll
    for (int j = 0; j < kLanes; ++j) out[r][j] = 0.f;
    const int m = m0 + r;
    if (!px.reads_input(m)) continue;  // past the last pixel, or a window wholly in the padding
    const T* origin = x + px.x_base[m] + k;
    ChannelGroup<T, kLanes> v[9];
#pragma unroll
    for (int t = 0; t < 9; ++t) {
      v[t] = ChannelGroup<T, kLanes>{};
      if (px.tap_inside(p, m, t / 3, t % 3))
        v[t] = load_group<T, kLanes>(origin + (t / 3) * row_step + (t % 3) * col_step);
    }
#pragma unroll
    for (int t = 0; t < 9; ++t) {
      const bool inside = px.tap_inside(p, m, t / 3, t % 3);
      float f[kLanes];
      group_to_floats<T, kLanes>(v[t], f);
#pragma unroll
      for (int j = 0; j < kLanes; ++j) out[r][j] = fmaf(f[j], inside ? w[t][j] : 0.f, out[r][j]);
    }
  }
}

// The depthwise weight ([Cmid][3][3], multiplier 1, Cmid a multiple of kLanes) in fp32 as
// [Cmid / kLanes][tap][kLanes]: a tap's weights for a channel group are one 8- or 16-byte load;
// then a 32-bit word per group, 1 where its 9 x kLanes weights are all finite (the window path's
// condition: weights_finite, asked once here instead of in every chunk of every CTA: on the GPU
// ~36 dependent comparisons a chunk). packed_dw_bytes: both, room for the words of pairs.
__host__ __device__ constexpr size_t packed_dw_bytes(int cmid) {
  return static_cast<size_t>(cmid) * 9 * sizeof(float) + static_cast<size_t>(cmid / 2) * sizeof(uint32_t);
}

// The finite words, after the weights.
__host__ __device__ inline const uint32_t* packed_dw_finite(const float* packed, int cmid) {
  return reinterpret_cast<const uint32_t*>(packed + static_cast<int64_t>(cmid) * 9);
}

// Cmid * 9 floats and their finite words, a grid-stride loop's share (elements first, first +
// stride, ..; a group's word by the thread of its first element).
template <typename T, int kLanes>
__device__ __forceinline__ void pack_dw_weights(const SepConvParams& p, float* packed, int64_t first, int64_t stride) {
  const T* __restrict__ w = static_cast<const T*>(p.dw_weight);
  const int64_t total = static_cast<int64_t>(p.Cmid) * 9;
  uint32_t* finite = const_cast<uint32_t*>(packed_dw_finite(packed, p.Cmid));
  for (int64_t i = first; i < total; i += stride) {
    const int64_t group = i / (9 * kLanes);
    const int t = static_cast<int>(i / kLanes % 9), j = static_cast<int>(i % kLanes);
    packed[i] = to_float(w[(group * kLanes + j) * 9 + t]);
    if (i % (9 * kLanes) == 0) {
      bool all = true;
      for (int e = 0; e < 9 * kLanes; ++e) all &= fabsf(to_float(w[group * kLanes * 9 + e])) <= 3.402823466e38f;
      finite[group] = all ? 1u : 0u;
    }
  }
}

template <typename T, int kLanes>
__global__ void sepconv_fwd_dw_pack_kernel(const SepConvParams p, float* packed) {
  pack_dw_weights<T, kLanes>(p, packed, blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x,
                             static_cast<int64_t>(gridDim.x) * blockDim.x);
}

// The weights of channel group `group` (channels group * kLanes ..) from that packing.
template <int kLanes>
__device__ __forceinline__ void load_group_weights(const float* packed, int group, float (&w)[9][kLanes]) {
  using V = std::conditional_t<kLanes == 2, float2, float4>;
  const V* at = reinterpret_cast<const V*>(packed) + static_cast<int64_t>(group) * 9;
#pragma unroll
  for (int t = 0; t < 9; ++t) {
    const V v = __ldg(at + t);
    w[t][0] = v.x, w[t][1] = v.y;
    if constexpr (kLanes == 4) w[t][2] = v.z, w[t][3] = v.w;
  }
}

// Whether every weight of a group is finite (then the window path's zero-filled padding taps add
// nothing: 0 * w = 0). The backward's recomputation of Z asks it per chunk; the forwards read the
// pack's word (packed_dw_finite).
template <int kLanes>
__device__ __forceinline__ bool weights_finite(const float (&w)[9][kLanes]) {
  bool finite = true;
#pragma unroll
  for (int t = 0; t < 9; ++t)
#pragma unroll
    for (int j = 0; j < kLanes; ++j) finite &= fabsf(w[t][j]) <= 3.402823466e38f;  // false for inf and NaN
  return finite;
}

// Channels per item for a tile of BM pixels and BK channels a chunk among kThreads threads: four
// where every thread then has whole items, else two.
__host__ __device__ constexpr int quad_lanes(int bm, int bk, int threads) {
  return (bk / 4) * (bm / kQuadPixels) >= threads && (bk / 4) * (bm / kQuadPixels) % threads == 0 ? 4 : 2;
}

#if defined(XSEP_WITH_CUTE)
// v as Z stores it: rounded once to T, then the intermediate activation (kActivation: p.activation
// is not kNone), then (fp32) TF32.
template <typename T, bool kActivation>
__device__ __forceinline__ T z_value(const SepConvParams& p, float v) {
  T z = from_float<T>(v);
  if constexpr (kActivation) z = from_float<T>(activate(p.activation, to_float(z)));
  if constexpr (std::is_same_v<T, float>) z = round_to_tf32(z);
  return z;
}

// A thread's share of Z for a tile of BM output pixels (from pixel p0), chunk by chunk of BK
// channels, among kThreads threads (thread t of them): kItems (channel group, quad) items a chunk,
// the same group and quads in every chunk. packed_dw: sepconv_fwd_dw_pack_kernel<T, kLanes>'s
// weights. kNarrow: fewer than 2^31 pixels (fwd_pixel_origin's 32-bit division). kTwoRuns: quads
// an output row ends inside take two windows (quad_window), for builds with the registers (the
// second window's loads, and its code, cost the 128-register builds spills).
template <typename T, int BM, int BK, int kThreads, int kLanes_ = quad_lanes(BM, BK, kThreads), bool kNarrow = false,
          bool kTwoRuns = false>
struct QuadDepthwise {
  using Value = T;
  static constexpr int kChannels = BK;  // a chunk's
  static constexpr int kLanes = kLanes_;
  static constexpr int kGroups = BK / kLanes;
  static constexpr int kItems = kGroups * (BM / kQuadPixels) / kThreads;
  static_assert(kThreads % kGroups == 0, "a thread keeps its channel group in every chunk");
  static_assert(kItems >= 1 && kItems * kThreads == kGroups * (BM / kQuadPixels), "whole items a thread");
  using Group = ChannelGroup<T, kLanes>;
  int group;  // within a chunk
  int m0[kItems];
  QuadWindow<T> quads[kItems];
  const float* packed_dw;

  __device__ __forceinline__ QuadDepthwise(const SepConvParams& p, int64_t p0, int t, const float* dw)
      : group(t % kGroups), packed_dw(dw) {
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      m0[i] = (t + i * kThreads) / kGroups * kQuadPixels;
      quads[i] = quad_window<T, kNarrow, kTwoRuns>(p, p0, m0[i]);
    }
  }

  // A chunk's loads: the group's weights (fp32; zero past Cmid) and every window item's 3 x 6 inputs.
  struct ChunkLoads {
    float w[9][kLanes];
    uint32_t finite;  // the pack's word: the group's weights are all finite
    Group window[kItems][3][kQuadCols];
  };

  // Chunk g's loads (channels g * BK ..), every one issued before any is used: the windows do not
  // wait for the weights (whether the window path may use them, finite weights, is the
  // arithmetic's check).
  __device__ __forceinline__ void load_chunk(const SepConvParams& p, int g, ChunkLoads& in) const {
    const int k = g * BK + kLanes * group;  // the group's first channel
    in.finite = 0;
    if (k < p.Cmid) {  // Cmid % kLanes == 0: a group is wholly in or out
      load_group_weights<kLanes>(packed_dw, k / kLanes, in.w);
      in.finite = __ldg(packed_dw_finite(packed_dw, p.Cmid) + k / kLanes);
#pragma unroll
      for (int i = 0; i < kItems; ++i)
        if (quads[i].window) load_quad_window<T, kLanes>(p, quads[i], k, in.window[i]);
    } else {
#pragma unroll
      for (int t = 0; t < 9; ++t)
#pragma unroll
        for (int j = 0; j < kLanes; ++j) in.w[t][j] = 0.f;
    }
  }

  // Z of chunk g from its loads: store(m, kk, bits) for each of the thread's pixels m, with kk the
  // group's first channel within the chunk and bits its kLanes values as stored; zero past the last
  // pixel and past Cmid (the pointwise weight's padding is zero too). px: the tile's tap table (the
  // per-pixel path, for items without a window and groups with a weight that is not finite).
  template <class TapTable, class Store>
  __device__ __forceinline__ void compute_chunk(const SepConvParams& p, const TapTable& px, int g, const ChunkLoads& in,
                                                Store&& store) const {
    // Whether there is an activation, asked once a chunk rather than at each value (Xception has
    // none: the values then go from the sums to the stores with nothing in between).
    if (p.activation == Activation::kNone)
      compute_chunk_as<false>(p, px, g, in, store);
    else
      compute_chunk_as<true>(p, px, g, in, store);
  }

  template <bool kActivation, class TapTable, class Store>
  __device__ __forceinline__ void compute_chunk_as(const SepConvParams& p, const TapTable& px, int g,
                                                   const ChunkLoads& in, Store&& store) const {
    const int k = g * BK + kLanes * group;
    compute_items<kActivation>(
        p, px, k, in.w, in.finite != 0,
        [&](int i, Group(&v)[3][kQuadCols]) {  // the prefetched window
#pragma unroll
          for (int ky = 0; ky < 3; ++ky)
#pragma unroll
            for (int c = 0; c < kQuadCols; ++c) v[ky][c] = in.window[i][ky][c];
        },
        [&](int i, Group(&v)[3][kQuadCols]) { load_quad_window<T, kLanes>(p, second_window(p, quads[i]), k, v); },
        store);
  }

  // Every item's values for the group's channels k .. (w: its weights, zero past Cmid; finite: the
  // pack's word for them) and their stores, the windows from first_run(i, v) (a window item's first
  // run: the whole quad where a row does not end inside it) and second_run(i, v) (a two-run quad's
  // second run, asked for after every item's first: in the global path its loads then take the
  // first windows' registers). The global path's windows come from x (chunk), the band path's from
  // shared memory (sepconv_fwd_band.cuh).
  template <bool kActivation, class TapTable, class FirstWindow, class SecondWindow, class Store>
  __device__ __forceinline__ void compute_items(const SepConvParams& p, const TapTable& px, int k,
                                                const float (&w)[9][kLanes], bool finite, FirstWindow&& first_run,
                                                SecondWindow&& second_run, Store&& store) const {
    const bool live = k < p.Cmid;
    const bool windows = live && finite;
    float out[kQuadPixels][kLanes];
    // Pixels first .. last - 1 of item i from out.
    auto store_pixels = [&](int i, int first, int last) {
#pragma unroll
      for (int r = 0; r < kQuadPixels; ++r) {
        if (r < first || r >= last) continue;
        GroupBits<T, kLanes> z;
#pragma unroll
        for (int j = 0; j < kLanes; ++j) z.e[j] = z_value<T, kActivation>(p, out[r][j]);
        store(m0[i] + r, kLanes * group, z.u);
      }
    };
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      if (windows && quads[i].window) {
        Group v[3][kQuadCols];
        first_run(i, v);
        quad_window_sums<T, kLanes>(v, w, out);
        store_pixels(i, 0, kTwoRuns ? quad_split(quads[i]) : kQuadPixels);  // a two-run quad: its first run
      } else {
        if (live) {
          quad_pixel_sums<T, kLanes>(p, px, m0[i], k, w, out);
        } else {
#pragma unroll
          for (int r = 0; r < kQuadPixels; ++r)
#pragma unroll
            for (int j = 0; j < kLanes; ++j) out[r][j] = 0.f;
        }
        store_pixels(i, 0, kQuadPixels);
      }
    }
    // The second runs of two-run quads, each from its own window.
    if constexpr (kTwoRuns) {
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const int split = quad_split(quads[i]);
        if (windows && quads[i].window && split < kQuadPixels) {
          Group second[3][kQuadCols];
          second_run(i, second);
          quad_window_sums<T, kLanes>(second, w, out);
          store_pixels(i, split, kQuadPixels);
        }
      }
    }
  }

  // Z of chunk g: its loads, then its arithmetic.
  template <class TapTable, class Store>
  __device__ __forceinline__ void chunk(const SepConvParams& p, const TapTable& px, int g, Store&& store) const {
    ChunkLoads in;
    load_chunk(p, g, in);
    compute_chunk(p, px, g, in, store);
  }

  // Z of chunks 0 .. chunks - 1 in order, each chunk's loads in flight during the previous chunk's
  // arithmetic (two chunks' loads live at once: for builds with the registers, the wgmma forward's
  // with XSEP_FWD_PREFETCH=1). store(g, m, kk, bits).
  template <class TapTable, class Store>
  __device__ __forceinline__ void all_chunks_prefetched(const SepConvParams& p, const TapTable& px, int chunks,
                                                        Store&& store) const {
    ChunkLoads a, b;  // two buffers, used in turn (a loop of two chunks: no copy between them)
    if (chunks > 0) load_chunk(p, 0, a);
    auto step = [&](int g, const ChunkLoads& current, ChunkLoads& next) {
      if (g + 1 < chunks) load_chunk(p, g + 1, next);
      compute_chunk(p, px, g, current, [&](int m, int kk, auto bits) { store(g, m, kk, bits); });
    };
#pragma unroll 1
    for (int g = 0; g < chunks; g += 2) {
      step(g, a, b);
      if (g + 1 < chunks) step(g + 1, b, a);
    }
  }
};
#endif  // XSEP_WITH_CUTE

}  // namespace xsep
