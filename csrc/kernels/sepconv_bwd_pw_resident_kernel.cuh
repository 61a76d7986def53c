// The pw-gradient kernel on Hopper with Z resident (wgmma, sm_90a; written without a GPU): each CTA
// computes the depthwise intermediate Z of its pixels and 64 channels once, keeps it in shared
// memory, and multiplies it by every output channel's dY in turn.
//
//   grad_pw[co][cm] = sum over pixels of dY[pixel][co] * Z[pixel][cm]  (GEMM: M = cm, N = co,
//   K = pixels; split-K over pixels into fixed-order partial sums, as the other pw-gradient kernels)
//
//   CTA: 64 depthwise channels x one split of at most 1024 output pixels (the plan:
//     plan_resident_pw in sepconv_bwd.h), all of Cout; 256 threads, one CTA per SM. (Or, where
//     XSEP_BWD_PW_PIXELS=512 asks and Cout <= 128: splits of at most 512 pixels, two CTAs per SM.)
//   Phase 1, every thread: Z of the split's pixels (ZPairItems, sepconv_bwd_z_pairs.cuh: a channel
//     pair of four neighbouring pixels an item, the next item's 3 x 6 window loads in flight while
//     the current one is summed), stored once as wgmma's A operand (Z^T, M-major, 128-byte swizzle):
//     up to 128 KB.
//   Phase 2, per slice of 2 x kHalf output channels: each warpgroup multiplies all of Z by its kHalf
//     channels of dY, 64 pixels a stage: dY stage g + 2 is loaded into registers while the tensor
//     cores work on stage g, stored into a two-slot ring (MN-major, 128-byte swizzle) when stage
//     g - 1 has retired, one wgmma batch in flight. At the slice's end, the accumulators go
//     straight from registers to the split's partial sums; grad_bias partial sums ride along on the
//     dY loads of the CTAs of channel chunk 0.
//
// Why: the staged kernel (sepconv_bwd_pw_staged_kernel.cuh) recomputes Z for every 128 output
// channels (6 times at Cout = 728) and steps 32 pixels a barrier; the H200 profile had it at ~7500
// cycles a step against ~130 of MMA. Here Z is computed once per pixel and channel, and the GEMM
// runs 1024 pixels deep between epilogues. The price: the partial sums, one Cout x Cmid fp32 row
// per split (splits ~ pixels / 1024), written once and added by the reduce kernel.
//
// Synchronisation per warpgroup (named barriers 1 and 2; each warpgroup reads only its own half of
// a dY slot, and both read Z, which no one writes after phase 1): at stage g, issue the wgmma of
// slot g % 2, wait until at most that batch is in flight (the batch of g - 1 retired for this
// warp), barrier A (for every warp: slot (g + 1) % 2 is free), store stage g + 1 from registers
// into it, fence for the async proxy, issue the loads of stage g + 2, barrier B (stage g + 1 is
// complete for the wgmma of g + 1). The fence comes before the new loads: if it waits for the
// thread's memory operations in flight, it then waits for none.
//
// Built only with CuTe's headers and only for sm_90a; elsewhere its body traps and the launcher
// never starts it. The host emulation (tests/cpp/bwd_kernels_emulation.cpp) runs it with the
// warpgroup-MMA stand-in.
#pragma once

#include <cstdint>
#include <type_traits>

#include "bulk_copy.cuh"  // named_barrier_sync
#include "cp_async.cuh"   // store_shared, XSEP_DYNAMIC_SHARED
#include "element_types.cuh"
#include "sepconv_bwd.h"
#include "sepconv_bwd_tiles.cuh"  // pw_split_pixels
#include "sepconv_bwd_z_pairs.cuh"
#include "wgmma_common.cuh"

#if defined(XSEP_WITH_CUTE)

namespace xsep {

// T: __half or __nv_bfloat16. kHalf: output channels per warpgroup (the wgmma N): 128, or 64 where
// Cout <= 128 (resident_pw_half). kMaxPixels: the largest split (resident_pw_max_pixels), 1024, or
// 512 with kHalf 64: two CTAs per SM (105 KB of shared memory and 128 registers a thread each).
template <typename T_, int kHalf_, int kMaxPixels_ = kPwResidentMaxPixels>
struct ResidentPwTraits {
  using T = T_;
  using Element = CuteElement<T_>;
  static_assert(sizeof(T_) == 2, "wgmma with both operands MN-major: 16-bit types");
  static constexpr int kHalf = kHalf_;
  static constexpr int kSlice = 2 * kHalf_;       // output channels per slice
  static constexpr int BM = kPwResidentChannels;  // 64 depthwise channels (the wgmma M)
  static constexpr int kMaxPixels = kMaxPixels_;  // 1024 or 512
  static constexpr int kCtasPerSm = resident_pw_ctas_per_sm(kMaxPixels_);
  static constexpr int kStagePixels = kPwResidentStagePixels;  // 64: four k-blocks of 16
  static constexpr int kKBlocks = kStagePixels / 16;
  static constexpr int kThreads = 256;
  static constexpr int kGroups = kHalf_ / 8;                      // 16-byte groups of a warpgroup's channels
  static constexpr int kRowsPerPass = 128 / kGroups;              // pixels a warpgroup's 128 threads load at once
  static constexpr int kPieces = kStagePixels / kRowsPerPass;     // 16-byte loads a thread a stage
  static constexpr int kAlign = 1024;                             // the 128-byte swizzle's pattern
  static constexpr int kZBytes = BM * kMaxPixels * 2;             // 128 KB (64 KB)
  static constexpr int kDyBytes = 2 * kSlice * kStagePixels * 2;  // two slots
  static constexpr int kBiasBytes = 2 * kRowsPerPass * kHalf_ * 4;
  static constexpr int kSharedBytes = kAlign + kZBytes + kDyBytes + kBiasBytes;
  static_assert(kCtasPerSm == 1 || (kHalf_ == 64 && kSharedBytes <= 113 * 1024),
                "two CTAs per SM: 64 output channels per warpgroup (register budget) and half the SM's shared memory");

  using ZLayout = decltype(cute::tile_to_shape(cute::GMMA::Layout_MN_SW128_Atom<Element>{},
                                               cute::Shape<cute::Int<BM>, cute::Int<kMaxPixels>>{}));
  using DyLayout = decltype(cute::tile_to_shape(cute::GMMA::Layout_MN_SW128_Atom<Element>{},
                                                cute::Shape<cute::Int<kSlice>, cute::Int<kStagePixels>, cute::_2>{}));
  using Atom = typename WgmmaAtom<T_, kHalf_, cute::GMMA::Major::MN, cute::GMMA::Major::MN>::type;
  // Warpgroup w takes output channels [w * kHalf, (w + 1) * kHalf) of the slice.
  using TiledMma = decltype(cute::make_tiled_mma(Atom{}, cute::Layout<cute::Shape<cute::_1, cute::_2, cute::_1>>{}));
};

template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kCtasPerSm)
    sepconv_bwd_pw_resident_kernel(const SepConvBwdParams p) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
  using namespace cute;
  using T = typename Traits::T;
  using Element = typename Traits::Element;
  constexpr int BM = Traits::BM, kHalf = Traits::kHalf, kSlice = Traits::kSlice;
  constexpr int kStagePixels = Traits::kStagePixels, kKBlocks = Traits::kKBlocks;
  constexpr int kGroups = Traits::kGroups, kRowsPerPass = Traits::kRowsPerPass, kPieces = Traits::kPieces;
  mark_wgmma_code();
  XSEP_DYNAMIC_SHARED(smem);  // Traits::kSharedBytes
  unsigned char* base = align_for_wgmma<Traits::kAlign>(smem);
  Tensor z = make_tensor(make_smem_ptr(reinterpret_cast<Element*>(base)), typename Traits::ZLayout{});  // (cm, px)
  Tensor dy = make_tensor(make_smem_ptr(reinterpret_cast<Element*>(base + Traits::kZBytes)),
                          typename Traits::DyLayout{});  // (co, px, slot)
  float* bias_rows = reinterpret_cast<float*>(base + Traits::kZBytes + Traits::kDyBytes);

  const SepConvParams& f = p.fwd;
  const int cm0 = blockIdx.x * BM;
  int64_t begin, end;
  pw_split_pixels(p, blockIdx.z, &begin, &end);
  const int stages = static_cast<int>((end - begin + kStagePixels - 1) / kStagePixels);  // <= 16

  // ---- phase 1: Z of the split, once ----
  {
    const int pair = threadIdx.x % (BM / 2);  // 32 pairs: a warp covers the 64 channels of a pixel
    float wq[9][2];
    const T* __restrict__ wdw = static_cast<const T*>(f.dw_weight);
#pragma unroll
    for (int t = 0; t < 9; ++t)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int cm = cm0 + 2 * pair + j;
        wq[t][j] = cm < f.Cmid ? to_float(__ldg(wdw + static_cast<int64_t>(cm) * 9 + t)) : 0.f;
      }
    const ZPairItems<T> items(f, cm0 + 2 * pair, wq);
    // Quads qd = warp, warp + 8, ... of the split's stages * 64 pixels (zero past `end`); two in
    // hand, so one's window loads are in flight while the other is summed.
    constexpr int kStride = Traits::kThreads / (BM / 2);  // 8 warps
    const int quads = stages * (kStagePixels / kQuadPixels);
    auto finish = [&](int qd, const QuadWindow<T>& w, const typename ZPairItems<T>::Window& v) {
      float out[kQuadPixels][2];
      items.compute(begin + kQuadPixels * qd, end, w, v, out);
#pragma unroll
      for (int r = 0; r < kQuadPixels; ++r)
        store_shared(raw_pointer_cast(&z(2 * pair, kQuadPixels * qd + r)), items.bits(out[r]).u);
    };
    QuadWindow<T> w0, w1;
    typename ZPairItems<T>::Window v0, v1;
    int qd = threadIdx.x / (BM / 2);
    if (qd < quads) items.prefetch(begin + kQuadPixels * qd, end, w0, v0);
#pragma unroll 1
    for (; qd < quads; qd += 2 * kStride) {
      const int q1 = qd + kStride, q2 = qd + 2 * kStride;
      if (q1 < quads) items.prefetch(begin + kQuadPixels * q1, end, w1, v1);
      finish(qd, w0, v0);
      if (q2 < quads) items.prefetch(begin + kQuadPixels * q2, end, w0, v0);
      if (q1 < quads) finish(q1, w1, v1);
    }
  }
  fence_shared_for_wgmma();
  __syncthreads();  // Z complete, for both warpgroups' wgmma

  // ---- phase 2: Z^T . dY, slice by slice ----
  const int wg = threadIdx.x / 128, tl = threadIdx.x % 128;
  const int group = tl % kGroups, row0 = tl / kGroups;  // this thread's 8 channels and first pixel of a pass
  const int slices = (f.Cout + kSlice - 1) / kSlice;
  const int total = slices * stages;
  const T* __restrict__ gy = static_cast<const T*>(p.grad_y);
  const bool want_bias = p.grad_bias != nullptr && blockIdx.x == 0;
  float* __restrict__ ws_pw = p.workspace + p.dw_partials * f.Cmid * 9;
  float* __restrict__ ws_bias = ws_pw + static_cast<int64_t>(p.pw_splits) * f.Cout * f.Cmid;

  // Stage g's dY (slice g / stages, pixels of stage g % stages) for this thread: kPieces 16-byte
  // loads of its 8 channels, zero past the split and past Cout. grad_y is dense channels_last
  // (resident_pw_wanted): pixel q's channels start at q * Cout.
  uint4 held[kPieces];
  auto load_stage = [&](int g) {
    const int slice = g / stages, s = g - slice * stages;
    const int co = slice * kSlice + wg * kHalf + 8 * group;
    const int64_t q0 = begin + static_cast<int64_t>(s) * kStagePixels + row0;
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int64_t q = q0 + i * kRowsPerPass;
      held[i] = make_uint4(0u, 0u, 0u, 0u);
      if (q < end && co < f.Cout) held[i] = __ldg(reinterpret_cast<const uint4*>(gy + q * f.Cout + co));
    }
  };
  auto store_stage = [&](int slot) {
#pragma unroll
    for (int i = 0; i < kPieces; ++i)
      store_shared(raw_pointer_cast(&dy(wg * kHalf + 8 * group, row0 + i * kRowsPerPass, slot)), held[i]);
  };
  auto wg_barrier = [&] { named_barrier_sync(1 + wg, 128); };

  // grad_bias (the CTAs of channel chunk 0): each thread sums the dY it stores, in pixel order;
  // when the stores pass into the next slice, the kRowsPerPass threads of each channel group add
  // their sums in row order into the split's partial sums.
  float bias_sum[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) bias_sum[j] = 0.f;
  auto flush_bias = [&](int slice) {
    float* rows = bias_rows + wg * kRowsPerPass * kHalf;
#pragma unroll
    for (int j = 0; j < 8; ++j) rows[row0 * kHalf + 8 * group + j] = bias_sum[j], bias_sum[j] = 0.f;
    wg_barrier();
    const int co = slice * kSlice + wg * kHalf + tl;
    if (tl < kHalf && co < f.Cout) {
      float sum = 0.f;
      for (int r = 0; r < kRowsPerPass; ++r) sum += rows[r * kHalf + tl];
      ws_bias[static_cast<int64_t>(blockIdx.z) * f.Cout + co] = sum;
    }
    wg_barrier();  // the rows are read before the next flush writes them
  };
  // After held (stage g) is stored.
  auto add_bias = [&](int g) {
    if (!want_bias) return;
    if (g > 0 && g % stages == 0) flush_bias(g / stages - 1);
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const T* e = reinterpret_cast<const T*>(&held[i]);
#pragma unroll
      for (int j = 0; j < 8; ++j) bias_sum[j] += to_float(e[j]);
    }
  };

  typename Traits::TiledMma mma;
  ThrMMA thr_mma = mma.get_slice(threadIdx.x);
  Tensor a_frag = thr_mma.make_fragment_A(thr_mma.partition_A(z));   // (MMA, MMA_M, k-blocks of Z)
  Tensor b_frag = thr_mma.make_fragment_B(thr_mma.partition_B(dy));  // (MMA, MMA_N, kKBlocks, slot)
  // Each slice's first k-block overwrites the accumulators (scale-d 0): a clear by ordinary
  // instructions inside the loop would make ptxas wait for every wgmma in flight (C7517).
  auto acc = partition_fragment_C(mma, Shape<Int<BM>, Int<kSlice>>{});
  Tensor coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<BM>, Int<kSlice>>{}));

  if (total > 0) {
    load_stage(0);
    store_stage(0);
    add_bias(0);
    fence_shared_for_wgmma();
    if (total > 1) load_stage(1);
    wg_barrier();  // stage 0 complete
  }
  // Stage g = slice * stages + s. The epilogue stays outside the stage loop: a read of the
  // accumulators on one path of the loop's back edge makes ptxas wait for every wgmma at the edge.
  int g = 0;
#pragma unroll 1
  for (int slice = 0; slice < slices; ++slice) {
#pragma unroll 1
    for (int s = 0; s < stages; ++s, ++g) {
      const int slot = g & 1;
      warpgroup_fence_operand(acc);
      wgmma_arrive();
#pragma unroll
      for (int k = 0; k < kKBlocks; ++k) {
        mma.accumulate_ = s == 0 && k == 0 ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
        cute::gemm(mma, a_frag(_, _, s * kKBlocks + k), b_frag(_, _, k, slot), acc);
      }
      wgmma_commit();
      wgmma_wait<1>();  // the batch of stage g - 1 retired (this warp's part)
      warpgroup_fence_operand(acc);
      if (g + 1 < total) {
        wg_barrier();  // A: every warp's part of stage g - 1 retired: slot (g + 1) % 2 is free
        store_stage(slot ^ 1);
        add_bias(g + 1);
        fence_shared_for_wgmma();
        if (g + 2 < total) load_stage(g + 2);
        wg_barrier();  // B: stage g + 1 complete
      }
    }
    // The slice's partial sums.
    wgmma_wait<0>();
    warpgroup_fence_operand(acc);
    float* __restrict__ part = ws_pw + static_cast<int64_t>(blockIdx.z) * f.Cout * f.Cmid;
#pragma unroll
    for (int i = 0; i < size(acc); ++i) {
      const int cm = cm0 + get<0>(coords(i)), co = slice * kSlice + get<1>(coords(i));
      if (cm < f.Cmid && co < f.Cout) part[static_cast<int64_t>(co) * f.Cmid + cm] = acc(i);
    }
  }
  if (want_bias && total > 0) flush_bias(slices - 1);
#else
  __trap();  // no wgmma in this build: the launcher never starts this kernel
#endif
}

}  // namespace xsep

#endif  // XSEP_WITH_CUTE
