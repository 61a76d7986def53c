// The streamed forward on Hopper (wgmma, sm_90a): a warp-specialised CTA whose producer warps compute
// the depthwise result Z one K chunk at a time into a ring of shared-memory slots while its consumer
// warpgroups multiply the chunks already there by the pointwise weight. For channels_last 3x3 layers
// with 16-byte aligned channels (every Xception layer) in fp16, bf16, and fp32 on TF32.
//
//   CTA: tiles of 128 output pixels x 128 or 192 output channels (of the pointwise GEMM), one
//   after another (persistent: a CTA per SM); 512 threads.
//   Producers (threads 256..511, two warpgroups): for each chunk of BK channels (64 bytes of them),
//     wait until its ring slot is free, start the bulk copy of the matching pointwise-weight chunk
//     (one thread), compute the chunk's 128 x BK depthwise values (QuadDepthwise,
//     sepconv_fwd_quad_depthwise.cuh: a thread takes two channels of four neighbouring pixels,
//     twice a chunk for 16-bit types), store them in the 64-byte-swizzled K-major layout wgmma reads,
//     fence them for the async proxy, arrive.
//   Consumers (threads 0..255, two warpgroups of 64 pixels x BN channels): wait for the slot's
//     chunk (the producers' 256 arrivals and the weight's bytes), one wgmma batch, release the
//     slot of the batch before (retired by the wait that keeps one in flight); then bias, one
//     rounding, and stores from the accumulators.
//
// Why: the resident wgmma kernel (sepconv_fwd_wgmma_kernel.cuh) computes all of Z before its first
// MMA and keeps it in shared memory, so its depthwise phase and its GEMM never overlap, Z's 186 KB
// (728 channels) leave one CTA of 8 warps per SM and 4-5 weight chunks in flight, and at N = 32 the
// 91 pixel tiles of a 19x19 layer leave 41 of 132 SMs idle. Here the two phases run at once on
// different warps (CUDA cores and load units against tensor cores), the ring needs 16 KB a slot,
// and the tiles are 128 pixels x BN output channels. The price: each output-channel
// tile recomputes Z (Cout / BN times; ~9 FMA per value against BN MMA FMA per value and tile: by
// the SASS count ~27 producer instructions per value, so the producers, not the tensor cores, set
// the pace). Whether that trade wins is what the benchmark measures (XSEP_FWD_KERNEL=streamed).
//
// Depthwise arithmetic as QuadDepthwise's: fp32 products and sums in tap order, rounded once to the
// storage type, then the intermediate activation, then (fp32) TF32.
//
// Built only with CuTe's headers and only for sm_90a, like the resident wgmma kernel; the host
// emulation (tests/cpp/streamed_fwd_emulation.cpp) runs it with stand-ins for wgmma, the mbarriers
// and the bulk copies.
#pragma once

#include <cstdint>
#include <type_traits>

#include "bulk_copy.cuh"
#include "cp_async.cuh"  // store_shared, XSEP_DYNAMIC_SHARED
#include "element_types.cuh"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_fwd_quad_depthwise.cuh"
#include "sepconv_fwd_wgmma_kernel.cuh"  // WgmmaFwdCute, the pointwise-weight pack, store_output_pair
#include "sepconv_params.h"
#include "wgmma_common.cuh"

namespace xsep {

// BN_: output channels per CTA (the wgmma N), 128 or 192: 192 recomputes Z fewer times where Cout
// needs fewer tiles of it (728: 4 instead of 6), and its 96 accumulators a thread still fit the
// 128 registers 512 threads leave.
template <typename T_, int BN_ = 128>
struct StreamedFwdTraits {
  using T = T_;
  using Operand = T_;
  static constexpr int BM = 128;  // pixels per CTA: two consumer warpgroups of 64
  static constexpr int BN = BN_;
  static constexpr int BK = 64 / sizeof(T_);  // channels per chunk: one 64-byte swizzle row
  static constexpr int kSplitN = 1;           // WgmmaFwdCute: consumer warpgroups along M only
  static constexpr int kConsumerThreads = 256, kProducerThreads = 256;
  static constexpr int kThreads = kConsumerThreads + kProducerThreads;
  static constexpr int kMinStages = 2, kMaxStages = 8, kDefaultStages = 6;
  static constexpr bool kChannelsLast = true;
  static constexpr int kKH = 3, kKW = 3, kTaps = 9;
  static constexpr int kVec = 16 / sizeof(T_);  // channels per 16-byte vector (the channel-count rule)
  static constexpr int kZChunkBytes = BM * 64;
  static constexpr int kWSlotBytes = BN * 64;
};

// Dynamic shared memory: [alignment slack][Z ring: stages chunks][weight ring: stages slots].
template <class Traits>
struct StreamedFwdLayout {
  static constexpr int kAlign = 512;  // the 64-byte swizzle's pattern
  static __host__ __device__ int kpad(int cmid) { return (cmid + Traits::BK - 1) / Traits::BK * Traits::BK; }
  static __host__ __device__ size_t bytes(int stages) {
    return kAlign + static_cast<size_t>(stages) * (Traits::kZChunkBytes + Traits::kWSlotBytes);
  }
};

// Channels per producer work item (QuadDepthwise): pairs. (Four, with the tile loop's state, spill
// at 128 registers a thread, even beside the 64 accumulators of a 128-channel tile.)
template <class Traits>
__host__ __device__ constexpr int streamed_dw_lanes() {
  return 2;
}

// From here on, CuTe's headers (XSEP_WITH_CUTE): the pointwise-weight pack's size lives with the
// wgmma kernel, which needs them.
#if defined(XSEP_WITH_CUTE)

// The workspace: the pointwise weight packed as ring slots of BN x BK (sepconv_fwd_wgmma_pack_kernel
// with these traits), then the depthwise weight in fp32 as [channel group][tap][lane]
// (sepconv_fwd_dw_pack_kernel with the producers' channel groups: streamed_dw_lanes).
template <class Traits>
__host__ __device__ inline size_t streamed_dw_offset_bytes(int cout, int cmid) {
  return static_cast<size_t>(wgmma_packed_weight_elements<Traits>(cout, cmid)) *
         sizeof(typename Traits::T);  // a multiple of 16 bytes
}
template <class Traits>
__host__ __device__ inline size_t streamed_workspace_bytes(int cout, int cmid) {
  return streamed_dw_offset_bytes<Traits>(cout, cmid) + packed_dw_bytes(cmid);
}

// stages: ring slots, kMinStages..kMaxStages (dynamic shared memory StreamedFwdLayout::bytes(stages)).
// Persistent: CTA b takes tiles b, b + gridDim.x, ... of (pixel tile, output-channel tile), the
// output channels fastest (a pixel tile's CTAs run at once, so its input rows come from DRAM about
// once); the ring's slots and phases run on from one tile to the next, so the producers start a
// tile's chunks while the consumers store the last one's outputs. p.workspace:
// streamed_workspace_bytes, packed.
template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    sepconv_fwd_streamed_kernel(const SepConvParams p, const int stages) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
  using namespace cute;
  using Cute = WgmmaFwdCute<Traits>;
  using Element = typename Cute::Element;
  using T = typename Traits::T;
  constexpr int BM = Traits::BM, BN = Traits::BN, BK = Traits::BK;
  using Layout = StreamedFwdLayout<Traits>;
  __shared__ FwdTapTable<BM, Traits::kKH, Traits::kKW> px;  // the producers' current pixel tile
  __shared__ uint64_t full[Traits::kMaxStages];   // slot s holds its chunk: 256 producer arrivals + weight bytes
  __shared__ uint64_t empty[Traits::kMaxStages];  // slot s is free: 256 consumer arrivals
  XSEP_DYNAMIC_SHARED(smem_raw);
  unsigned char* smem = align_for_wgmma<Layout::kAlign>(smem_raw);
  Element* z = reinterpret_cast<Element*>(smem);
  Element* w = reinterpret_cast<Element*>(smem + static_cast<size_t>(stages) * Traits::kZChunkBytes);
  auto z_chunk = [&](int s) { return make_tensor(make_smem_ptr(z + s * BM * BK), typename Cute::ZChunkLayout{}); };
  auto w_slot = [&](int s) { return make_tensor(make_smem_ptr(w + s * BN * BK), typename Cute::WSlotLayout{}); };
  const int steps = Layout::kpad(p.Cmid) / BK;
  // Fewer than 2^31 pixels and tiles (streamed_forward_applies): 32-bit index arithmetic.
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int cout_tiles = (p.Cout + BN - 1) / BN;
  const int tiles = static_cast<int>((pixels + BM - 1) / BM) * cout_tiles;

  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) {
      mbarrier_init(&full[s], Traits::kProducerThreads + 1);  // + the weight copy's expect_tx
      mbarrier_init(&empty[s], Traits::kConsumerThreads);
    }
  }
  __syncthreads();

  if (threadIdx.x >= Traits::kConsumerThreads) {
    // ---- producers --------------------------------------------------------------------------
    constexpr int kProducerBarrier = 1;  // named barrier id: the producers alone
    const int pt = threadIdx.x - Traits::kConsumerThreads;
    const unsigned char* workspace = static_cast<const unsigned char*>(p.workspace);
    const float* packed_dw =
        reinterpret_cast<const float*>(workspace + streamed_dw_offset_bytes<Traits>(p.Cout, p.Cmid));
    int slot = 0;
    uint32_t phase = 1;  // empty[s]'s phase before the first: complete (every slot starts free)
#pragma unroll 1
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int ct = tile % cout_tiles;
      const int64_t p0 = static_cast<int64_t>(tile / cout_tiles) * BM;
      named_barrier_sync(kProducerBarrier, Traits::kProducerThreads);  // all done with the last tile's table
      if (pt < BM) px.template fill_row<true>(p, p0, pt);
      named_barrier_sync(kProducerBarrier, Traits::kProducerThreads);
      const T* packed_w = reinterpret_cast<const T*>(workspace) + static_cast<int64_t>(ct) * steps * (BN * BK);
      const QuadDepthwise<T, BM, BK, Traits::kProducerThreads, streamed_dw_lanes<Traits>(), /*kNarrow=*/true> depthwise(
          p, p0, pt, packed_dw);
#pragma unroll 1
      for (int g = 0; g < steps; ++g) {
        mbarrier_wait_parity(&empty[slot], phase);
        if (pt == 0) {
          mbarrier_arrive_expect_tx(&full[slot], Traits::kWSlotBytes);
          bulk_copy_to_shared(w + slot * BN * BK, packed_w + static_cast<int64_t>(g) * (BN * BK), Traits::kWSlotBytes,
                              &full[slot]);
        }
        // A channel group (4 to 16 bytes from a multiple of its size) is contiguous in the swizzled
        // layout. (Its address formed in 32 bits, as the wgmma forward's, cost the TF32 builds'
        // producers registers at their limit of 128: they spilled.)
        depthwise.chunk(p, px, g, [&](int m, int kk, auto v) { store_shared(&z_chunk(slot)(m, kk), v); });
        fence_shared_for_wgmma();  // this thread's Z stores, visible to wgmma once the slot is full
        mbarrier_arrive(&full[slot]);
        if (++slot == stages) slot = 0, phase ^= 1;
      }
    }
  } else {
    // ---- consumers --------------------------------------------------------------------------
    typename Cute::TiledMma mma;
    ThrMMA thr_mma = mma.get_slice(threadIdx.x);
    Tensor acc = partition_fragment_C(mma, Shape<Int<BM>, Int<BN>>{});  // fp32, (MMA, MMA_M, MMA_N)
    int slot = 0, previous = 0;
    uint32_t phase = 0;
#pragma unroll 1
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int co0 = tile % cout_tiles * BN;
      const int64_t p0 = static_cast<int64_t>(tile / cout_tiles) * BM;
      clear(acc);
#pragma unroll 1
      for (int g = 0; g < steps; ++g) {
        mbarrier_wait_parity(&full[slot], phase);
        Tensor a_frag = thr_mma.make_fragment_A(thr_mma.partition_A(z_chunk(slot)));  // (MMA, MMA_M, MMA_K)
        Tensor b_frag = thr_mma.make_fragment_B(thr_mma.partition_B(w_slot(slot)));   // (MMA, MMA_N, MMA_K)
        warpgroup_fence_operand(acc);
        wgmma_arrive();
        gemm(mma, a_frag, b_frag, acc);
        wgmma_commit();
        wgmma_wait<1>();  // the batch of step g - 1 has read its slot: free it
        warpgroup_fence_operand(acc);
        if (g > 0) mbarrier_arrive(&empty[previous]);
        previous = slot;
        if (++slot == stages) slot = 0, phase ^= 1;
      }
      wgmma_wait<0>();
      warpgroup_fence_operand(acc);
      mbarrier_arrive(&empty[previous]);  // the tile's last chunk: its slot is the next tile's

      // Bias, one rounding, stores from registers while the producers fill the next tile's first
      // slots. (coords made here, not kept across the main loop: registers are short beside acc.)
      const auto coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<BM>, Int<BN>>{}));
      int64_t y_rows[2];
      accumulator_rows</*kNarrow=*/true>(p, coords, p0, y_rows);
      store_accumulator_tile<T, /*kBatch=*/1>(p, acc, coords, y_rows, co0);
    }
  }
#endif
}

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
