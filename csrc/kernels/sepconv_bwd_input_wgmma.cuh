// The staged input-gradient kernel (sepconv_bwd_input_staged_kernel.cuh) with its dZ GEMM on
// Hopper's warpgroup MMA, EXPERIMENTAL (XSEP_BWD_KERNEL=wgmma; written without a GPU): the same
// tiles, plan and results; only StagedInputDz changes. dZ[128 ext pixels x 64, 128 or 256 channels] =
// grad_y . W_pw over Cout in chunks of 32: two warpgroups of 64 x N x 16 wgmma, grad_y (A, K-major: Cout
// is contiguous in channels_last grad_y) and W_pw (B, MN-major: its rows are contiguous along the
// channels) copied as they lie in memory with 16-byte cp.async into wgmma's 64-byte-swizzled
// layouts, two chunks ahead in a 4-slot ring, a step's wgmma batch retired within the step. Each warpgroup copies every
// other chunk: the fence.proxy.async a copying thread needs before wgmma reads its writes waits for
// every copy the thread has in flight, so a thread that copied each chunk would drain the ring at
// every step (measured in the forward on an H200: gpu-checks.md); here a thread has one chunk in
// flight when it fences, the one that must land anyway, while the other warpgroup's stays in
// flight. Built only for sm_90a with CuTe; elsewhere StagedInputDz::run traps, and the launcher
// never starts it (it checks for the marker in static shared memory that only the sm_90a code
// declares).
#pragma once

#include <cstdint>

#include "cp_async.cuh"
#include "sepconv_bwd_input_staged_kernel.cuh"
#include "wgmma_common.cuh"

#if defined(XSEP_WITH_CUTE)

namespace xsep {

template <typename T, int kChannels>
struct StagedInputDz<StagedInputTraits<T, true, kChannels>> {
  using Traits = StagedInputTraits<T, true, kChannels>;
  using Tile = typename Traits::Tile;
  using Element = CuteElement<T>;
  static_assert(sizeof(T) == 2, "wgmma dZ: fp16 / bf16");
  static constexpr int BM = Tile::BM, BN = Tile::BN, BK = 32, kThreads = Tile::kThreads;
  static_assert(BM == 128 && (BN == 64 || BN == 128 || BN == 256) && kThreads == 256, "two warpgroups of 64 x BN");
  static constexpr int kStages = 4, kAhead = 2;  // two chunks ahead, as the wgmma forward
  static constexpr bool kDzRounded = true;       // run stores dZ rounded to T
  static constexpr int kAlign = 1024;            // align_for_wgmma's slack
  static constexpr int kABytes = BM * BK * 2, kBBytes = BN * BK * 2;
  struct Storage {
    unsigned char bytes[kAlign + kStages * (kABytes + kBBytes)];
  };

  using ARing = decltype(cute::tile_to_shape(cute::GMMA::Layout_K_SW64_Atom<Element>{},
                                             cute::Shape<cute::Int<BM>, cute::Int<BK>, cute::Int<kStages>>{}));
  using BRing = decltype(cute::tile_to_shape(cute::GMMA::Layout_MN_SW64_Atom<Element>{},
                                             cute::Shape<cute::Int<BN>, cute::Int<BK>, cute::Int<kStages>>{}));
  using Atom = typename WgmmaAtom<T, BN, cute::GMMA::Major::K, cute::GMMA::Major::MN>::type;
  using TiledMma = decltype(cute::make_tiled_mma(Atom{}, cute::Layout<cute::Shape<cute::_2, cute::_1, cute::_1>>{}));

  __device__ __forceinline__ static void run(const SepConvBwdParams& p, Storage& st, float (*dz)[Tile::kLdC],
                                             const int64_t* gy_base, int cm0, int cm_count) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
    using namespace cute;
    mark_wgmma_code();
    const SepConvParams& f = p.fwd;
    unsigned char* base = align_for_wgmma(st.bytes);
    Tensor a_ring = make_tensor(make_smem_ptr(reinterpret_cast<Element*>(base)), ARing{});  // (BM, BK, kStages)
    Tensor b_ring = make_tensor(make_smem_ptr(reinterpret_cast<Element*>(base + kStages * kABytes)), BRing{});

    // Chunk `step` (Cout from step * BK) into ring slot `slot`, copied by warpgroup step % 2 alone
    // (a warpgroup calls this only for its chunks).
    constexpr int kCopyThreads = kThreads / 2;
    const int copier = threadIdx.x / kCopyThreads;  // this thread's warpgroup: it copies chunks step % 2 == copier
    auto copy_chunk = [&](int step, int slot) {
      copy_dz_operands<Traits, BK, kCopyThreads>(
          p, gy_base, cm0, cm_count, step * BK, threadIdx.x % kCopyThreads,
          [&](int m, int k) { return &a_ring(m, k, slot); }, [&](int k, int n) { return &b_ring(n, k, slot); });
      cp_async_commit();
    };

    TiledMma mma;
    ThrMMA thr_mma = mma.get_slice(threadIdx.x);
    Tensor acc = partition_fragment_C(mma, Shape<Int<BM>, Int<BN>>{});
    Tensor a_frag = thr_mma.make_fragment_A(thr_mma.partition_A(a_ring));  // (MMA, MMA_M, MMA_K, kStages)
    Tensor b_frag = thr_mma.make_fragment_B(thr_mma.partition_B(b_ring));  // (MMA, MMA_N, MMA_K, kStages)
    // The first k-block overwrites the accumulators (scale-d 0): clearing them with ordinary
    // instructions made ptxas serialise every wgmma of the loop (C7515).
    const int steps = (f.Cout + BK - 1) / BK;
    static_assert(kAhead == 2, "one chunk in flight per warpgroup");
    if (copier < steps) copy_chunk(copier, copier);  // chunks 0 and 1
#pragma unroll 1
    for (int step = 0; step < steps; ++step) {
      if (step % 2 == copier) {
        cp_async_wait<0>();        // chunk `step` landed (its copier's only copies in flight) ...
        fence_shared_for_wgmma();  // ... and is visible to wgmma
      }
      __syncthreads();  // ... for everyone; the slot refilled below was read by a batch already waited for
      const int ahead = step + kAhead;
      if (ahead < steps && ahead % 2 == copier) copy_chunk(ahead, ahead % kStages);
      const int slot = step % kStages;
      warpgroup_fence_operand(acc);
      wgmma_arrive();
#pragma unroll
      for (int k = 0; k < size<2>(a_frag); ++k) {
        mma.accumulate_ = step == 0 && k == 0 ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
        gemm(mma, a_frag(_, _, k, slot), b_frag(_, _, k, slot), acc);
      }
      wgmma_commit();
      // All of this step's batch retired before the next chunk's copies are issued: with a batch
      // left in flight across them (wait<1>), ptxas (sm_90a, 128 registers) serialised every wgmma
      // of the loop, one wait per k-block (C7515); this way a step's k-blocks run back to back.
      wgmma_wait<0>();
      warpgroup_fence_operand(acc);
    }
    wgmma_wait<0>();
    warpgroup_fence_operand(acc);
    cp_async_wait<0>();
    __syncthreads();  // every wgmma done with the rings before dz aliases them
    Tensor coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<BM>, Int<BN>>{}));
#pragma unroll
    for (int i = 0; i < size(acc); ++i) {  // rounded as the unfused op stores dZ (kDzRounded)
      dz[get<0>(coords(i))][get<1>(coords(i))] = round_like_storage<T>(acc(i));
    }
    __syncthreads();
#else
    __trap();  // no wgmma in this build: the launcher never starts this kernel
#endif
  }
};

}  // namespace xsep

#endif  // XSEP_WITH_CUTE
