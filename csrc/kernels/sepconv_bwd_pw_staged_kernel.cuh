// The pw-gradient kernel with staged operands, EXPERIMENTAL: written without a GPU, run only when
// XSEP_BWD_KERNEL=staged asks for it (tests/test_cuda_backward.py forces it), to be measured
// against sepconv_bwd_pw_kernel (sepconv_bwd_kernel.cuh) before it becomes the default.
//
// Same grid, split-K plan, workspace and results (grad_pw and grad_bias partial sums per split of
// the pixels); what changes is how each 32-pixel chunk of the GEMM grad_pw = dY^T . Z is fed:
//   * dY [pixel][co] is copied with 16-byte cp.async as it lies in channels_last memory (read as a
//     row-major B), one chunk ahead: in flight while Z of the next chunk is computed and the tensor
//     cores work on this one. The first kernel loads it element by element, synchronously.
//   * Z (recomputed from x) is computed by each thread for one channel pair of four neighbouring
//     pixels (the forward's QuadDepthwise items): on an output row they share a 3 x 6 window of x,
//     whose loads for the next chunk are issued before this chunk's barrier and MMA; stored as
//     [pixel][cm] (a column-major A). The first kernel computes one value per thread per pass,
//     nine scalar loads each.
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
#include "mma_tile.cuh"
#include "sepconv_bwd.h"
#include "sepconv_bwd_tiles.cuh"
#include "sepconv_bwd_z_pairs.cuh"

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

// Two CTAs per SM (128 registers) for 16-bit types; one for fp32 (TF32 fragments, fp32 operands).
template <class Traits>
__global__ void __launch_bounds__(Traits::Tile::kThreads, sizeof(typename Traits::T) == 2 ? 2 : 1)
    sepconv_bwd_pw_staged_kernel(const SepConvBwdParams p) {
  using T = typename Traits::T;
  using Tile = typename Traits::Tile;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, kThreads = Tile::kThreads;
  constexpr int kTaps = Traits::kTaps, kVec = Traits::kVec;
  static_assert(BK * (BN / kVec) % kThreads == 0 && BN <= kThreads, "whole dY copies per thread; bias threads");
  XSEP_DYNAMIC_SHARED(smem);  // sizeof(StagedPwShared<Traits>) bytes
  StagedPwShared<Traits>& s = *reinterpret_cast<StagedPwShared<Traits>*>(smem);
  const SepConvParams& f = p.fwd;

  const int cm0 = blockIdx.x * BM, co0 = blockIdx.y * BN;
  int64_t begin, end;
  pw_split_pixels(p, blockIdx.z, &begin, &end);
  const bool want_pw = p.grad_pw != nullptr;
  const bool want_bias = p.grad_bias != nullptr && blockIdx.x == 0;
  const T* __restrict__ gy = static_cast<const T*>(p.grad_y);
  const PixelLocator at(f);  // pixel q's image, output row and column
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
      int64_t offset = 0;
      if (valid) {
        int64_t img;
        int oy, ox;
        at.locate(q, &img, &oy, &ox);
        offset = img * f.y_stride[0] + static_cast<int64_t>(oy) * f.y_stride[2] +
                 static_cast<int64_t>(ox) * f.y_stride[3] + co0 + n;
      }
      cp_async_16(gemm.dy_at(buf, k, n), gy + offset, valid);
    }
  };

  // Z in items of one channel pair of four neighbouring pixels (sepconv_bwd_z_pairs.cuh): thread t
  // takes pair t % kPairs of every chunk and quad t / kPairs; the window of the next chunk's quad
  // is loaded before this chunk's barrier and MMA, so those loads are in flight while they run.
  constexpr int kPairs = BM / 2;
  static_assert(kPairs * (BK / kQuadPixels) == kThreads, "one (pair, quad) item per thread per chunk");
  const int pair = threadIdx.x % kPairs, quad_pixel = threadIdx.x / kPairs * kQuadPixels;
  float wq[kTaps][2];
#pragma unroll
  for (int t = 0; t < kTaps; ++t) wq[t][0] = s.wdw[t][2 * pair], wq[t][1] = s.wdw[t][2 * pair + 1];
  const ZPairItems<T> z_items(f, cm0 + 2 * pair, wq);

  // Z of the thread's quad of chunk q0 into slot `buf`, from its prefetched window or pixel by pixel.
  auto compute_z = [&](int64_t q0, int buf, const QuadWindow<T>& w, const typename ZPairItems<T>::Window& v) {
    float out[kQuadPixels][2];
    z_items.compute(q0 + quad_pixel, end, w, v, out);
#pragma unroll
    for (int r = 0; r < kQuadPixels; ++r)
      store_shared(gemm.z_at(buf, quad_pixel + r, 2 * pair), z_items.bits(out[r]).u);
  };

  float bias_acc = 0.f;  // thread n < BN: grad_bias[co0 + n] over this split, in pixel order
  // Chunk i in slot i % kStages: Z_i written and dY_i landed, one barrier, then dY_{i+1} issued
  // into the next slot (last read by the MMA of chunk i + 1 - kStages, which every thread finished
  // before this barrier) and chunk i multiplied. Z_{i+1} goes to the next slot after the barrier.
  QuadWindow<T> window{static_cast<const T*>(f.x), 0u, false};
  typename ZPairItems<T>::Window window_pixels;
  if (want_pw && begin < end) z_items.prefetch(begin + quad_pixel, end, window, window_pixels);
  copy_dy(begin, 0);
  cp_async_commit();
  int buf = 0;
#pragma unroll 1
  for (int64_t q0 = begin; q0 < end; q0 += BK, buf = (buf + 1) % kStages) {
    if (want_pw) {
      compute_z(q0, buf, window, window_pixels);
      if (q0 + BK < end)
        z_items.prefetch(q0 + BK + quad_pixel, end, window, window_pixels);  // in flight across the barrier and MMA
    }
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
