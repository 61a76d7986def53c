// The fused backward kernels (plan and overview in sepconv_bwd.h and sepconv_bwd_plan.h; the choice
// and the launch in sepconv_bwd_launch.cuh).
//
// Nothing is read back from the forward but x: Z (pw-gradient kernel) and dZ (input-gradient
// kernel) are recomputed on chip. Every cross-CTA sum goes through fp32 partial sums in the
// workspace and a reduce kernel that adds them in a fixed order, so the same inputs give bitwise
// the same gradients on every run.
//
// These are the first kernels, correct on the H100 and slow (benchmarks/results/gpu-layers-*.md):
// scalar synchronous operand loads. Their staged successors (cp.async double buffering, 16-byte
// loads; sepconv_bwd_*_staged_kernel.cuh) run where they apply when XSEP_BWD_KERNEL=staged, until
// a GPU session has checked and measured them. Not yet anywhere: wgmma on sm_90a, per-layer tiles.
#pragma once

#include <cstdint>
#include <type_traits>

#include "element_types.cuh"
#include "mma_tile.cuh"
#include "sepconv_bwd.h"
#include "sepconv_bwd_tiles.cuh"

namespace xsep {

template <typename T_, Math kMath_, bool kChannelsLast_, int kKH_, int kKW_>
struct BwdKernelTraits {
  using T = T_;
  static constexpr Math kMath = kMath_;
  static constexpr bool kChannelsLast = kChannelsLast_;
  static constexpr int kKH = kKH_;  // 0: kernel size known at run time only
  static constexpr int kKW = kKW_;
  // fp32 operands take twice the registers: fewer loads in flight (the 2-CTA/SM launch bound
  // caps a thread at 128 registers).
  static constexpr int kUnroll = std::is_same_v<T_, float> ? 1 : 2;      // depthwise elements
  static constexpr int kLoadUnroll = std::is_same_v<T_, float> ? 2 : 4;  // operand loads
  // CTAs per SM the register budget is sized for: TF32 fragments and fp32 staging do not fit in
  // 128 registers without spills (ptxas), so fp32 kernels get the whole register file.
  static constexpr int kMinBlocks = std::is_same_v<T_, float> ? 1 : 2;
  // Input-gradient kernel: M = output pixels of a tile's ext, N = depthwise channels, K = Cout.
  using InputTile = GemmTile<T_, kBwdInputRows, kBwdInputChannels, 32, 4, 2>;
  // pw-gradient kernel: M = depthwise channels, N = output channels, K = pixels.
  using PwTile = GemmTile<T_, 64, 128, kBwdPwPixels, 2, 4>;
};

template <class Traits>
__device__ __forceinline__ int kernel_h(const SepConvParams& f) {
  return Traits::kKH > 0 ? Traits::kKH : f.kh;
}
template <class Traits>
__device__ __forceinline__ int kernel_w(const SepConvParams& f) {
  return Traits::kKW > 0 ? Traits::kKW : f.kw;
}

// ---- input-gradient kernel: grad_x and the grad_dw partial sums ---------------------------------

template <class Traits>
struct BwdInputShared {
  using Tile = typename Traits::InputTile;
  using Operand = typename Tile::Operand;
  struct Operands {
    Operand dy[Tile::BM][Tile::kLdAB];  // A: grad_y of the ext pixels, [pixel][co]
    Operand w[Tile::BN][Tile::kLdAB];   // B: pointwise weight as [cm][co]
  };
  union {
    Operands ops;
    float dz[Tile::BM][Tile::kLdC];  // dZ of the ext pixels in fp32, [pixel][cm]
  };
  int64_t gy_base[Tile::BM];  // offset of grad_y[n, 0, oy, ox] of ext pixel e; -1 past the ext
  bool own_row[Tile::BM];     // does this tile count ext row / column in grad_dw (first_inside_tap)
  bool own_col[Tile::BM];
};

template <class Traits>
__global__ void __launch_bounds__(Traits::InputTile::kThreads, Traits::kMinBlocks)
    sepconv_bwd_input_kernel(const SepConvBwdParams p) {
  using T = typename Traits::T;
  using Tile = typename Traits::InputTile;
  using Operand = typename Tile::Operand;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, kThreads = Tile::kThreads;
  constexpr int kLoadUnroll = Traits::kLoadUnroll;
  __shared__ __align__(128) BwdInputShared<Traits> s;
  const SepConvParams& f = p.fwd;
  const int kh = kernel_h<Traits>(f), kw = kernel_w<Traits>(f), taps = kh * kw;

  const BwdGeometry geo{f.N, f.H, f.W, f.Ho, f.Wo, f.kh, f.kw, f.sh, f.sw, f.pt, f.pl, f.dh, f.dw};
  const BwdTile t = bwd_tile(geo, p.tiles, blockIdx.x);
  const int ext_h = t.ey1 - t.ey0, ext_w = t.ex1 - t.ex0, ext_count = ext_h * ext_w;  // <= BM (plan)
  const int c0 = blockIdx.y * p.channels_per_cta;                                     // first input channel of this CTA
  const int c_count = imin(p.channels_per_cta, f.C - c0);
  const int cm0 = c0 * f.M, cm_count = c_count * f.M;  // its depthwise channels: [cm0, cm0 + cm_count)

  fill_ext_tables<BM, kThreads>(f, t, kh, kw, s.gy_base, s.own_row, s.own_col);
  __syncthreads();

  // dZ[e][cm] = sum over co of grad_y[e][co] * W_pw[co][cm0 + cm], on tensor cores.
  const T* __restrict__ gy = static_cast<const T*>(p.grad_y);
  const T* __restrict__ wpw = static_cast<const T*>(f.pw_weight);
  BlockMma<Tile, Traits::kMath> mma;
  for (int k0 = 0; k0 < f.Cout; k0 += BK) {
#pragma unroll kLoadUnroll
    for (int i = 0; i < BM * BK / kThreads; ++i) {
      // channels_last: neighbouring threads along co (contiguous); NCHW: along the ext row.
      const int idx = threadIdx.x + i * kThreads;
      const int m = Traits::kChannelsLast ? idx / BK : idx % BM;
      const int k = Traits::kChannelsLast ? idx % BK : idx / BM;
      const int co = k0 + k;
      const int64_t base = s.gy_base[m];
      s.ops.dy[m][k] = (co < f.Cout && base >= 0) ? static_cast<Operand>(__ldg(gy + base + co * f.y_stride[1]))
                                                  : static_cast<Operand>(from_float<T>(0.f));
    }
#pragma unroll kLoadUnroll
    for (int i = 0; i < BN * BK / kThreads; ++i) {
      const int idx = threadIdx.x + i * kThreads;
      const int n = idx % BN, k = idx / BN;  // neighbouring threads along a row of W_pw (cm)
      const int co = k0 + k;
      s.ops.w[n][k] = (co < f.Cout && n < cm_count)
                          ? static_cast<Operand>(__ldg(wpw + static_cast<int64_t>(co) * f.Cmid + cm0 + n))
                          : static_cast<Operand>(from_float<T>(0.f));
    }
    __syncthreads();
    mma.step(s.ops.dy, s.ops.w);
    __syncthreads();
  }
  mma.stage(s.dz);  // s.dz aliases the operands: safe after the barrier above
  __syncthreads();
  if constexpr (!std::is_same_v<T, float>) {  // dZ rounded as the unfused op stores it (see round_like_storage)
    for (int i = threadIdx.x; i < BM * BN; i += kThreads) {
      s.dz[i / BN][i % BN] = round_like_storage<T>(s.dz[i / BN][i % BN]);
    }
    __syncthreads();
  }

  const T* __restrict__ x = static_cast<const T*>(f.x);
  const T* __restrict__ wdw = static_cast<const T*>(f.dw_weight);

  // With an intermediate activation, dZ above is the gradient of its output: times act'(Z), with
  // Z (the pre-activation) recomputed from x at each ext pixel.
  if (f.activation != Activation::kNone) {
    for (int i = threadIdx.x; i < ext_count * cm_count; i += kThreads) {
      const int e = i / cm_count, cl_m = i % cm_count;
      const int oy = t.ey0 + e / ext_w, ox = t.ex0 + e % ext_w;
      const int64_t xc = t.n * f.x_stride[0] + static_cast<int64_t>(c0 + cl_m / f.M) * f.x_stride[1];
      const T* __restrict__ wc = wdw + static_cast<int64_t>(cm0 + cl_m) * taps;
      float z = 0.f;
      for (int ky = 0; ky < kh; ++ky) {
        const int iy = oy * f.sh - f.pt + ky * f.dh;
        if (iy < 0 || iy >= f.H) continue;
        for (int kx = 0; kx < kw; ++kx) {
          const int ix = ox * f.sw - f.pl + kx * f.dw;
          if (ix < 0 || ix >= f.W) continue;
          z = fmaf(to_float(__ldg(x + xc + static_cast<int64_t>(iy) * f.x_stride[2] +
                                  static_cast<int64_t>(ix) * f.x_stride[3])),
                   to_float(__ldg(wc + ky * kw + kx)), z);
        }
      }
      const float grad = s.dz[e][cl_m] * activation_grad(f.activation, round_like_storage<T>(z));
      s.dz[e][cl_m] = round_like_storage<T>(grad);
    }
    __syncthreads();
  }

  // grad_x of the tile's own pixels: every output that reads pixel (iy, ix) through a tap is in
  // the ext, so the sum is complete here and each element is written exactly once.
  if (p.grad_x != nullptr) {
    T* __restrict__ gx = static_cast<T*>(p.grad_x);
    const int tw = t.ix1 - t.ix0, pixels = (t.iy1 - t.iy0) * tw;
    const int items = pixels * c_count;
    for (int idx = threadIdx.x; idx < items; idx += kThreads) {
      const int q = Traits::kChannelsLast ? idx / c_count : idx % pixels;
      const int cl = Traits::kChannelsLast ? idx % c_count : idx / pixels;
      const int iy = t.iy0 + q / tw, ix = t.ix0 + q % tw;
      float acc = 0.f;
      for (int ky = 0; ky < kh; ++ky) {
        const int oy = output_of_tap(iy, ky, f.sh, f.pt, f.dh, f.Ho);
        if (oy < 0) continue;
        for (int kx = 0; kx < kw; ++kx) {
          const int ox = output_of_tap(ix, kx, f.sw, f.pl, f.dw, f.Wo);
          if (ox < 0) continue;
          const int e = (oy - t.ey0) * ext_w + (ox - t.ex0);
          for (int m = 0; m < f.M; ++m) {
            const int cl_m = cl * f.M + m;
            acc =
                fmaf(to_float(__ldg(wdw + static_cast<int64_t>(cm0 + cl_m) * taps + ky * kw + kx)), s.dz[e][cl_m], acc);
          }
        }
      }
      gx[t.n * p.gx_stride[0] + static_cast<int64_t>(c0 + cl) * p.gx_stride[1] +
         static_cast<int64_t>(iy) * p.gx_stride[2] + static_cast<int64_t>(ix) * p.gx_stride[3]] = from_float<T>(acc);
    }
  }

  // grad_dw partial sums over the output pixels this tile owns: x * dZ per (channel, tap).
  if (p.grad_dw != nullptr) {
    float* __restrict__ part = p.workspace + static_cast<int64_t>(blockIdx.x) * f.Cmid * taps;
    const int items = cm_count * taps;
    for (int idx = threadIdx.x; idx < items; idx += kThreads) {
      const int cl_m = idx / taps, tap = idx % taps;
      const int ky = tap / kw, kx = tap % kw;
      const int64_t xc = t.n * f.x_stride[0] + static_cast<int64_t>(c0 + cl_m / f.M) * f.x_stride[1];
      float acc = 0.f;
      for (int ey = 0; ey < ext_h; ++ey) {
        const int iy = (t.ey0 + ey) * f.sh - f.pt + ky * f.dh;
        if (!s.own_row[ey] || iy < 0 || iy >= f.H) continue;
        for (int ex = 0; ex < ext_w; ++ex) {
          const int ix = (t.ex0 + ex) * f.sw - f.pl + kx * f.dw;
          if (!s.own_col[ex] || ix < 0 || ix >= f.W) continue;
          const float xv = to_float(
              __ldg(x + xc + static_cast<int64_t>(iy) * f.x_stride[2] + static_cast<int64_t>(ix) * f.x_stride[3]));
          acc = fmaf(xv, s.dz[ey * ext_w + ex][cl_m], acc);
        }
      }
      part[static_cast<int64_t>(cm0 + cl_m) * taps + tap] = acc;
    }
  }
}

// ---- pw-gradient kernel: grad_pw (and grad_bias) partial sums per split of the pixels -----------

template <class Traits>
struct BwdPwShared {
  using Tile = typename Traits::PwTile;
  using Operand = typename Tile::Operand;
  struct Operands {
    Operand z[Tile::BM][Tile::kLdAB];   // A: Z recomputed, [cm][pixel]
    Operand dy[Tile::BN][Tile::kLdAB];  // B: grad_y as [co][pixel]
  };
  union {
    Operands ops;
    float c[Tile::BM][Tile::kLdC];  // accumulators [cm][co], staged for the partial write
  };
  int64_t x_base[Tile::BK];   // offset of x[n, 0, iy0, ix0] of the chunk's pixel
  int64_t gy_base[Tile::BK];  // offset of grad_y[n, 0, oy, ox]; -1 past the split's last pixel
  int iy0[Tile::BK];
  int ix0[Tile::BK];
};

template <class Traits>
__global__ void __launch_bounds__(Traits::PwTile::kThreads, Traits::kMinBlocks)
    sepconv_bwd_pw_kernel(const SepConvBwdParams p) {
  using T = typename Traits::T;
  using Tile = typename Traits::PwTile;
  using Operand = typename Tile::Operand;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, kThreads = Tile::kThreads;
  constexpr int kLoadUnroll = Traits::kLoadUnroll;
  static_assert(BN <= kThreads, "one thread per output channel sums grad_bias");
  __shared__ __align__(128) BwdPwShared<Traits> s;
  const SepConvParams& f = p.fwd;
  const int kh = kernel_h<Traits>(f), kw = kernel_w<Traits>(f), taps = kh * kw;

  const int cm0 = blockIdx.x * BM, co0 = blockIdx.y * BN;
  int64_t begin, end;
  pw_split_pixels(p, blockIdx.z, &begin, &end);
  const bool want_pw = p.grad_pw != nullptr;
  const bool want_bias = p.grad_bias != nullptr && blockIdx.x == 0;

  const T* __restrict__ x = static_cast<const T*>(f.x);
  const T* __restrict__ wdw = static_cast<const T*>(f.dw_weight);
  const T* __restrict__ gy = static_cast<const T*>(p.grad_y);
  BlockMma<Tile, Traits::kMath> mma;
  float bias_acc = 0.f;  // thread n < BN: grad_bias[co0 + n] over this split, in pixel order

  for (int64_t q0 = begin; q0 < end; q0 += BK) {
    if (threadIdx.x < BK) {
      const int k = threadIdx.x;
      const int64_t q = q0 + k;
      s.gy_base[k] = -1;
      s.x_base[k] = 0;
      s.iy0[k] = s.ix0[k] = 0;
      if (q < end) {
        const int64_t hw = static_cast<int64_t>(f.Ho) * f.Wo;
        const int64_t n = q / hw;
        const int rem = static_cast<int>(q - n * hw);
        const int oy = rem / f.Wo, ox = rem % f.Wo;
        const int iy0 = oy * f.sh - f.pt, ix0 = ox * f.sw - f.pl;
        s.iy0[k] = iy0;
        s.ix0[k] = ix0;
        s.x_base[k] =
            n * f.x_stride[0] + static_cast<int64_t>(iy0) * f.x_stride[2] + static_cast<int64_t>(ix0) * f.x_stride[3];
        s.gy_base[k] =
            n * f.y_stride[0] + static_cast<int64_t>(oy) * f.y_stride[2] + static_cast<int64_t>(ox) * f.y_stride[3];
      }
    }
    __syncthreads();

    if (want_pw) {  // Z[cm][k] for the chunk's pixels, rounded to the input dtype as the unfused op does
      constexpr int kUnroll = Traits::kUnroll;
#pragma unroll kUnroll
      for (int i = 0; i < BM * BK / kThreads; ++i) {
        const int idx = threadIdx.x + i * kThreads;
        const int m = Traits::kChannelsLast ? idx % BM : idx / BK;  // channels_last: along cm
        const int k = Traits::kChannelsLast ? idx / BM : idx % BK;  // NCHW: along the pixels
        const int cm = cm0 + m;
        float acc = 0.f;
        if (cm < f.Cmid && s.gy_base[k] >= 0) {
          const int64_t xc = s.x_base[k] + static_cast<int64_t>(cm / f.M) * f.x_stride[1];
          const T* __restrict__ wc = wdw + static_cast<int64_t>(cm) * taps;
          for (int ky = 0; ky < kh; ++ky) {
            const int iy = s.iy0[k] + ky * f.dh;
            if (iy < 0 || iy >= f.H) continue;
            for (int kx = 0; kx < kw; ++kx) {
              const int ix = s.ix0[k] + kx * f.dw;
              if (ix < 0 || ix >= f.W) continue;
              const int64_t off = xc + static_cast<int64_t>(ky) * f.dh * f.x_stride[2] +
                                  static_cast<int64_t>(kx) * f.dw * f.x_stride[3];
              acc = fmaf(to_float(__ldg(x + off)), to_float(__ldg(wc + ky * kw + kx)), acc);
            }
          }
        }
        if (f.activation != Activation::kNone) acc = activate(f.activation, round_like_storage<T>(acc));
        s.ops.z[m][k] = static_cast<Operand>(from_float<T>(acc));
      }
    }
#pragma unroll kLoadUnroll
    for (int i = 0; i < BN * BK / kThreads; ++i) {
      const int idx = threadIdx.x + i * kThreads;
      const int n = Traits::kChannelsLast ? idx % BN : idx / BK;
      const int k = Traits::kChannelsLast ? idx / BN : idx % BK;
      const int co = co0 + n;
      const int64_t base = s.gy_base[k];
      s.ops.dy[n][k] = (co < f.Cout && base >= 0) ? static_cast<Operand>(__ldg(gy + base + co * f.y_stride[1]))
                                                  : static_cast<Operand>(from_float<T>(0.f));
    }
    __syncthreads();
    if (want_pw) mma.step(s.ops.z, s.ops.dy);
    if (want_bias && threadIdx.x < BN) {
#pragma unroll 8
      for (int k = 0; k < BK; ++k) bias_acc += to_float(static_cast<T>(s.ops.dy[threadIdx.x][k]));
    }
    __syncthreads();
  }

  float* __restrict__ ws_pw = p.workspace + p.dw_partials * f.Cmid * taps;
  float* __restrict__ ws_bias = ws_pw + static_cast<int64_t>(p.pw_splits) * f.Cout * f.Cmid;
  if (want_pw) {
    mma.stage(s.c);  // s.c aliases the operands: safe after the loop's last barrier
    __syncthreads();
    float* __restrict__ part = ws_pw + static_cast<int64_t>(blockIdx.z) * f.Cout * f.Cmid;
#pragma unroll kLoadUnroll
    for (int i = 0; i < BM * BN / kThreads; ++i) {
      const int idx = threadIdx.x + i * kThreads;
      const int m = idx % BM, n = idx / BM;  // neighbouring threads along cm: contiguous in grad_pw
      const int cm = cm0 + m, co = co0 + n;
      if (cm < f.Cmid && co < f.Cout) part[static_cast<int64_t>(co) * f.Cmid + cm] = s.c[m][n];
    }
  }
  if (want_bias && threadIdx.x < BN && co0 + static_cast<int>(threadIdx.x) < f.Cout) {
    ws_bias[static_cast<int64_t>(blockIdx.z) * f.Cout + co0 + threadIdx.x] = bias_acc;
  }
}

// ---- fixed-order reduction of partial sums ------------------------------------------------------

// out[g * len + j] = sum over rows r in [g * rows_per_group, min(count, (g + 1) * rows_per_group))
// of parts[r * len + j], added in row order. The grouping depends only on the sizes, never on
// timing: deterministic.
template <typename Out>
__global__ void __launch_bounds__(256)
    sepconv_bwd_reduce_kernel(const float* __restrict__ parts, int64_t count, int64_t len, int64_t rows_per_group,
                              Out* __restrict__ out) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= len) return;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows_per_group;
  const int64_t r1 = r0 + rows_per_group < count ? r0 + rows_per_group : count;
  float acc = 0.f;
  for (int64_t r = r0; r < r1; ++r) acc += parts[r * len + j];
  out[static_cast<int64_t>(blockIdx.y) * len + j] = from_float<Out>(acc);
}

}  // namespace xsep
