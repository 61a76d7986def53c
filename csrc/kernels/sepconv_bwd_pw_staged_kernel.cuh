// The pw-gradient kernel with staged operands, EXPERIMENTAL: written without a GPU, run only when
// XSEP_BWD_KERNEL=staged asks for it (tests/test_cuda_backward.py forces it), to be measured
// against sepconv_bwd_pw_kernel (sepconv_bwd_kernel.cuh) before it becomes the default.
//
// Same grid, split-K plan, workspace and results (grad_pw and grad_bias partial sums per split of
// the pixels); what changes is how each 32-pixel chunk of the GEMM grad_pw = dY^T . Z is fed:
//   * dY [pixel][co] is copied with 16-byte cp.async as it lies in channels_last memory (read as a
//     row-major B), one chunk ahead: in flight while Z of the next chunk is computed and the tensor
//     cores work on this one. The first kernel loads it element by element, synchronously.
//   * Z (recomputed from x) is computed eight channels per thread from 16-byte loads of x (all
//     nine taps' loads issued before the arithmetic), weights from shared memory, and stored with one
//     16-byte store as [pixel][cm] (a column-major A). The first kernel computes one value per
//     thread per pass, nine scalar loads each.
//   * One barrier per chunk instead of three (the pixel table is gone: each thread finds its
//     pixel's coordinates itself).
// Taken only where it applies (staged_pw_applies): fp16/bf16, or fp32 on TF32 tensor cores; 3x3
// kernels (any stride, dilation, padding); depth multiplier 1; channels_last x and grad_y with
// 16-byte aligned pixels; C and Cout multiples of a 16-byte vector; sm_80+. Shared memory is
// dynamic (fp32 operands need more than the 48 KB of static).
#pragma once

#include <cstdint>
#include <type_traits>

#include "cp_async.cuh"
#include "element_types.cuh"
#include "fast_divmod.h"
#include "mma_tile.cuh"
#include "sepconv_bwd.h"
#include "sepconv_bwd_tiles.cuh"

namespace xsep {

// T: __half or __nv_bfloat16 (WMMA), or float (TF32 WMMA; exact fp32 takes the first kernel).
// kWgmma: the GEMM on Hopper's warpgroup MMA instead (16-bit types; sepconv_bwd_pw_wgmma.cuh).
template <typename T_, bool kWgmma_ = false>
struct StagedPwTraits {
  using T = T_;
  static constexpr bool kWgmma = kWgmma_;
  // M = depthwise channels, N = output channels, K = pixels in chunks of 32; 8 warps of 32 x 32.
  using Tile = GemmTile<T_, 64, 128, kBwdPwPixels, 2, 4>;
  static constexpr int kTaps = 9;                // 3x3
  static constexpr int kVec = 16 / sizeof(T_);   // elements per 16-byte load or copy
  static constexpr int kLdZ = Tile::BM + kVec;   // Z chunk [pixel][cm], 16-byte pad
  static constexpr int kLdDy = Tile::BN + kVec;  // dY chunk [pixel][co], 16-byte pad
};

// The GEMM grad_pw[cm][co] += sum over the chunk's pixels of Z[pixel][cm] * dY[pixel][co], one
// chunk of BK pixels per step, its operands in ring slots. This one: WMMA, two slots (Z column-
// major, dY row-major, padded rows). `Storage` is aliased by the accumulator staging.
template <class Traits>
struct StagedPwGemm {
  using Tile = typename Traits::Tile;
  using T = typename Traits::T;
  static constexpr int kStages = 2;
  struct Stage {
    T z[Tile::BK][Traits::kLdZ];    // A (column-major): Z recomputed, [pixel][cm]
    T dy[Tile::BK][Traits::kLdDy];  // B (row-major): grad_y as it lies, [pixel][co]
  };
  struct Storage {
    Stage stage[kStages];
  };
  Storage& st;
  TensorCoreMma<Tile, /*kAColMajor=*/true, /*kBRowMajor=*/true> mma;

  __device__ __forceinline__ explicit StagedPwGemm(Storage& storage) : st(storage) {}
  // Where Z[pixel k][cm .. cm + kVec) and dY[pixel k][co .. co + kVec) of a slot go (16 bytes).
  __device__ __forceinline__ T* z_at(int slot, int k, int cm) { return &st.stage[slot].z[k][cm]; }
  __device__ __forceinline__ T* dy_at(int slot, int k, int co) { return &st.stage[slot].dy[k][co]; }
  __device__ __forceinline__ T dy(int slot, int k, int co) const { return st.stage[slot].dy[k][co]; }
  // The chunk in `slot`, after the barrier that completes it. The kernel refills a slot with dY
  // kStages - 1 steps later (after that step's barrier): WMMA has read its operands on return.
  __device__ __forceinline__ void step(int slot) {
    mma.step(&st.stage[slot].z[0][0], Traits::kLdZ, &st.stage[slot].dy[0][0], Traits::kLdDy);
  }
  __device__ __forceinline__ void finish() {}
  __device__ __forceinline__ void stage(float (*c)[Tile::kLdC]) { mma.stage(c); }
};

// Before the barrier that publishes a chunk: wgmma reads shared memory through the async proxy,
// so the wgmma GEMM fences the generic-proxy writes (Z stores, cp.async); WMMA needs nothing.
template <class Traits>
__device__ __forceinline__ void fence_for_gemm() {
  if constexpr (Traits::kWgmma) StagedPwGemm<Traits>::fence();
}

template <class Traits>
struct StagedPwShared {
  using Tile = typename Traits::Tile;
  using T = typename Traits::T;
  union {
    typename StagedPwGemm<Traits>::Storage gemm;
    float c[Tile::BM][Tile::kLdC];  // accumulators [cm][co], staged for the partial write
  };
  float wdw[Traits::kTaps][Tile::BM];  // the CTA's depthwise weights, [tap][cm]
};

// Host side: can the staged pw-gradient kernel take this call? kVec: elements per 16-byte vector of
// the dtype (the math mode is the launcher's check).
inline bool staged_pw_applies(const SepConvBwdParams& p, int major, int kVec) {
  const SepConvParams& f = p.fwd;
  auto aligned_pixels = [kVec](const int64_t* stride, const void* ptr) {
    return stride[1] == 1 && stride[0] % kVec == 0 && stride[2] % kVec == 0 && stride[3] % kVec == 0 &&
           reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
  };
  return major >= 8 && f.kh == 3 && f.kw == 3 && f.M == 1 && f.channels_last && f.C % kVec == 0 && f.Cout % kVec == 0 &&
         aligned_pixels(f.x_stride, f.x) && aligned_pixels(f.y_stride, p.grad_y);
}

// Two CTAs per SM (128 registers) for 16-bit types; one for fp32 (TF32 fragments, fp32 operands).
template <class Traits>
__global__ void __launch_bounds__(Traits::Tile::kThreads, sizeof(typename Traits::T) == 2 ? 2 : 1)
    sepconv_bwd_pw_staged_kernel(const SepConvBwdParams p) {
  using T = typename Traits::T;
  using Tile = typename Traits::Tile;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, kThreads = Tile::kThreads;
  constexpr int kTaps = Traits::kTaps, kVec = Traits::kVec;
  constexpr int kGroups = BM / kVec;  // kVec-channel groups of Z per pixel
  static_assert(kGroups * BK % kThreads == 0, "whole (pixel, kVec channels) items of Z per thread per chunk");
  static_assert(BK * (BN / kVec) % kThreads == 0 && BN <= kThreads, "whole dY copies per thread; bias threads");
  XSEP_DYNAMIC_SHARED(smem);  // sizeof(StagedPwShared<Traits>) bytes
  StagedPwShared<Traits>& s = *reinterpret_cast<StagedPwShared<Traits>*>(smem);
  const SepConvParams& f = p.fwd;

  const int cm0 = blockIdx.x * BM, co0 = blockIdx.y * BN;
  int64_t begin, end;
  pw_split_pixels(p, blockIdx.z, &begin, &end);
  const bool want_pw = p.grad_pw != nullptr;
  const bool want_bias = p.grad_bias != nullptr && blockIdx.x == 0;
  const int64_t hw = static_cast<int64_t>(f.Ho) * f.Wo;
  const T* __restrict__ x = static_cast<const T*>(f.x);
  const T* __restrict__ gy = static_cast<const T*>(p.grad_y);
  // Pixel q's image and output row and column, each step for every pixel a thread touches: by
  // multiply-high (FastDivmod) where every pixel index fits 31 bits, else 64-bit division.
  const bool narrow = static_cast<int64_t>(f.N) * hw <= INT32_MAX;
  const FastDivmod by_hw(narrow ? static_cast<int>(hw) : 1), by_wo(f.Wo);
  auto locate = [&](int64_t q, int64_t* img, int* oy, int* ox) {
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
  };

  for (int i = threadIdx.x; i < kTaps * BM; i += kThreads) {
    const int tap = i / BM, cm = cm0 + i % BM;
    s.wdw[tap][i % BM] =
        cm < f.Cmid ? to_float(__ldg(static_cast<const T*>(f.dw_weight) + static_cast<int64_t>(cm) * kTaps + tap))
                    : 0.f;
  }
  __syncthreads();  // the weights, before the first chunk's Z reads them

  using Gemm = StagedPwGemm<Traits>;
  constexpr int kStages = Gemm::kStages;
  Gemm gemm(s.gemm);

  // dY of pixels q0 .. q0 + BK into slot `buf`; zero past the split and past Cout.
  auto copy_dy = [&](int64_t q0, int buf) {
#pragma unroll
    for (int i = 0; i < BK * (BN / kVec) / kThreads; ++i) {
      const int v = threadIdx.x + i * kThreads;
      const int k = v / (BN / kVec), n = (v % (BN / kVec)) * kVec;
      const int64_t q = q0 + k;
      const bool valid = q < end && co0 + n < f.Cout;
      int64_t at = 0;
      if (valid) {
        int64_t img;
        int oy, ox;
        locate(q, &img, &oy, &ox);
        at = img * f.y_stride[0] + static_cast<int64_t>(oy) * f.y_stride[2] + static_cast<int64_t>(ox) * f.y_stride[3] +
             co0 + n;
      }
      cp_async_16(gemm.dy_at(buf, k, n), gy + at, valid);
    }
  };

  // Z of pixel q0 + k, channels cm0 + kVec g .. + kVec, into slot `buf` (zero past the split and
  // Cmid); item = k * kGroups + g, so neighbouring threads take neighbouring channel groups.
  auto compute_z_item = [&](int64_t q0, int buf, int item) {
    const int g = item % kGroups, k = item / kGroups;
    const int64_t q = q0 + k;
    const int cm = cm0 + g * kVec;
    float acc[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) acc[j] = 0.f;
    if (q < end && cm < f.Cmid) {
      int64_t img;
      int oy, ox;
      locate(q, &img, &oy, &ox);
      const int iy0 = oy * f.sh - f.pt, ix0 = ox * f.sw - f.pl;
      const int64_t xc = img * f.x_stride[0] + cm;  // channel stride 1, M == 1: cm is the channel
      Vec16<T> xv[kTaps];                           // every tap's load issued before the arithmetic
#pragma unroll
      for (int tap = 0; tap < kTaps; ++tap) {
        const int iy = iy0 + (tap / 3) * f.dh, ix = ix0 + (tap % 3) * f.dw;
        const bool inside = iy >= 0 && iy < f.H && ix >= 0 && ix < f.W;
        const int64_t off =
            inside ? xc + static_cast<int64_t>(iy) * f.x_stride[2] + static_cast<int64_t>(ix) * f.x_stride[3] : 0;
        xv[tap].u = __ldg(reinterpret_cast<const uint4*>(x + off));
      }
#pragma unroll
      for (int tap = 0; tap < kTaps; ++tap) {
        const int iy = iy0 + (tap / 3) * f.dh, ix = ix0 + (tap % 3) * f.dw;
        if (iy < 0 || iy >= f.H || ix < 0 || ix >= f.W) continue;  // nothing, even for an infinite weight
        float w[kVec];
#pragma unroll
        for (int j = 0; j < kVec; j += 4) {  // 16-byte shared loads
          const float4 w4 = *reinterpret_cast<const float4*>(&s.wdw[tap][g * kVec + j]);
          w[j] = w4.x, w[j + 1] = w4.y, w[j + 2] = w4.z, w[j + 3] = w4.w;
        }
#pragma unroll
        for (int j = 0; j < kVec; ++j) acc[j] = fmaf(to_float(xv[tap].v[j]), w[j], acc[j]);
      }
      if (f.activation != Activation::kNone) {  // Z rounded as the unfused op stores it, then activated
#pragma unroll
        for (int j = 0; j < kVec; ++j) acc[j] = activate(f.activation, round_like_storage<T>(acc[j]));
      }
    }
    Vec16<T> out;
#pragma unroll
    for (int j = 0; j < kVec; ++j) out.v[j] = from_float<T>(acc[j]);
    store_shared_16(gemm.z_at(buf, k, g * kVec), out.u);
  };
  auto compute_z = [&](int64_t q0, int buf) {
#pragma unroll
    for (int i = 0; i < kGroups * BK / kThreads; ++i) compute_z_item(q0, buf, threadIdx.x + i * kThreads);
  };

  float bias_acc = 0.f;  // thread n < BN: grad_bias[co0 + n] over this split, in pixel order
  // Chunk i in slot i % kStages: Z_i written and dY_i landed, one barrier, then dY_{i+1} issued
  // into the next slot (last read by the MMA of chunk i + 1 - kStages, which every thread finished
  // before this barrier) and chunk i multiplied. Z_{i+1} goes to the next slot after the barrier.
  copy_dy(begin, 0);
  cp_async_commit();
  int buf = 0;
#pragma unroll 1
  for (int64_t q0 = begin; q0 < end; q0 += BK, buf = (buf + 1) % kStages) {
    if (want_pw) compute_z(q0, buf);
    cp_async_wait<0>();
    fence_for_gemm<Traits>();
    __syncthreads();  // Z_i and dY_i complete for everyone; older slots free
    if (q0 + BK < end) copy_dy(q0 + BK, (buf + 1) % kStages);
    cp_async_commit();
    if (want_pw) gemm.step(buf);
    if (want_bias && threadIdx.x < BN) {
#pragma unroll 8
      for (int kk = 0; kk < BK; ++kk) bias_acc += to_float(gemm.dy(buf, kk, threadIdx.x));
    }
  }
  if (want_pw) gemm.finish();
  cp_async_wait<0>();
  __syncthreads();  // every MMA and bias read done before the staging aliases the buffers

  float* __restrict__ ws_pw = p.workspace + p.dw_partials * f.Cmid * kTaps;
  float* __restrict__ ws_bias = ws_pw + static_cast<int64_t>(p.pw_splits) * f.Cout * f.Cmid;
  if (want_pw) {
    gemm.stage(s.c);
    __syncthreads();
    float* __restrict__ part = ws_pw + static_cast<int64_t>(blockIdx.z) * f.Cout * f.Cmid;
    for (int i = threadIdx.x; i < BM * BN; i += kThreads) {
      const int m = i % BM, n = i / BM;  // neighbouring threads along cm: contiguous in grad_pw
      const int cm = cm0 + m, co = co0 + n;
      if (cm < f.Cmid && co < f.Cout) part[static_cast<int64_t>(co) * f.Cmid + cm] = s.c[m][n];
    }
  }
  if (want_bias && threadIdx.x < BN && co0 + static_cast<int>(threadIdx.x) < f.Cout) {
    ws_bias[static_cast<int64_t>(blockIdx.z) * f.Cout + co0 + threadIdx.x] = bias_acc;
  }
}

}  // namespace xsep
