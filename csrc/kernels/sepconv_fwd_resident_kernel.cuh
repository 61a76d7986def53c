// The fused forward for layers whose intermediate rows fit in shared memory (every Xception layer
// in 16-bit types): a CTA owns BM output pixels and *all* output channels, so each depthwise value
// is computed once. (The tiled kernel, sepconv_fwd_kernel.cuh, recomputes the depthwise part for
// every 128 output channels: 6x for a 728-channel layer; it remains for what does not fit here.)
//
//   1. Z[BM x Cmid] = depthwise(x) of the CTA's pixels into shared memory, rounded to the MMA input
//      type (then the intermediate activation, in place). Every tap's load is issued before the
//      FMAs that use it (out-of-image taps read a valid address and are masked), several elements
//      per thread, so the loads overlap instead of waiting one by one.
//   2. For each tile of BN output channels: Y = Z . W^T over Cmid in chunks of BK, the weight
//      chunks copied (cp.async) kStages - 1 steps ahead of the tensor cores (or FFMA), one barrier
//      per step. Where the pixel tiles alone leave SMs idle (deep layers at small batches), the
//      output channels are split across gridDim.y CTAs, each recomputing the same Z.
//   3. Epilogue per tile: accumulators staged in shared memory, bias, one rounding, coalesced writes.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cp_async.cuh"
#include "element_types.cuh"
#include "mma_tile.cuh"
#include "sepconv_fwd_epilogue.cuh"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_params.h"

namespace xsep {

// BM pixels (32 per warp row: the launcher uses 32, 4 warps); BN = 128 output channels; BK = 32
// channels per step; kStages weight chunks in shared memory (2: the copy of chunk k+1 overlaps the
// MMA of chunk k; 3: two chunks ahead, for 50% more shared memory).
template <typename T_, Math kMath_, bool kChannelsLast_, int kKH_, int kKW_, int BM_, int kStages_ = 2>
struct ResidentFwdTraits : GemmTile<T_, BM_, /*BN=*/128, /*BK=*/32, /*kWarpsM=*/BM_ / 32, /*kWarpsN=*/4> {
  using T = T_;
  static constexpr Math kMath = kMath_;
  static constexpr int kStages = kStages_;
  static_assert(kStages_ >= 2, "one chunk in flight at least");
  static constexpr bool kChannelsLast = kChannelsLast_;
  static constexpr int kKH = kKH_;  // 0: kernel size known at run time only
  static constexpr int kKW = kKW_;
  // Depthwise elements per thread whose loads are in flight together (x taps for 3x3 at 2:
  // 18 loads, and as many weights); fp32 values take twice the registers.
  static constexpr int kBatch = std::is_same_v<T_, float> ? 1 : 2;
  // 512 threads per SM at least (two CTAs of 64 pixels, four of 32): at most 128 registers; TF32
  // with 32 pixels needs a few more (three CTAs of 32: 170).
  static constexpr int kMinBlocks =
      std::is_same_v<T_, float> && kMath_ == Math::kTensorCore && BM_ == 32 ? 3 : 512 / (BM_ / 32 * 4 * 32);
};

// Shared memory, dynamic: Z (BM rows of ldz operands), then the kStages weight-chunk buffers, which
// the fp32 accumulator staging aliases (it is used between the last MMA step of a tile and the
// next tile's first weight chunk).
template <class Traits>
struct ResidentFwdLayout {
  using Operand = typename Traits::Operand;
  static constexpr int BM = Traits::BM, BN = Traits::BN, BK = Traits::BK;
  static __host__ __device__ int kpad(int cmid) { return (cmid + BK - 1) / BK * BK; }
  static __host__ __device__ int ldz(int cmid) { return kpad(cmid) + Traits::kPad; }
  static __host__ __device__ size_t z_bytes(int cmid) {
    return (static_cast<size_t>(BM) * ldz(cmid) * sizeof(Operand) + 127) / 128 * 128;
  }
  static constexpr size_t kWBytes = Traits::kStages * static_cast<size_t>(BN) * Traits::kLdAB * sizeof(Operand);
  static constexpr size_t kCBytes = static_cast<size_t>(BM) * Traits::kLdC * sizeof(float);
  static __host__ __device__ size_t bytes(int cmid) { return z_bytes(cmid) + (kWBytes > kCBytes ? kWBytes : kCBytes); }
};

// Can resident_depthwise_vec take this call? channels_last x with 16-byte aligned pixels (unit
// channel stride, the other strides and C multiples of a 16-byte vector), multiplier 1, 16-byte
// aligned depthwise weights, a kernel size fixed at compile time. Uniform over the grid.
template <class Traits>
__host__ __device__ __forceinline__ bool depthwise_vec_applies(const SepConvParams& p) {
  constexpr int kVec = 16 / sizeof(typename Traits::T);
  static_assert(Traits::kChannelsLast && Traits::kKH > 0 && Traits::kKW > 0, "channels_last, fixed kernel size");
  return p.M == 1 && p.C % kVec == 0 && p.x_stride[1] == 1 && p.x_stride[0] % kVec == 0 && p.x_stride[2] % kVec == 0 &&
         p.x_stride[3] % kVec == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(p.dw_weight) % 16 == 0;
}

// resident_depthwise where depthwise_vec_applies: a thread computes kVec neighbouring channels of
// one pixel (neighbouring threads: neighbouring channel groups, so loads and stores coalesce) from
// one 16-byte load of x per tap and the group's weights, [channel][tap] contiguous in memory, in
// taps 16-byte loads; every load of the item is issued before its FMAs. Eight (16-bit) or four
// (fp32) values per round trip instead of kBatch, with the scalar path's tap order and rounding:
// the same values (a skipped out-of-image tap can leave a -0 that the scalar path makes +0).
//
// `emit(m, k0, out)` stores the kVec values of pixel m, channels k0.. (the resident kernel: a row of
// Z; the wgmma kernel: its swizzled Z layout).
//
// Order: chunks of `chunk_groups` channel groups (kpad a multiple of them), one after the other,
// every pixel within a chunk. The resident kernel passes all groups (one chunk: a pass of the CTA
// covers a few pixels' every channel); the wgmma kernel its 64-byte K chunks, so a chunk's x
// footprint (its channels of the tile's input rows) stays in L1, which its large shared memory
// leaves small, and each x element comes from L2 about once per chunk instead of once per tap.
//
// `px`: the tile's FwdPixelTable, or the wgmma kernel's FwdTapTable (tap_inside either way).
template <class Traits, class PixelTable, class Emit>
__device__ __forceinline__ void resident_depthwise_vec(const SepConvParams& p, const PixelTable& px, int kpad,
                                                       int chunk_groups, Emit&& emit) {
  using T = typename Traits::T;
  using Operand = typename Traits::Operand;
  constexpr int BM = Traits::BM, kThreads = Traits::kThreads;
  constexpr int kVec = 16 / sizeof(T), kTaps = Traits::kKH * Traits::kKW;
  static_assert(sizeof(Operand) == sizeof(T), "Z is stored as loaded");
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const uint4* __restrict__ wdw = static_cast<const uint4*>(p.dw_weight);
  const int groups = kpad / kVec;  // Cmid % kVec == 0 (C % kVec, M == 1): a group is wholly in or out
#pragma unroll 1
  for (int item = threadIdx.x; item < BM * groups; item += kThreads) {
    const int chunk = item / (BM * chunk_groups), in_chunk = item % (BM * chunk_groups);
    const int m = in_chunk / chunk_groups, g = chunk * chunk_groups + in_chunk % chunk_groups, k0 = g * kVec;
    float acc[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) acc[j] = 0.f;
    if (k0 < p.Cmid && px.reads_input(m)) {
      Vec16<T> xv[kTaps], wv[kTaps];  // wv: the group's kVec x kTaps weights, [channel][tap]
#pragma unroll
      for (int i = 0; i < kTaps; ++i) wv[i].u = __ldg(wdw + static_cast<int64_t>(g) * kTaps + i);
#pragma unroll
      for (int t = 0; t < kTaps; ++t) {
        const bool inside = px.tap_inside(p, m, t / Traits::kKW, t % Traits::kKW);
        const int64_t off = px.x_base[m] + k0 + static_cast<int64_t>((t / Traits::kKW) * p.dh) * p.x_stride[2] +
                            static_cast<int64_t>((t % Traits::kKW) * p.dw) * p.x_stride[3];
        xv[t].u = __ldg(reinterpret_cast<const uint4*>(x + (inside ? off : 0)));
      }
#pragma unroll
      for (int t = 0; t < kTaps; ++t) {
        if (!px.tap_inside(p, m, t / Traits::kKW, t % Traits::kKW)) continue;  // nothing, even for an infinite weight
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          const int w = j * kTaps + t;  // weight (channel j, tap t) of the group
          acc[j] = fmaf(to_float(xv[t].v[j]), to_float(wv[w / kVec].v[w % kVec]), acc[j]);
        }
      }
    }
    Vec16<Operand> out;
#pragma unroll
    for (int j = 0; j < kVec; ++j) out.v[j] = from_float<Operand>(acc[j]);
    emit(m, k0, out);
  }
}

// Z[m][k] for every pixel m of the tile and depthwise channel k < kpad (zero past Cmid and past
// the last pixel).
template <class Traits>
__device__ __forceinline__ void resident_depthwise(const SepConvParams& p, const FwdPixelTable<Traits::BM>& px,
                                                   typename Traits::Operand* z, int ldz, int kpad) {
  using T = typename Traits::T;
  using Operand = typename Traits::Operand;
  constexpr int BM = Traits::BM, kThreads = Traits::kThreads, kBatch = Traits::kBatch;
  constexpr bool kFixed = Traits::kKH > 0 && Traits::kKW > 0;
  const int kh = kFixed ? Traits::kKH : p.kh;
  const int kw = kFixed ? Traits::kKW : p.kw;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ wdw = static_cast<const T*>(p.dw_weight);
  const int total = BM * kpad;
  // channels_last: neighbouring threads take neighbouring channels (contiguous in x);
  // NCHW: neighbouring threads take neighbouring pixels (contiguous along a row of x).
  auto element = [&](int idx, int& m, int& k) {
    m = Traits::kChannelsLast ? idx / kpad : idx % BM;
    k = Traits::kChannelsLast ? idx % kpad : idx / BM;
  };
#pragma unroll 1
  for (int base = threadIdx.x; base < total; base += kThreads * kBatch) {
    float acc[kBatch];
    if constexpr (kFixed) {
      // All kBatch x taps loads first, then the FMAs.
      T xv[kBatch][Traits::kKH * Traits::kKW];
      T wv[kBatch][Traits::kKH * Traits::kKW];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int raw = base + b * kThreads;
        int m, k;
        element(raw < total ? raw : 0, m, k);  // m, k in range even for the batch's tail
        const bool live = raw < total && k < p.Cmid && px.y_base[m] >= 0;
        const int64_t xc = live ? px.x_base[m] + static_cast<int64_t>(k / p.M) * p.x_stride[1] : 0;
        const T* wc = wdw + (live ? static_cast<int64_t>(k) * kh * kw : 0);
#pragma unroll
        for (int ky = 0; ky < Traits::kKH; ++ky)
#pragma unroll
          for (int kx = 0; kx < Traits::kKW; ++kx) {
            const int iy = px.iy0[m] + ky * p.dh, ix = px.ix0[m] + kx * p.dw;
            const bool inside = live && iy >= 0 && iy < p.H && ix >= 0 && ix < p.W;
            const int64_t off =
                static_cast<int64_t>(ky) * p.dh * p.x_stride[2] + static_cast<int64_t>(kx) * p.dw * p.x_stride[3];
            // Unconditional loads (a tap outside reads x[0], w[0]), masked after: a tap outside the
            // image contributes exactly nothing, also when its weight is not finite.
            const T xl = __ldg(x + (inside ? xc + off : 0));
            const T wl = __ldg(wc + ky * Traits::kKW + kx);
            xv[b][ky * Traits::kKW + kx] = inside ? xl : from_float<T>(0.f);
            wv[b][ky * Traits::kKW + kx] = inside ? wl : from_float<T>(0.f);
          }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        acc[b] = 0.f;
#pragma unroll
        for (int t = 0; t < Traits::kKH * Traits::kKW; ++t)
          acc[b] = fmaf(to_float(xv[b][t]), to_float(wv[b][t]), acc[b]);
      }
    } else {
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int raw = base + b * kThreads;
        acc[b] = 0.f;
        if (raw >= total) continue;
        int m, k;
        element(raw, m, k);
        if (k >= p.Cmid || px.y_base[m] < 0) continue;
        const int64_t xc = px.x_base[m] + static_cast<int64_t>(k / p.M) * p.x_stride[1];
        const T* wc = wdw + static_cast<int64_t>(k) * kh * kw;
#pragma unroll 1
        for (int ky = 0; ky < kh; ++ky) {
          const int iy = px.iy0[m] + ky * p.dh;
          if (iy < 0 || iy >= p.H) continue;
#pragma unroll 1
          for (int kx = 0; kx < kw; ++kx) {
            const int ix = px.ix0[m] + kx * p.dw;
            if (ix < 0 || ix >= p.W) continue;
            const int64_t off =
                static_cast<int64_t>(ky) * p.dh * p.x_stride[2] + static_cast<int64_t>(kx) * p.dw * p.x_stride[3];
            acc[b] = fmaf(to_float(__ldg(x + xc + off)), to_float(__ldg(wc + ky * kw + kx)), acc[b]);
          }
        }
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int idx = base + b * kThreads;
      if (idx >= total) break;
      int m, k;
      element(idx, m, k);
      z[m * ldz + k] = from_float<Operand>(acc[b]);  // fp32 operands: exact; 16-bit: rounded as stored
    }
  }
}

// The intermediate activation over Z in place (its own pass: the depthwise loop keeps its registers).
template <class Traits>
__device__ __forceinline__ void resident_activate(const SepConvParams& p, typename Traits::Operand* z, int ldz,
                                                  int kpad) {
  using Operand = typename Traits::Operand;
#pragma unroll 1
  for (int idx = threadIdx.x; idx < Traits::BM * kpad; idx += Traits::kThreads) {
    Operand& v = z[(idx / kpad) * ldz + idx % kpad];
    v = from_float<Operand>(activate(p.activation, to_float(v)));
  }
}

// One BN x BK chunk of the pointwise weight into shared memory (zero outside the matrix).
// Where every 16-byte piece of a row is whole and aligned (Cmid a multiple of 16 bytes' worth of
// elements, an aligned base: every Xception layer), cp.async copies it without registers, and the
// copy of chunk k+1 overlaps the MMA of chunk k; else a plain load-store, one chunk at a time.
template <class Traits>
struct PointwiseChunks {
  using T = typename Traits::T;
  using Operand = typename Traits::Operand;
  static_assert(sizeof(Operand) == sizeof(T), "the chunk is copied as stored");
  static constexpr int BN = Traits::BN, BK = Traits::BK, kThreads = Traits::kThreads;
  static constexpr int kVec = 16 / sizeof(T);  // elements per 16-byte copy
  static constexpr int kVecsPerRow = BK / kVec;

  __device__ __forceinline__ static bool can_copy_async(const SepConvParams& p) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800) || defined(XSEP_HOST_EMULATION)
    return p.Cmid % kVec == 0 && reinterpret_cast<uintptr_t>(p.pw_weight) % 16 == 0;
#else
    return false;  // cp.async is sm_80+
#endif
  }

  __device__ __forceinline__ static void copy_async(const SepConvParams& p, Operand* w, int co0, int k0) {
    const T* __restrict__ wpw = static_cast<const T*>(p.pw_weight);
#pragma unroll
    for (int i = 0; i < BN * kVecsPerRow / kThreads; ++i) {
      const int v = threadIdx.x + i * kThreads;
      const int n = v / kVecsPerRow, k = (v % kVecsPerRow) * kVec;
      const int co = co0 + n, cm = k0 + k;
      const bool inside = co < p.Cout && cm < p.Cmid;  // whole 16 bytes in or out (Cmid % kVec == 0)
      const T* src = inside ? wpw + static_cast<int64_t>(co) * p.Cmid + cm : wpw;
      cp_async_16(w + n * Traits::kLdAB + k, src, inside);
    }
  }

  __device__ __forceinline__ static void commit() { cp_async_commit(); }
  // Every group but the most recent one has landed (this thread's copies).
  __device__ __forceinline__ static void wait_all_but_last() { cp_async_wait<1>(); }

  __device__ __forceinline__ static void copy_sync(const SepConvParams& p, Operand* w, int co0, int k0) {
    const T* __restrict__ wpw = static_cast<const T*>(p.pw_weight);
#pragma unroll 2
    for (int i = 0; i < BN * BK / kThreads; ++i) {
      const int idx = threadIdx.x + i * kThreads;
      const int n = idx / BK, k = idx % BK;  // neighbouring threads read along a row of W
      const int co = co0 + n, cm = k0 + k;
      w[n * Traits::kLdAB + k] =
          (co < p.Cout && cm < p.Cmid) ? __ldg(wpw + static_cast<int64_t>(co) * p.Cmid + cm) : from_float<T>(0.f);
    }
  }
};

// Phase 2 and 3, shared with the halo kernel: Y[m, co] = Z[m, :] . W[co, :]^T + bias for the BM
// pixels whose y offsets are y_base (-1: none) and the output channels [co_begin, co_end), from Z
// complete in shared memory (after a barrier this function's first one provides). `after_z` is the
// shared memory past Z and whatever else the caller keeps there: the weight-chunk buffers, aliased
// by the staging.
//
// The weight chunks run kStages - 1 steps ahead: at step k, after the barrier (chunk k landed for
// everyone, and everyone is done with chunk k-1's buffer), chunk k + kStages - 1 is copied into
// that buffer while the MMA works on chunk k. Every step commits one group (possibly empty), so
// "all but the newest kStages - 2 groups landed" always means "chunk k landed".
template <class Traits>
__device__ __forceinline__ void resident_pointwise(const SepConvParams& p, const int64_t* y_base,
                                                   const typename Traits::Operand* z, int ldz, int kpad,
                                                   unsigned char* after_z, int co_begin, int co_end) {
  using Operand = typename Traits::Operand;
  constexpr int BN = Traits::BN, BK = Traits::BK, kStages = Traits::kStages;
  constexpr int kChunk = BN * Traits::kLdAB;  // elements of one weight-chunk buffer
  Operand* w_buf = reinterpret_cast<Operand*>(after_z);
  float* c = reinterpret_cast<float*>(after_z);  // aliases w_buf (see ResidentFwdLayout)
  BlockMma<Traits, Traits::kMath> mma;
  using Chunks = PointwiseChunks<Traits>;
  const bool async = Chunks::can_copy_async(p);
  const int steps = kpad / BK;
#pragma unroll 1
  for (int co0 = co_begin; co0 < co_end; co0 += BN) {
    mma.zero();
    if (async) {
#pragma unroll
      for (int s = 0; s < kStages - 1; ++s) {
        if (s < steps) Chunks::copy_async(p, w_buf + s * kChunk, co0, s * BK);
        Chunks::commit();
      }
    }
#pragma unroll 1
    for (int step = 0; step < steps; ++step) {
      const int slot = step % kStages;
      if (async) {
        cp_async_wait<kStages - 2>();  // chunk `step` landed (this thread's copies)
      } else {
        Chunks::copy_sync(p, w_buf + slot * kChunk, co0, step * BK);  // its buffer was freed by the last barrier
      }
      __syncthreads();  // chunk `step` (and, the first time, Z) complete for everyone; chunk step-1 done with
      if (async) {
        const int ahead = step + kStages - 1;  // into the buffer chunk step-1 used
        if (ahead < steps) Chunks::copy_async(p, w_buf + (ahead % kStages) * kChunk, co0, ahead * BK);
        Chunks::commit();
      }
      mma.step(z + step * BK, ldz, w_buf + slot * kChunk, Traits::kLdAB);
    }
    __syncthreads();  // every MMA done with the weight buffers before the staging aliases them
    mma.stage(reinterpret_cast<float (*)[Traits::kLdC]>(c));
    __syncthreads();
    store_output_tile<Traits>(p, y_base, c, co0);
    __syncthreads();  // the next tile's first chunks overwrite c
  }
}

// How many CTAs share a pixel tile's output channels (gridDim.y): where the pixel tiles fill at most
// half of one wave of resident CTAs (`wave` = SMs x CTAs per SM), enough parts to fill it, each
// recomputing Z (cheap beside the GEMM of the channels it keeps); else 1.
// Every part gets at least one tile (resident_cout_range gives ceil(tiles / parts) each).
inline int resident_cout_parts(int64_t pixel_tiles, int64_t wave, int cout, int bn) {
  const int64_t tiles = (cout + bn - 1) / bn;
  if (pixel_tiles <= 0 || 2 * pixel_tiles > wave) return 1;
  int64_t parts = wave / pixel_tiles;
  if (parts > tiles) parts = tiles;
  const int64_t per_part = (tiles + parts - 1) / parts;
  return static_cast<int>((tiles + per_part - 1) / per_part);
}

// Output channels [begin, end) of the CTA with blockIdx.y = part of `parts`: whole BN tiles.
template <class Traits>
__device__ __forceinline__ void resident_cout_range(int cout, int part, int parts, int* begin, int* end) {
  const int tiles = (cout + Traits::BN - 1) / Traits::BN;
  const int per_part = (tiles + parts - 1) / parts;
  *begin = part * per_part * Traits::BN;
  *end = imin(cout, (part + 1) * per_part * Traits::BN);
}

template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kMinBlocks)
    sepconv_fwd_resident_kernel(const SepConvParams p) {
  using Operand = typename Traits::Operand;
  using Layout = ResidentFwdLayout<Traits>;
  XSEP_DYNAMIC_SHARED(smem);
  __shared__ FwdPixelTable<Traits::BM> px;

  const int kpad = Layout::kpad(p.Cmid), ldz = Layout::ldz(p.Cmid);
  Operand* z = reinterpret_cast<Operand*>(smem);
  px.fill(p, static_cast<int64_t>(blockIdx.x) * Traits::BM);
  __syncthreads();
  bool vec = false;
  if constexpr (Traits::kChannelsLast && Traits::kKH > 0 && Traits::kKW > 0) {
    vec = depthwise_vec_applies<Traits>(p);
    if (vec) {
      const int groups = kpad / static_cast<int>(16 / sizeof(typename Traits::T));  // one chunk: every group
      resident_depthwise_vec<Traits>(p, px, kpad, groups, [&](int m, int k0, const Vec16<Operand>& out) {
        *reinterpret_cast<uint4*>(z + m * ldz + k0) = out.u;
      });
    }
  }
  if (!vec) resident_depthwise<Traits>(p, px, z, ldz, kpad);
  if (p.activation != Activation::kNone) {
    __syncthreads();
    resident_activate<Traits>(p, z, ldz, kpad);
  }
  int co_begin, co_end;
  resident_cout_range<Traits>(p.Cout, blockIdx.y, gridDim.y, &co_begin, &co_end);
  resident_pointwise<Traits>(p, px.y_base, z, ldz, kpad, smem + Layout::z_bytes(p.Cmid), co_begin, co_end);
}

}  // namespace xsep
