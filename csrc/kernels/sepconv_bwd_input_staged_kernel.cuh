// The input-gradient kernel with staged operands, EXPERIMENTAL: written without a GPU, run only
// when XSEP_BWD_KERNEL=staged asks for it (tests/test_cuda_backward.py forces it), to be measured
// against sepconv_bwd_input_kernel (sepconv_bwd_kernel.cuh) before it becomes the default.
//
// Same tiles, plan, workspace and results as that kernel (grad_x of the tile's own input pixels,
// grad_dw partial sums over the output pixels it owns); what changes is how the work is fed:
//   * dZ = dY . W_pw: both operand chunks are copied with 16-byte cp.async (grad_y rows are
//     contiguous along Cout in channels_last, W_pw rows along Cmid, so W is kept as it lies,
//     [co][cm], and read as a row-major B), double-buffered: the copy of chunk k+1 is in flight
//     while the tensor cores work on chunk k. The first kernel loads them element by element,
//     synchronously, each load waiting its full latency.
//   * The CTA's depthwise weights are read once into shared memory (fp32), not per tap and pixel.
//   * grad_dw: every thread keeps the nine tap sums of one channel over a quarter of the ext
//     pixels (a half with 128 channels per CTA; x loads of neighbouring channels coalesced, dZ
//     broadcast), then the parts are added in a fixed order. The first kernel gives each
//     (channel, tap) one thread and walks every ext pixel serially.
//   * At stride 1, dilation 1 and multiplier 1 (all of Xception), grad_x and grad_dw walk rows with
//     the 3x3 window in registers (sepconv_bwd_input_windows.cuh); elsewhere each pixel's taps are
//     found anew.
// Taken only where it applies (staged_input_applies): fp16/bf16, or fp32 on TF32 tensor cores; 3x3
// kernels (any stride, dilation, padding, multiplier); channels_last grad_y with 16-byte aligned
// pixels; Cmid and Cout multiples of a 16-byte vector (8 16-bit or 4 fp32 elements); 16-byte aligned
// W_pw; sm_80+. Shared memory is dynamic (fp32 operands need more than the 48 KB of static).
#pragma once

#include <cstdint>
#include <type_traits>

#include "cp_async.cuh"
#include "element_types.cuh"
#include "mma_tile.cuh"
#include "phase_clocks.cuh"
#include "sepconv_bwd.h"
#include "sepconv_bwd_input_windows.cuh"
#include "sepconv_bwd_tiles.cuh"

namespace xsep {

// T: __half or __nv_bfloat16 (WMMA), or float (TF32 WMMA; exact fp32 takes the first kernel).
// kWgmma: the dZ GEMM on Hopper's warpgroup MMA instead (16-bit types; sepconv_bwd_input_wgmma.cuh).
// kChannels: depthwise channels per CTA (the GEMM's N), 64 as the first kernel, or 128
// (XSEP_BWD_CHANNELS=128, for measurement), or 256 (the wgmma kernel alone, XSEP_BWD_CHANNELS=256:
// one CTA per SM, 128 accumulators a thread): every CTA reads its ext pixels' whole grad_y row
// (Cout values each) from L2, so more channels per CTA cut that traffic (at 728 channels grad_y is
// read 12 times with 64, 3 times with 256) and the barriers per MMA, for a larger dZ tile in
// shared memory.
template <typename T_, bool kWgmma_ = false, int kChannels_ = kBwdInputChannels>
struct StagedInputTraits {
  using T = T_;
  static constexpr bool kWgmma = kWgmma_;
  static constexpr int kChannels = kChannels_;
  // M = ext pixels, N = depthwise channels, K = Cout in chunks of 32; 8 warps of 32 x N/2.
  using Tile = GemmTile<T_, kBwdInputRows, kChannels_, 32, 4, 2>;
  static constexpr int kTaps = 9;                           // 3x3
  static constexpr int kVec = 16 / sizeof(T_);              // elements per 16-byte copy
  static constexpr int kLdW = Tile::BN + kVec;              // W chunk rows [co][cm], 16-byte pad
  static constexpr int kParts = Tile::kThreads / Tile::BN;  // grad_dw: ext pixels split in 4 (2 at 128)
};

// One chunk of the dZ GEMM's operands, Cout from k0: grad_y of the BM ext pixels (gy_base: their
// grad_y offsets, -1 past the ext) to dy_at(m, k), and W_pw rows co to w_at(k, n) for the CTA's
// channels cm0.., 16 bytes per cp.async: whole pieces in or out (Cout, Cmid multiples of 8),
// zero-filled outside. BK channels of Cout; the destinations are the GEMM's layouts. The copies are
// spread over kThreads threads (the CTA's, or a part of them), `tid` this thread's index among them.
template <class Traits, int BK, int kThreads, class DyAt, class WAt>
__device__ __forceinline__ void copy_dz_operands(const SepConvBwdParams& p, const int64_t* gy_base, int cm0,
                                                 int cm_count, int k0, int tid, DyAt&& dy_at, WAt&& w_at) {
  using T = typename Traits::T;
  constexpr int BM = Traits::Tile::BM, BN = Traits::Tile::BN;
  constexpr int kVec = Traits::kVec;
  static_assert(BM * (BK / kVec) % kThreads == 0 && BK * (BN / kVec) % kThreads == 0, "whole copies per thread");
  const SepConvParams& f = p.fwd;
  const T* __restrict__ gy = static_cast<const T*>(p.grad_y);
  const T* __restrict__ wpw = static_cast<const T*>(f.pw_weight);
#pragma unroll
  for (int i = 0; i < BM * (BK / kVec) / kThreads; ++i) {
    const int v = tid + i * kThreads;
    const int m = v / (BK / kVec), k = (v % (BK / kVec)) * kVec;
    const int64_t base = gy_base[m];
    const bool valid = base >= 0 && k0 + k < f.Cout;
    cp_async_16(dy_at(m, k), valid ? gy + base + k0 + k : gy, valid);
  }
#pragma unroll
  for (int i = 0; i < BK * (BN / kVec) / kThreads; ++i) {
    const int v = tid + i * kThreads;
    const int k = v / (BN / kVec), n = (v % (BN / kVec)) * kVec;  // neighbours along a row of W_pw
    const int co = k0 + k;
    const bool valid = co < f.Cout && n < cm_count;
    cp_async_16(w_at(k, n), valid ? wpw + static_cast<int64_t>(co) * f.Cmid + cm0 + n : wpw, valid);
  }
}

// The dZ GEMM: dZ[e][cm] = sum over co of grad_y[e][co] * W_pw[co][cm0 + cm] for the BM ext
// pixels (gy_base: their grad_y offsets, -1 past the ext) and the CTA's depthwise channels, into
// dz in fp32. This one: WMMA, both operands copied with 16-byte cp.async, double-buffered (the
// copy of chunk k+1 in flight while the tensor cores work on chunk k). `Storage` is aliased by
// dz: run returns after a barrier, with dz complete.
template <class Traits>
struct StagedInputDz {
  using Tile = typename Traits::Tile;
  using T = typename Traits::T;
  static constexpr int BK = Tile::BK;
  static constexpr bool kDzRounded = false;  // dz in fp32 as the MMA left it (the kernel rounds it)
  struct Stage {
    T dy[Tile::BM][Tile::kLdAB];  // A: grad_y of the ext pixels, [pixel][co]
    T w[Tile::BK][Traits::kLdW];  // B: W_pw rows as stored, [co][cm]
  };
  struct Storage {
    Stage stage[2];
  };

  __device__ __forceinline__ static void run(const SepConvBwdParams& p, Storage& st, float (*dz)[Tile::kLdC],
                                             const int64_t* gy_base, int cm0, int cm_count) {
    const SepConvParams& f = p.fwd;
    auto copy_chunk = [&](int step, int buf) {
      copy_dz_operands<Traits, BK, Tile::kThreads>(
          p, gy_base, cm0, cm_count, step * BK, threadIdx.x, [&](int m, int k) { return &st.stage[buf].dy[m][k]; },
          [&](int k, int n) { return &st.stage[buf].w[k][n]; });
    };
    TensorCoreMma<Tile, /*kAColMajor=*/false, /*kBRowMajor=*/true> mma;
    const int steps = (f.Cout + BK - 1) / BK;
    copy_chunk(0, 0);
    cp_async_commit();
#pragma unroll 1
    for (int step = 0; step < steps; ++step) {
      cp_async_wait<0>();
      __syncthreads();  // chunk `step` landed for everyone, and everyone is done with chunk step-1's buffer
      if (step + 1 < steps) copy_chunk(step + 1, (step + 1) & 1);  // in flight during this step's MMA
      cp_async_commit();
      mma.step(&st.stage[step & 1].dy[0][0], Tile::kLdAB, &st.stage[step & 1].w[0][0], Traits::kLdW);
    }
    __syncthreads();  // every MMA done with the buffers before dz aliases them
    mma.stage(dz);
    __syncthreads();
  }
};

template <class Traits>
struct StagedInputShared {
  using Tile = typename Traits::Tile;
  using T = typename Traits::T;
  union {
    typename StagedInputDz<Traits>::Storage gemm;  // the dZ GEMM's operands
    float dz[Tile::BM][Tile::kLdC];                // then dZ of the ext pixels in fp32, [pixel][cm]
  };
  float wdw[Tile::BN][Traits::kTaps];                      // the CTA's depthwise weights
  float dw_part[Traits::kParts][Tile::BN][Traits::kTaps];  // grad_dw sums per quarter of the ext
  int64_t gy_base[Tile::BM];  // offset of grad_y[n, 0, oy, ox] of ext pixel e; -1 past the ext
  bool own_row[Tile::BM];     // does this tile count ext row / column in grad_dw (first_inside_tap)
  bool own_col[Tile::BM];
};

// Two CTAs per SM (128 registers) for 16-bit types; one for fp32 (TF32 fragments, fp32 operands)
// and for 256 channels (a 133 KB dZ tile).
template <class Traits>
__global__ void __launch_bounds__(Traits::Tile::kThreads,
                                  sizeof(typename Traits::T) == 2 && Traits::kChannels <= 128 ? 2 : 1)
    sepconv_bwd_input_staged_kernel(const SepConvBwdParams p) {
  using T = typename Traits::T;
  using Tile = typename Traits::Tile;
  constexpr int BM = Tile::BM, BN = Tile::BN, kThreads = Tile::kThreads;
  constexpr int kTaps = Traits::kTaps, kParts = Traits::kParts;
  XSEP_DYNAMIC_SHARED(smem);  // sizeof(StagedInputShared<Traits>) bytes
  StagedInputShared<Traits>& s = *reinterpret_cast<StagedInputShared<Traits>*>(smem);
  const SepConvParams& f = p.fwd;
  // Measurement only (XSEP_PHASE_CLOCKS=1, phase_clocks.cuh): thread 0 stamps each phase's end,
  // after a barrier where the phase has none of its own (so that it times the slowest thread).
  unsigned long long* const clocks = f.phase_clocks;
  stamp_start(clocks);

  const BwdGeometry geo{f.N, f.H, f.W, f.Ho, f.Wo, f.kh, f.kw, f.sh, f.sw, f.pt, f.pl, f.dh, f.dw};
  const BwdTile t = bwd_tile(geo, p.tiles, blockIdx.x);
  const int ext_h = t.ey1 - t.ey0, ext_w = t.ex1 - t.ex0, ext_count = ext_h * ext_w;  // <= BM (plan)
  const int c0 = blockIdx.y * p.channels_per_cta;
  const int c_count = imin(p.channels_per_cta, f.C - c0);
  const int cm0 = c0 * f.M, cm_count = c_count * f.M;  // a multiple of kVec (staged_input_applies)
  const T* __restrict__ x = static_cast<const T*>(f.x);
  const T* __restrict__ wdw = static_cast<const T*>(f.dw_weight);

  fill_ext_tables<BM, kThreads>(f, t, 3, 3, s.gy_base, s.own_row, s.own_col);
  for (int i = threadIdx.x; i < BN * kTaps; i += kThreads) {
    const int cl_m = i / kTaps;
    s.wdw[cl_m][i % kTaps] = cl_m < cm_count ? to_float(__ldg(wdw + static_cast<int64_t>(cm0) * kTaps + i)) : 0.f;
  }
  __syncthreads();
  stamp(clocks, kBwdTablesDone);

  StagedInputDz<Traits>::run(p, s.gemm, s.dz, s.gy_base, cm0, cm_count);
  // Rounded as the unfused op stores dZ (the wgmma GEMM rounds as it stores; fp32 needs none).
  if constexpr (!StagedInputDz<Traits>::kDzRounded && !std::is_same_v<T, float>) {
    for (int i = threadIdx.x; i < BM * BN; i += kThreads)
      s.dz[i / BN][i % BN] = round_like_storage<T>(s.dz[i / BN][i % BN]);
    __syncthreads();
  }
  stamp(clocks, kBwdDzDone);

  // With an intermediate activation, dZ above is the gradient of its output: times act'(Z), with
  // Z (the pre-activation) recomputed from x at each ext pixel. Taps outside the image are
  // skipped, as the other kernels do (an infinite weight there contributes nothing).
  if (f.activation != Activation::kNone) {
    for (int i = threadIdx.x; i < ext_count * cm_count; i += kThreads) {
      const int e = i / cm_count, cl_m = i % cm_count;
      const int oy = t.ey0 + e / ext_w, ox = t.ex0 + e % ext_w;
      const int64_t xc = t.n * f.x_stride[0] + static_cast<int64_t>(c0 + cl_m / f.M) * f.x_stride[1];
      float z = 0.f;
#pragma unroll
      for (int ky = 0; ky < 3; ++ky) {
        const int iy = oy * f.sh - f.pt + ky * f.dh;
#pragma unroll
        for (int kx = 0; kx < 3; ++kx) {
          const int ix = ox * f.sw - f.pl + kx * f.dw;
          if (iy < 0 || iy >= f.H || ix < 0 || ix >= f.W) continue;
          z = fmaf(to_float(__ldg(x + xc + static_cast<int64_t>(iy) * f.x_stride[2] +
                                  static_cast<int64_t>(ix) * f.x_stride[3])),
                   s.wdw[cl_m][ky * 3 + kx], z);
        }
      }
      s.dz[e][cl_m] = round_like_storage<T>(s.dz[e][cl_m] * activation_grad(f.activation, round_like_storage<T>(z)));
    }
    __syncthreads();
  }
  stamp(clocks, kBwdActivationDone);

  // grad_x of the tile's own pixels: thread (part, channel) takes one input channel of pixels part,
  // part + parts, ... (neighbouring threads on neighbouring channels: contiguous in channels_last),
  // so it finds its pixel by stepping, not by dividing each item's index; the ext row / column of
  // each tap found once per pixel, without a division where the stride is 1.
  if (p.grad_x != nullptr) {
    T* __restrict__ gx = static_cast<T*>(p.grad_x);
    const int tw = t.ix1 - t.ix0, pixels = (t.iy1 - t.iy0) * tw;
    const int parts = kThreads / c_count;  // c_count <= BN <= kThreads
    const int part = threadIdx.x / c_count, cl = threadIdx.x % c_count;
    if (part < parts && unit_stride_windows_apply(f)) {  // sepconv_bwd_input_windows.cuh
      float w[kTaps];
#pragma unroll
      for (int tap = 0; tap < kTaps; ++tap) w[tap] = s.wdw[cl][tap];
      grad_x_unit_stride<T, Tile::kLdC>(f, t, s.dz, w, gx,
                                        t.n * p.gx_stride[0] + static_cast<int64_t>(c0 + cl) * p.gx_stride[1],
                                        p.gx_stride[2], p.gx_stride[3], cl, part, parts);
    } else if (part < parts) {
      int qy = part / tw, qx = part % tw;  // pixel q's place in the tile
      const int64_t gx_channel = t.n * p.gx_stride[0] + static_cast<int64_t>(c0 + cl) * p.gx_stride[1];
#pragma unroll 1
      for (int q = part; q < pixels; q += parts) {
        const int iy = t.iy0 + qy, ix = t.ix0 + qx;
        int ext_row[3], ext_col[3];  // -1: that tap of no output reads this pixel
#pragma unroll
        for (int k = 0; k < 3; ++k) {
          const int oy =
              f.sh == 1 ? stride1_output_of_tap(iy, k, f.pt, f.dh, f.Ho) : output_of_tap(iy, k, f.sh, f.pt, f.dh, f.Ho);
          const int ox =
              f.sw == 1 ? stride1_output_of_tap(ix, k, f.pl, f.dw, f.Wo) : output_of_tap(ix, k, f.sw, f.pl, f.dw, f.Wo);
          ext_row[k] = oy < 0 ? -1 : oy - t.ey0;
          ext_col[k] = ox < 0 ? -1 : ox - t.ex0;
        }
        float acc = 0.f;
#pragma unroll
        for (int ky = 0; ky < 3; ++ky) {
#pragma unroll
          for (int kx = 0; kx < 3; ++kx) {
            if (ext_row[ky] < 0 || ext_col[kx] < 0) continue;
            const int e = ext_row[ky] * ext_w + ext_col[kx];
            for (int m = 0; m < f.M; ++m) acc = fmaf(s.wdw[cl * f.M + m][ky * 3 + kx], s.dz[e][cl * f.M + m], acc);
          }
        }
        gx[gx_channel + static_cast<int64_t>(iy) * p.gx_stride[2] + static_cast<int64_t>(ix) * p.gx_stride[3]] =
            from_float<T>(acc);
        for (qx += parts; qx >= tw; qx -= tw) ++qy;
      }
    }
  }
  if (clocks != nullptr) __syncthreads();
  stamp(clocks, kBwdGradXDone);

  // grad_dw partial sums over the output pixels this tile owns: thread (part, channel) sums the
  // nine taps of x * dZ over ext pixels part, part + kParts, ...; then the parts in order. Four of
  // its pixels at a time, their 36 loads issued before the FMAs (with 256 channels a CTA, one
  // thread walks all 128 ext pixels: a load's latency per pixel would set the pace); the sums
  // still go pixel by pixel in that order.
  if (p.grad_dw != nullptr) {
    constexpr int kBatch = 4;
    const int part = threadIdx.x / BN, cl_m = threadIdx.x % BN;
    float acc[kTaps];
#pragma unroll
    for (int tap = 0; tap < kTaps; ++tap) acc[tap] = 0.f;
    if (cl_m < cm_count && unit_stride_windows_apply(f)) {  // sepconv_bwd_input_windows.cuh
      grad_dw_unit_stride<T, Tile::kLdC>(f, t, s.dz, s.own_row, s.own_col,
                                         x + t.n * f.x_stride[0] + static_cast<int64_t>(c0 + cl_m) * f.x_stride[1],
                                         cl_m, part, kParts, acc);
    } else if (cl_m < cm_count) {
      const int64_t xc = t.n * f.x_stride[0] + static_cast<int64_t>(c0 + cl_m / f.M) * f.x_stride[1];
#pragma unroll 1
      for (int e0 = part; e0 < ext_count; e0 += kBatch * kParts) {
        T xv[kBatch][kTaps];
        float dz[kBatch];
        int iy0[kBatch], ix0[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
          const int e = e0 + b * kParts;
          const int ey = e / ext_w, ex = e % ext_w;
          const bool owned = e < ext_count && s.own_row[ey] && s.own_col[ex];
          dz[b] = owned ? s.dz[e][cl_m] : 0.f;
          // An unowned pixel: every tap outside (its row below any image row), so nothing is added.
          iy0[b] = owned ? (t.ey0 + ey) * f.sh - f.pt : -(3 * f.dh + 1);
          ix0[b] = (t.ex0 + ex) * f.sw - f.pl;
#pragma unroll
          for (int tap = 0; tap < kTaps; ++tap) {
            const int iy = iy0[b] + (tap / 3) * f.dh, ix = ix0[b] + (tap % 3) * f.dw;
            const bool inside = iy >= 0 && iy < f.H && ix >= 0 && ix < f.W;
            xv[b][tap] = __ldg(
                x + (inside ? xc + static_cast<int64_t>(iy) * f.x_stride[2] + static_cast<int64_t>(ix) * f.x_stride[3]
                            : 0));
          }
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
#pragma unroll
          for (int tap = 0; tap < kTaps; ++tap) {
            const int iy = iy0[b] + (tap / 3) * f.dh, ix = ix0[b] + (tap % 3) * f.dw;
            const bool inside = iy >= 0 && iy < f.H && ix >= 0 && ix < f.W;
            if (inside) acc[tap] = fmaf(to_float(xv[b][tap]), dz[b], acc[tap]);  // outside: nothing, even for inf dZ
          }
        }
      }
    }
#pragma unroll
    for (int tap = 0; tap < kTaps; ++tap) s.dw_part[part][cl_m][tap] = acc[tap];
    __syncthreads();
    float* __restrict__ out = p.workspace + static_cast<int64_t>(blockIdx.x) * f.Cmid * kTaps;
    for (int i = threadIdx.x; i < cm_count * kTaps; i += kThreads) {
      const int c = i / kTaps, tap = i % kTaps;
      float sum = 0.f;
#pragma unroll
      for (int q = 0; q < kParts; ++q) sum += s.dw_part[q][c][tap];
      out[static_cast<int64_t>(cm0) * kTaps + i] = sum;
    }
  }
  if (clocks != nullptr) __syncthreads();
  stamp(clocks, kBwdGradDwDone);
  stamp_end(clocks);
}

}  // namespace xsep
