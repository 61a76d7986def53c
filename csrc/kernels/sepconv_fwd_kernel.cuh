// The fused forward: y = pointwise(depthwise(x)), the depthwise result living only in shared memory.
//
// The pointwise part is a GEMM over all output pixels of the batch: Y[p, co] = sum_k Z[p, k] W[co, k].
// A CTA owns a tile of BM pixels x BN output channels. For each chunk of BK depthwise channels it
//   1. computes Z[BM x BK] (the depthwise conv of its pixels, halo read from x, zero padding,
//      any stride / dilation / depth multiplier) in fp32 on CUDA cores, rounded to the MMA input
//      type, into shared memory (then the intermediate activation, if any, in place);
//   2. loads the matching W[BN x BK] chunk of the pointwise weight;
//   3. accumulates Z . W^T on tensor cores (WMMA: fp16 / bf16, or TF32 for float32) or, for exact
//      float32, with FFMA.
// The epilogue stages the fp32 accumulators in shared memory, adds the bias and writes each
// output element once, coalesced for the output's memory format.
//
// This is the fallback for intermediates too wide for shared memory; the resident kernel
// (sepconv_fwd_resident_kernel.cuh) computes each depthwise value once and runs everything else.
// sepconv_fwd_launch.cuh chooses.
#pragma once

#include <cstdint>
#include <cstdio>
#include <type_traits>

#include "element_types.cuh"
#include "mma_tile.cuh"
#include "sepconv_fwd_epilogue.cuh"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_params.h"

namespace xsep {

// ---- compile-time configuration -------------------------------------------------------------

template <typename T_, Math kMath_, bool kChannelsLast_, int kKH_, int kKW_>
struct FwdTraits : GemmTile<T_, /*BM=*/64, /*BN=*/128, /*BK=*/32, /*kWarpsM=*/2, /*kWarpsN=*/4> {
  // BM output pixels x BN output channels per CTA, BK depthwise channels per chunk.
  using T = T_;  // x, weights, y
  static constexpr Math kMath = kMath_;
  static constexpr bool kChannelsLast = kChannelsLast_;
  static constexpr int kKH = kKH_;  // 0: kernel size known at run time only
  static constexpr int kKW = kKW_;
  // Depthwise elements in flight per thread: two for 16-bit types; fp32 operands (TF32 or FFMA)
  // take twice the registers, which leaves room for one under the 128-register cap.
  static constexpr int kDepthwiseUnroll = std::is_same_v<T_, float> ? 1 : 2;
  static_assert(FwdTraits::kThreads % FwdTraits::BK == 0 && FwdTraits::kThreads % FwdTraits::BM == 0,
                "thread mappings below assume this");
};

template <class Traits>
struct FwdSharedStorage {
  using Operand = typename Traits::Operand;
  struct Operands {
    Operand z[Traits::BM][Traits::kLdAB];  // A: depthwise result, row = pixel
    Operand w[Traits::BN][Traits::kLdAB];  // B^T: pointwise weight, row = output channel
  };
  union {
    Operands ops;
    float c[Traits::BM][Traits::kLdC];  // accumulators, staged for the epilogue
  };
  FwdPixelTable<Traits::BM> px;  // per pixel of the tile: where its receptive field starts, where it goes
};

// ---- the three phases ------------------------------------------------------------------------

// Z[m][k] = sum over taps of x * w_dw, for the chunk of depthwise channels starting at k0.
template <class Traits>
__device__ __forceinline__ void depthwise_chunk(const SepConvParams& p, FwdSharedStorage<Traits>& s, int k0) {
  using T = typename Traits::T;
  constexpr int BM = Traits::BM, BK = Traits::BK, kThreads = Traits::kThreads;
  const int kh = Traits::kKH > 0 ? Traits::kKH : p.kh;
  const int kw = Traits::kKW > 0 ? Traits::kKW : p.kw;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ wdw = static_cast<const T*>(p.dw_weight);
  // channels_last: neighbouring threads take neighbouring channels (contiguous in x);
  // NCHW: neighbouring threads take neighbouring pixels (contiguous along a row of x).
  // A few elements in flight per thread: enough loads to hide latency, few enough registers to
  // leave room for the accumulators.
  constexpr int kUnroll = Traits::kDepthwiseUnroll;
#pragma unroll kUnroll
  for (int i = 0; i < BM * BK / kThreads; ++i) {
    const int idx = threadIdx.x + i * kThreads;
    const int m = Traits::kChannelsLast ? idx / BK : idx % BM;
    const int k = Traits::kChannelsLast ? idx % BK : idx / BM;
    const int cm = k0 + k;
    float acc = 0.f;
    if (cm < p.Cmid && s.px.y_base[m] >= 0) {
      const int64_t xc = s.px.x_base[m] + static_cast<int64_t>(cm / p.M) * p.x_stride[1];
      const T* __restrict__ wc = wdw + static_cast<int64_t>(cm) * kh * kw;
      auto tap = [&](int ky, int kx) {
        const int iy = s.px.iy0[m] + ky * p.dh, ix = s.px.ix0[m] + kx * p.dw;
        if (iy < 0 || iy >= p.H || ix < 0 || ix >= p.W) return;
        const int64_t off =
            xc + static_cast<int64_t>(ky) * p.dh * p.x_stride[2] + static_cast<int64_t>(kx) * p.dw * p.x_stride[3];
        acc = fmaf(to_float(__ldg(x + off)), to_float(__ldg(wc + ky * kw + kx)), acc);
      };
      if constexpr (Traits::kKH > 0 && Traits::kKW > 0) {  // the specialised sizes: fully unrolled
#pragma unroll
        for (int ky = 0; ky < Traits::kKH; ++ky)
#pragma unroll
          for (int kx = 0; kx < Traits::kKW; ++kx) tap(ky, kx);
      } else {
#pragma unroll 1
        for (int ky = 0; ky < kh; ++ky)
#pragma unroll 1
          for (int kx = 0; kx < kw; ++kx) tap(ky, kx);
      }
    }
    s.ops.z[m][k] = from_float<typename Traits::Operand>(acc);
  }
}

// The intermediate activation over the chunk's Z in shared memory: on Z as the unfused op stores
// it (rounded to the input dtype, as the operand already is), rounded again. A pass of its own,
// after the depthwise one, so the depthwise loop keeps its registers.
template <class Traits>
__device__ __forceinline__ void activate_chunk(const SepConvParams& p, FwdSharedStorage<Traits>& s) {
  using Operand = typename Traits::Operand;
#pragma unroll 1
  for (int idx = threadIdx.x; idx < Traits::BM * Traits::BK; idx += Traits::kThreads) {
    Operand& z = s.ops.z[idx / Traits::BK][idx % Traits::BK];
    z = from_float<Operand>(activate(p.activation, to_float(z)));
  }
}

// W[n][k] = pw_weight[co0 + n, k0 + k], zero outside the matrix.
template <class Traits>
__device__ __forceinline__ void load_pointwise_chunk(const SepConvParams& p, FwdSharedStorage<Traits>& s, int co0,
                                                     int k0) {
  using T = typename Traits::T;
  constexpr int BN = Traits::BN, BK = Traits::BK, kThreads = Traits::kThreads;
  const T* __restrict__ wpw = static_cast<const T*>(p.pw_weight);
#pragma unroll
  for (int i = 0; i < BN * BK / kThreads; ++i) {
    const int idx = threadIdx.x + i * kThreads;
    const int n = idx / BK, k = idx % BK;  // neighbouring threads read along a row of W
    const int co = co0 + n, cm = k0 + k;
    const T v = (co < p.Cout && cm < p.Cmid) ? __ldg(wpw + static_cast<int64_t>(co) * p.Cmid + cm) : from_float<T>(0.f);
    s.ops.w[n][k] = static_cast<typename Traits::Operand>(v);
  }
}

// ---- the kernel ---------------------------------------------------------------------------------

// Two CTAs per SM (128 registers); one for float32, whose operands take twice the registers.
template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, std::is_same_v<typename Traits::T, float> ? 1 : 2)
    sepconv_fwd_kernel(const SepConvParams p) {
  constexpr int BM = Traits::BM, BN = Traits::BN, BK = Traits::BK;
  __shared__ __align__(128) FwdSharedStorage<Traits> s;

  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int co0 = blockIdx.y * BN;

  s.px.fill(p, p0);
  __syncthreads();

  BlockMma<Traits, Traits::kMath> mma;
  for (int k0 = 0; k0 < p.Cmid; k0 += BK) {
    depthwise_chunk<Traits>(p, s, k0);
    load_pointwise_chunk<Traits>(p, s, co0, k0);
    if (p.activation != Activation::kNone) {
      __syncthreads();  // Z of this chunk is complete
      activate_chunk<Traits>(p, s);
    }
    __syncthreads();  // Z and W of this chunk are complete
    mma.step(s.ops.z, s.ops.w);
    __syncthreads();  // everyone is done reading them before the next chunk overwrites them
  }
  mma.stage(s.c);  // s.c aliases the operands: safe after the barrier above
  __syncthreads();

  store_output_tile<Traits>(p, s.px.y_base, &s.c[0][0], co0);
}

}  // namespace xsep
