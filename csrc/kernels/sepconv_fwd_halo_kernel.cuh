// The fused forward for large channels_last maps (Xception's entry flow), EXPERIMENTAL: written
// without a GPU, run only when XSEP_FWD_KERNEL=halo asks for it (tests/test_cuda.py forces it), to
// be measured against the resident kernel before it becomes a default.
//
// Why: the resident kernel's depthwise stage reads x with scalar loads, nine per value, and reaches
// ~10% of memory bandwidth on the 147x147 layers (benchmarks/results/gpu-forward*.md). Here a CTA
// owns an 8x8 tile of output pixels of one image (and every output channel, as the resident kernel)
// and stages the tile's input halo in shared memory, 32 channels at a time, with 16-byte cp.async
// copies double-buffered against the depthwise arithmetic: each x element is fetched once per tile,
// many copies in flight. The depthwise values are then computed from shared memory eight (16-bit) or
// four (fp32) channels per thread with 16-byte shared loads, and the pointwise phase is the resident
// kernel's (resident_pointwise).
//
// Taken only where it applies (sepconv_fwd_launch.cuh checks): channels_last with unit channel
// stride, 16-byte aligned pixels (C and the strides multiples of 8 16-bit / 4 fp32 elements, an
// aligned base), depth multiplier 1, at most 64 taps, Cmid within the shared memory.
//
// Out-of-image taps read the zero-filled halo, as the unfused op's explicit padding does (so an
// infinite weight there gives NaN, as in the reference; the other kernels skip such taps).
#pragma once

#include <cstdint>
#include <type_traits>

#include "sepconv_fwd_halo_plan.h"
#include "sepconv_fwd_resident_kernel.cuh"

namespace xsep {

constexpr int kHaloMaxTaps = 64;  // registers for one chunk's weights per thread

template <class Traits>
struct HaloFwdLayout {
  using T = typename Traits::T;
  static_assert(Traits::BM == kHaloTile * kHaloTile && Traits::BK == kHaloChunk && Traits::kChannelsLast);
  static constexpr int kVec = 16 / sizeof(T);  // channels per 16-byte copy
  static __host__ __device__ int halo_h(const SepConvParams& p) { return halo_extent(p.sh, p.kh, p.dh); }
  static __host__ __device__ int halo_w(const SepConvParams& p) { return halo_extent(p.sw, p.kw, p.dw); }
  static __host__ __device__ size_t round128(size_t b) { return (b + 127) / 128 * 128; }
  // Two halo buffers [pixel][32 channels], two weight buffers [tap][32 channels].
  static __host__ __device__ size_t x_bytes(const SepConvParams& p) {
    return round128(2 * static_cast<size_t>(halo_h(p)) * halo_w(p) * kHaloChunk * sizeof(T));
  }
  static __host__ __device__ size_t w_bytes(const SepConvParams& p) {
    return round128(2 * static_cast<size_t>(p.kh) * p.kw * kHaloChunk * sizeof(T));
  }
  static __host__ __device__ size_t bytes(const SepConvParams& p) {
    return ResidentFwdLayout<Traits>::bytes(p.Cmid) + x_bytes(p) + w_bytes(p);
  }
};

// The halo kernel's own part: Z[64 x kpad] of the tile whose first output pixel is (n, oy0, ox0),
// from x staged 32 channels at a time. Ends with a barrier: Z is complete.
template <class Traits>
__device__ __forceinline__ void halo_depthwise(const SepConvParams& p, int64_t n, int oy0, int ox0,
                                               unsigned char* x_smem, unsigned char* w_smem,
                                               typename Traits::Operand* z, int ldz, int kpad) {
  using T = typename Traits::T;
  using Operand = typename Traits::Operand;
  using Layout = HaloFwdLayout<Traits>;
  constexpr int kThreads = Traits::kThreads, kVec = Layout::kVec, kGroups = kHaloChunk / kVec;
  constexpr bool kFixed = Traits::kKH > 0 && Traits::kKW > 0;
  const int kh = kFixed ? Traits::kKH : p.kh, kw = kFixed ? Traits::kKW : p.kw;
  const int taps = kh * kw;
  const int hh = Layout::halo_h(p), hw = Layout::halo_w(p), halo_px = hh * hw;
  const int iy_org = halo_origin(oy0, p.sh, p.pt), ix_org = halo_origin(ox0, p.sw, p.pl);
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ wdw = static_cast<const T*>(p.dw_weight);
  // Two buffers each (chunk c uses buffer c & 1), addressed by offset (no arrays of pointers:
  // indexed at run time they would live in local memory).
  T* const xs0 = reinterpret_cast<T*>(x_smem);
  T* const ws0 = reinterpret_cast<T*>(w_smem);
  const int x_buf = halo_px * kHaloChunk, w_buf = taps * kHaloChunk;
  using Copies = PointwiseChunks<Traits>;  // cp.async group commit / wait (no-ops before sm_80)
  const int chunks = kpad / kHaloChunk;

  // The halo of chunk c into buf: 16 bytes (kVec channels of one pixel) per copy, zero-filled
  // outside the image and past C (C % kVec == 0: a copy is wholly in or out).
  auto stage_x = [&](int c, T* buf) {
    const int c0 = c * kHaloChunk;
#pragma unroll 1
    for (int v = threadIdx.x; v < halo_px * kGroups; v += kThreads) {
      const int hp = v / kGroups, g = v % kGroups;
      const int iy = iy_org + hp / hw, ix = ix_org + hp % hw, ch = c0 + g * kVec;
      const bool inside = iy >= 0 && iy < p.H && ix >= 0 && ix < p.W && ch < p.C;
      const T* src = inside ? x + n * p.x_stride[0] + static_cast<int64_t>(iy) * p.x_stride[2] +
                                  static_cast<int64_t>(ix) * p.x_stride[3] + ch
                            : x;
      T* dst = buf + hp * kHaloChunk + g * kVec;
      cp_async_16(dst, src, inside);
    }
  };
  // One chunk's depthwise weights, [channel][tap] in global memory (contiguous for the chunk),
  // fetched into registers early and stored transposed to [tap][channel] after the arithmetic.
  constexpr int kWPerThread = (kHaloMaxTaps * kHaloChunk + kThreads - 1) / kThreads;
  T w_next[kWPerThread];
  auto fetch_w = [&](int c) {
    const int64_t base = static_cast<int64_t>(c) * kHaloChunk * taps;
#pragma unroll
    for (int i = 0; i < kWPerThread; ++i) {
      const int idx = threadIdx.x + i * kThreads;  // = k * taps + tap within the chunk
      const bool live = idx < kHaloChunk * taps && c * kHaloChunk + idx / taps < p.Cmid;
      w_next[i] = live ? __ldg(wdw + base + idx) : from_float<T>(0.f);
    }
  };
  auto store_w = [&](T* buf) {
#pragma unroll
    for (int i = 0; i < kWPerThread; ++i) {
      const int idx = threadIdx.x + i * kThreads;
      if (idx < kHaloChunk * taps) buf[halo_weight_slot(idx, taps)] = w_next[i];
    }
  };

  stage_x(0, xs0);
  Copies::commit();
  fetch_w(0);
  store_w(ws0);
#pragma unroll 1
  for (int c = 0; c < chunks; ++c) {
    const bool more = c + 1 < chunks;
    if (more)
      stage_x(c + 1, xs0 + ((c + 1) & 1) * x_buf);  // that buffer was last read in c-1, before the barrier below
    Copies::commit();                               // possibly empty: "all but the last group" = chunk c
    if (more) fetch_w(c + 1);
    Copies::wait_all_but_last();
    __syncthreads();  // chunk c's halo and weights visible to every thread
    const T* xb = xs0 + (c & 1) * x_buf;
    const T* wb = ws0 + (c & 1) * w_buf;
    // Items: (pixel m, group g of kVec channels); neighbouring threads take neighbouring groups.
#pragma unroll 1
    for (int item = threadIdx.x; item < Traits::BM * kGroups; item += kThreads) {
      const int m = item / kGroups, g = item % kGroups;
      const int r = m / kHaloTile, col = m % kHaloTile;
      float acc[kVec];
#pragma unroll
      for (int j = 0; j < kVec; ++j) acc[j] = 0.f;
      auto tap = [&](int ky, int kx) {
        const int hp = halo_index(r, col, ky, kx, p.sh, p.sw, p.dh, p.dw, hw);
        Vec16<T> xv, wv;  // 16-byte shared loads, taken apart in registers
        xv.u = *reinterpret_cast<const uint4*>(xb + hp * kHaloChunk + g * kVec);
        wv.u = *reinterpret_cast<const uint4*>(wb + (ky * kw + kx) * kHaloChunk + g * kVec);
#pragma unroll
        for (int j = 0; j < kVec; ++j) acc[j] = fmaf(to_float(xv.v[j]), to_float(wv.v[j]), acc[j]);
      };
      if constexpr (kFixed) {
#pragma unroll 1  // one kernel row's taps in flight: all of them would not fit in the registers
        for (int ky = 0; ky < Traits::kKH; ++ky)
#pragma unroll
          for (int kx = 0; kx < Traits::kKW; ++kx) tap(ky, kx);
      } else {
#pragma unroll 1
        for (int ky = 0; ky < kh; ++ky)
#pragma unroll 1
          for (int kx = 0; kx < kw; ++kx) tap(ky, kx);
      }
      // Pixels past the map's edge: zero rows (the epilogue skips them).
      const bool live = oy0 + r < p.Ho && ox0 + col < p.Wo;
      Vec16<Operand> out;
#pragma unroll
      for (int j = 0; j < kVec; ++j) out.v[j] = from_float<Operand>(live ? acc[j] : 0.f);
      *reinterpret_cast<uint4*>(z + m * ldz + c * kHaloChunk + g * kVec) = out.u;
    }
    if (more) store_w(ws0 + ((c + 1) & 1) * w_buf);  // last read in c-1, before the barrier below
    __syncthreads();                                 // done with chunk c's buffers before they are refilled
  }
}

// Two CTAs per SM (128 registers); one for float32 (TF32 fragments and fp32 weights do not fit).
template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, std::is_same_v<typename Traits::T, float> ? 1 : 2)
    sepconv_fwd_halo_kernel(const SepConvParams p) {
  using Operand = typename Traits::Operand;
  using Layout = HaloFwdLayout<Traits>;
  XSEP_DYNAMIC_SHARED(smem);
  __shared__ int64_t y_base[Traits::BM];

  const HaloTile tile = halo_tile(blockIdx.x, p.Ho, p.Wo);
  const int64_t n = tile.n;
  const int oy0 = tile.oy0, ox0 = tile.ox0;
  if (threadIdx.x < Traits::BM) {
    const int oy = oy0 + static_cast<int>(threadIdx.x) / kHaloTile,
              ox = ox0 + static_cast<int>(threadIdx.x) % kHaloTile;
    y_base[threadIdx.x] = oy < p.Ho && ox < p.Wo ? n * p.y_stride[0] + static_cast<int64_t>(oy) * p.y_stride[2] +
                                                       static_cast<int64_t>(ox) * p.y_stride[3]
                                                 : -1;
  }
  const int kpad = ResidentFwdLayout<Traits>::kpad(p.Cmid), ldz = ResidentFwdLayout<Traits>::ldz(p.Cmid);
  Operand* z = reinterpret_cast<Operand*>(smem);
  unsigned char* x_smem = smem + ResidentFwdLayout<Traits>::z_bytes(p.Cmid);
  unsigned char* w_smem = x_smem + Layout::x_bytes(p);
  halo_depthwise<Traits>(p, n, oy0, ox0, x_smem, w_smem, z, ldz, kpad);  // ends with a barrier
  if (p.activation != Activation::kNone) {
    resident_activate<Traits>(p, z, ldz, kpad);
    __syncthreads();
  }
  resident_pointwise<Traits>(p, y_base, z, ldz, kpad, w_smem + Layout::w_bytes(p), 0, p.Cout);
}

}  // namespace xsep
