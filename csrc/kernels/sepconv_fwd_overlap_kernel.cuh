// The overlapped forward on Hopper (wgmma, sm_90a): the wgmma forward's plan (Z computed once per
// pixel tile and kept whole in shared memory, then multiplied by every tile of the pointwise weight;
// sepconv_fwd_wgmma_kernel.cuh) with the depthwise phase and the GEMM on different warps, so they
// run at the same time. For channels_last 3x3 layers in fp16, bf16 and fp32 on TF32: two Z buffers
// where Z of 64 pixels fits twice in shared memory (16-bit: up to ~800 channels, the 728-channel
// layers and every shallower one; TF32: ~400), else one (16-bit: up to ~1600, the 1024- and
// 1536-channel layers; TF32: ~800, the 728-channel ones; the depthwise phase then waits for the GEMM
// of the tile before, but runs on eight warps where the wgmma forward's 64-pixel build has four).
//
//   CTA: persistent (one per SM), tiles of 64 output pixels x the output channels of a part (all of
//   them, or where the pixel tiles fill less than half the GPU, a share: `parts` CTAs per pixel
//   tile, each recomputing its Z), one after another; 384 threads; the Z buffers used by tiles in
//   turn.
//   Producers (threads 128..383, two warpgroups): for each of the CTA's pixel tiles, the tap table,
//     then, once the tile's Z buffer is free (z_free), the tile's Z pass after pass
//     (QuadDepthwise: a thread's item is four channels of four neighbouring pixels, 64 channels a
//     pass; TF32: two of four, 32 a pass), stored in the 64-byte-swizzled K-major layout wgmma
//     reads, fenced for the async proxy, and announced (z_full).
//   Consumers (threads 0..127, one warpgroup of 64 pixels): for each tile, once its Z is there, each
//     tile of 128 of its part's output channels: one wgmma batch per 64 bytes of channels, from a ring of weight
//     chunks that thread 0 fills by bulk copies (as the wgmma forward: one batch in flight, a slot
//     refilled once the batch that read it has retired; the chunk sequence runs on from one pixel
//     tile to the next, so the next tile's first chunks land during this one's last stores);
//     after the last output-channel tile's batches, the Z buffer is released; bias, one rounding,
//     16-byte stores from the accumulators (store_permuted_tile).
//
// Why: in the wgmma forward the three phases of a CTA run one after another on the same warps. On
// an H200 (phase clocks, 3ac7082, 728 -> 728 @19 bf16 N=32) a CTA of 128 pixels took 81 us: 40 in
// the depthwise phase, 28 in the GEMM, 12 in the stores; its Z (186 KB) leaves one CTA per SM, so
// nothing else hides them, and the 91 tiles of that layer leave 41 of 132 SMs idle. Here the CUDA
// cores' depthwise work (eight warps) and the tensor cores' GEMM run at once; with a tile of half
// the pixels each phase takes about half as long, so a tile costs about the longer of the two rather
// than their sum, and the 181 tiles of 64 pixels spread over every SM. The price: the weight is
// read from L2 once per 64 pixels instead of 128 (the streamed kernel, sepconv_fwd_streamed_kernel.cuh,
// paid instead by recomputing Z once per output-channel tile, ~6x at 728: it lost).
//
// The weights pair build (OverlapPair::kWeights, XSEP_FWD_PAIR=weights) halves that price: CTAs run
// in clusters of two that take neighbouring pixel tiles with the same output channels, so their
// weight chunks are the same sequence; each CTA's thread 0 copies half of every chunk (64 of its
// 128 output channels) from L2 into the slot of both CTAs at once (a multicast bulk copy,
// completing on each CTA's `landed` barrier, which expects the whole chunk). A slot is refilled
// only once both CTAs' consumers have read it: each consumer's thread 0 arrives on its own CTA's
// `empty` barrier and on the peer's (2 arrivals a use); the fetching thread refills the slots both
// have released, asking without waiting after each step, and waits only for a chunk its consumers
// need next. So a consumer runs up to a ring's length ahead of its peer's, and the weight comes
// from L2 once per 128 pixels, as in the wgmma forward. All shared state is in dynamic shared
// memory, at the same offsets in both CTAs (the barriers a peer reaches by mapa); a cluster barrier
// after the barriers' initialisation and another before exit (no CTA leaves while its peer may
// still arrive on its barriers or copy into it). With an odd number of pixel tiles the last pair's
// second tile has no pixels: its CTA reads and releases the chunks and stores nothing.
//
// The Z pair build (OverlapPair::kZ, XSEP_FWD_PAIR=z) is for the layers whose pixel tiles leave SMs
// idle (N=32: the 1024+ layers' 50 tiles, split over output channels, each part recomputing Z; the
// 728 @19 layer's 181 tiles on 132 SMs, two rounds for some): both CTAs of a cluster take the same
// pixel tile, rank r's producers compute half its depthwise passes (the first half, or the rest)
// and, once all of them have stored and fenced theirs (a named barrier), one of them copies those Z
// chunks into the peer's buffer (bulk copies from shared memory to the peer's, completing on the
// peer's `z_full`, where one of the peer's producers announced them); each consumer multiplies the
// whole Z by half the part's output channels. No pixel's depthwise work is done twice, and a tile
// is two half-size items. A buffer is refilled once both consumers have released it (`z_free`
// counts both CTAs' consumer threads; the peer's arrive remotely); that also says the peer's copy
// out of it has landed, as the peer's consumer waited for it first.
//
// Depthwise arithmetic as QuadDepthwise's: fp32 products and sums in tap order, rounded once to the
// storage type, then the intermediate activation.
//
// Built only with CuTe's headers and only for sm_90a, like the wgmma forward; the host emulation
// (tests/cpp/overlap_fwd_emulation.cpp) runs it with stand-ins for wgmma, the mbarriers, the named
// barriers, the bulk copies and (the pair build) the cluster's multicast, remote arrivals and
// barrier, each thread a std::thread, a cluster's two CTAs at once.
#pragma once

#include <cstdint>
#include <type_traits>

#include "bulk_copy.cuh"
#include "cluster.cuh"
#include "cp_async.cuh"  // store_shared_at, XSEP_DYNAMIC_SHARED
#include "element_types.cuh"
#include "phase_clocks.cuh"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_fwd_quad_depthwise.cuh"
#include "sepconv_fwd_resident_kernel.cuh"  // resident_cout_range
#include "sepconv_fwd_wgmma_kernel.cuh"     // WgmmaFwdCute, the weights' pack, store_permuted_tile
#include "sepconv_params.h"
#include "wgmma_common.cuh"

namespace xsep {

// kTwoRuns_: quads an output row ends inside take two windows (QuadDepthwise's kTwoRuns; else the
// per-pixel path), where the producers' registers allow it. kZBuffers_: 2 (the depthwise phase of
// a tile during the GEMM of the one before) or 1 (Z too wide for two). kPair_: the pair builds (two
// CTAs of a cluster): kWeights, on neighbouring pixel tiles with the same output channels, each
// weight chunk read from L2 once for both (half by each CTA, multicast into both rings); kZ, on one
// pixel tile, each CTA computing half its Z (and copying it into the other's buffer) and multiplying
// the whole Z by half the output channels. T_: __half, __nv_bfloat16, or float (TF32 wgmma: Z and the
// weight rounded to TF32).
enum class OverlapPair : int { kNone, kWeights, kZ };

template <typename T_, bool kTwoRuns_ = false, int kZBuffers_ = 2, OverlapPair kPair_ = OverlapPair::kNone>
struct OverlapFwdTraits {
  static_assert(kZBuffers_ == 1 || kZBuffers_ == 2, "one or two Z buffers");
  using T = T_;
  using Operand = T_;
  static constexpr int BM = 64;               // pixels per tile: one consumer warpgroup
  static constexpr int BN = 128;              // output channels per wgmma tile
  static constexpr int BK = 64 / sizeof(T_);  // channels per step: one 64-byte swizzle row
  static constexpr int kSplitN = 1;           // WgmmaFwdCute: one warpgroup along M
  static constexpr int kConsumerThreads = 128, kProducerThreads = 256;
  static constexpr int kThreads = kConsumerThreads + kProducerThreads;
  static constexpr int kMinStages = 3, kMaxStages = 16;
  static constexpr bool kChannelsLast = true;
  static constexpr int kKH = 3, kKW = 3;
  static constexpr int kVec = 16 / sizeof(T_);
  static constexpr bool kTwoRuns = kTwoRuns_;
  static constexpr int kZBuffers = kZBuffers_;
  static constexpr OverlapPair kPair = kPair_;
  static constexpr int kCluster = kPair_ == OverlapPair::kNone ? 1 : 2;
  // A depthwise pass: two Z chunks, so each producer has one item (16 channel groups x 16 quads =
  // 256): 64 channels in quartets (16-bit), 32 in pairs (fp32: quartets of 16-byte loads would not
  // leave the registers for the rest beside 168 a thread).
  static constexpr int kDwChunks = 2;
  static constexpr int kDwLanes = sizeof(T_) == 2 ? 4 : 2;
  static constexpr int kZChunkBytes = BM * 64;
  static constexpr int kWSlotBytes = BN * 64;
};

// What the CTA's roles share besides Z and the ring: the producers' tap table, the barriers, and
// the phase clocks' sums. Static shared memory in the one-CTA build; in the pair build, the start of
// the dynamic shared memory (a peer reaches its barriers at the same offset in its own).
template <class Traits>
struct OverlapShared {
  FwdTapTable<Traits::BM, Traits::kKH, Traits::kKW> px;
  uint64_t landed[Traits::kMaxStages];    // slot s: its weight chunk has landed (all of it)
  uint64_t empty[Traits::kMaxStages];     // the weights pairs: slot s read by both CTAs (2 arrivals)
  uint64_t z_full[Traits::kZBuffers];     // Z buffer b holds its tile: 256 producer arrivals
  uint64_t z_free[Traits::kZBuffers];     // Z buffer b is read: 128 consumer arrivals (Z pairs: 256)
  unsigned long long clock_sums[5 + 2];   // OverlapClockSum, then each role's mark
};

// Dynamic shared memory: [the pair build: OverlapShared][alignment slack][Z buffers: kZBuffers]
// [weight ring: stages slots].
template <class Traits>
struct OverlapFwdLayout {
  static constexpr int kAlign = 512;  // the 64-byte swizzle's pattern
  static constexpr size_t kSharedBytes = Traits::kCluster == 2 ? (sizeof(OverlapShared<Traits>) + 15) / 16 * 16 : 0;
  static __host__ __device__ int kpad(int cmid) { return (cmid + Traits::BK - 1) / Traits::BK * Traits::BK; }
  static __host__ __device__ size_t z_bytes(int cmid) {
    return static_cast<size_t>(kpad(cmid) / Traits::BK) * Traits::kZChunkBytes;
  }
  static __host__ __device__ size_t bytes(int cmid, int stages) {
    return kSharedBytes + kAlign + Traits::kZBuffers * z_bytes(cmid) + static_cast<size_t>(stages) * Traits::kWSlotBytes;
  }
};

// The pack: the wgmma forward's (pointwise weight as 128 x 64-byte ring slots, rows in
// permuted_column's order; the depthwise weight in fp32 quartets).
template <typename T>
using OverlapPackTraits = WgmmaFwdTraits<T, 64>;

#if defined(XSEP_WITH_CUTE)

// stages: slots of the weight ring (kMinStages..kMaxStages; dynamic shared memory
// OverlapFwdLayout::bytes(Cmid, stages)). parts: CTAs (one-CTA build) or pairs (pair builds) per
// pixel tile (weights pairs: pair of pixel tiles), each with the output channels resident_cout_range
// gives it (every part at least one tile of them: resident_cout_parts; Z pairs: 2 x parts parts, a
// pair's CTAs the two halves of its). Work item u is pixel tile (pair) u / parts, part u % parts (a
// pixel tile's parts run at once on neighbouring CTAs, so its input comes from DRAM about once);
// persistent: CTA (pair) b takes items b, b + CTAs (pairs), ..; in a weights pair, rank r takes
// pixel tile 2 * (u / parts) + r (past the last: a tile of no pixels, whose chunks it still reads
// and releases, storing nothing). Fewer than 2^31 pixels (the launcher's condition). p.workspace:
// the wgmma forward's workspace for OverlapPackTraits with the producers' channel groups
// (sepconv_fwd_wgmma_weights_pack_kernel<.., kDwLanes>). The pair builds are launched in clusters of
// two along x.
template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    sepconv_fwd_overlap_kernel(const SepConvParams p, const int stages, const int parts) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
  using namespace cute;
  using Cute = WgmmaFwdCute<Traits>;
  using Element = typename Cute::Element;
  using T = typename Traits::T;
  using PackTraits = OverlapPackTraits<T>;
  static_assert(PackTraits::BN == Traits::BN && PackTraits::BK == Traits::BK, "the wgmma forward's ring slots");
  constexpr int BM = Traits::BM, BN = Traits::BN, BK = Traits::BK;
  constexpr int kCluster = Traits::kCluster;
  constexpr bool kShareWeights = Traits::kPair == OverlapPair::kWeights, kShareZ = Traits::kPair == OverlapPair::kZ;
  constexpr uint32_t kChunkBytes = Traits::kWSlotBytes;
  using Layout = OverlapFwdLayout<Traits>;
  XSEP_DYNAMIC_SHARED(smem_raw);
  // The roles' shared state: static in the one-CTA build (which also tells this kernel from the
  // stub other architectures get: wgmma_body_built); in the pair build, dynamic, at the same offset
  // in both CTAs (mapa), with the marker beside it.
  OverlapShared<Traits>* state;
  if constexpr (kCluster == 1) {
    __shared__ OverlapShared<Traits> one_cta_state;
    state = &one_cta_state;
  } else {
    state = reinterpret_cast<OverlapShared<Traits>*>(smem_raw);
    mark_wgmma_code();
  }
  auto& px = state->px;
  uint64_t* landed = state->landed;
  uint64_t* empty = state->empty;
  uint64_t* z_full = state->z_full;
  uint64_t* z_free = state->z_free;
  constexpr int kZBuffers = Traits::kZBuffers;
  // Measurement only (XSEP_PHASE_CLOCKS=1, p.phase_clocks set): each role's first thread adds its
  // phases' cycles up here (OverlapClockSum; in shared memory, not registers, which the producers
  // are short of), from the clock at its phase's start (the last two slots).
  unsigned long long* clock_sums = state->clock_sums;
  constexpr int kSums = kOverlapPeerWait + 1, kProducerMark = kSums, kConsumerMark = kSums + 1;
  const bool clocks = p.phase_clocks != nullptr;
  // The cycles since the role's mark go to sum `to`; the mark moves to now.
  auto clock_phase = [&](int mark, int to) {
    const unsigned long long now = sm_cycles();
    clock_sums[to] += now - clock_sums[mark];
    clock_sums[mark] = now;
  };
  stamp_start(p.phase_clocks);
  unsigned char* smem = align_for_wgmma<Layout::kAlign>(smem_raw + Layout::kSharedBytes);
  const size_t z_bytes = Layout::z_bytes(p.Cmid);
  const int steps = Layout::kpad(p.Cmid) / BK;
  Element* w = reinterpret_cast<Element*>(smem + kZBuffers * z_bytes);
  auto w_slot = [&](int s) { return make_tensor(make_smem_ptr(w + s * BN * BK), typename Cute::WSlotLayout{}); };
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int pixel_tiles = static_cast<int>((pixels + BM - 1) / BM);
  const int items = (kShareWeights ? (pixel_tiles + 1) / 2 : pixel_tiles) * parts;
  const int rank = kCluster == 1 ? 0 : cluster_rank();
  const int unit = static_cast<int>(blockIdx.x) / kCluster, units = static_cast<int>(gridDim.x) / kCluster;
  const int my_items = unit < items ? (items - 1 - unit) / units + 1 : 0;
  // Item u's first pixel (this CTA's tile of it), and its output channels [begin, end) (this CTA's
  // half of them in a Z pair).
  auto first_pixel = [&](int u) {
    return static_cast<int64_t>(kShareWeights ? u / parts * 2 + rank : u / parts) * BM;
  };
  auto cout_range = [&](int u, int* begin, int* end) {
    if constexpr (kShareZ)
      resident_cout_range<PackTraits>(p.Cout, u % parts * 2 + rank, parts * 2, begin, end);
    else
      resident_cout_range<PackTraits>(p.Cout, u % parts, parts, begin, end);
  };
  // The CTA's weight chunks, one sequence over its items (a weights pair's two CTAs: the same
  // sequence): for each, the packed chunks of its part's output-channel tiles (channels co_begin..
  // in chunks co_begin / BN * steps ..). Thread 0 alone fetches them in order: issue_next announces
  // the next chunk's bytes on its slot's barrier and starts its bulk copy (in a weights pair, of its
  // half of the chunk, into both CTAs' slot; the peer copies the other half).
  const T* packed = static_cast<const T*>(p.workspace);
  int fetch_item = unit;     // the item whose chunks are being fetched
  int fetch_at = 0;          // the next of them, in the packed weight
  int fetch_end = 0;         // past its last
  int slot_of_next = 0;      // the next chunk's slot: chunks fetched % stages
  int fetched = 0;           // chunks fetched so far
  bool fetch_begun = false;  // fetch_at, fetch_end are fetch_item's
  // Whether a chunk is left to fetch (moving on to the next item once this one's are all fetched).
  auto more_to_fetch = [&] {
    while (fetch_item < items && (!fetch_begun || fetch_at == fetch_end)) {
      if (fetch_begun) fetch_item += units;
      fetch_begun = true;
      if (fetch_item < items) {
        int co_begin, co_end;
        cout_range(fetch_item, &co_begin, &co_end);
        fetch_at = co_begin / BN * steps;
        fetch_end = co_end > co_begin ? (co_end + BN - 1) / BN * steps : fetch_at;
      }
    }
    return fetch_item < items;
  };
  auto issue_next = [&] {  // after more_to_fetch() said there is one
    const T* chunk = packed + static_cast<int64_t>(fetch_at) * (BN * BK);
    mbarrier_arrive_expect_tx(&landed[slot_of_next], kChunkBytes);  // a weights pair: both halves land here
    if constexpr (!kShareWeights) {
      bulk_copy_to_shared(w + slot_of_next * BN * BK, chunk, kChunkBytes, &landed[slot_of_next]);
    } else {
      constexpr int kHalf = BN * BK / 2;  // elements: output channels rank * 64 .. of the chunk
      bulk_copy_multicast(w + slot_of_next * BN * BK + rank * kHalf, chunk + rank * kHalf, kChunkBytes / 2,
                          &landed[slot_of_next], 0x3);
    }
    ++fetch_at;
    ++fetched;
    if (++slot_of_next == stages) slot_of_next = 0;
  };
  // The one-CTA build and the Z pairs: the next chunk, into the slot the consumers just released.
  auto fetch_next = [&] {
    if (more_to_fetch()) issue_next();
  };
  // A weights pair: every chunk up to `last` whose slot both CTAs have released (empty: the use
  // before, fetched / stages - 1, complete), in order, stopping at the first whose slot is not free
  // yet, except that the chunks up to `need` are fetched even if that means waiting for the peer
  // (the consumers are about to read them). So the peer's lag stalls this CTA only when a chunk it
  // needs now is held up, not at every refill.
  auto fetch_released = [&](int64_t need, int64_t last) {
    while (fetched <= last && more_to_fetch()) {
      const int use = fetched / stages;
      if (use > 0) {
        const uint32_t parity = (use - 1) & 1;
        if (fetched > need) {
          if (!mbarrier_test_parity(&empty[slot_of_next], parity)) return;
        } else {
          const unsigned long long waited_from = clocks ? sm_cycles() : 0;
          mbarrier_wait_parity(&empty[slot_of_next], parity);
          if (clocks) clock_sums[kOverlapPeerWait] += sm_cycles() - waited_from;
        }
      }
      issue_next();
    }
  };
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) {
      mbarrier_init(&landed[s], 1);
      if constexpr (kShareWeights) mbarrier_init(&empty[s], 2);  // this CTA's consumers and the peer's
    }
    for (int b = 0; b < kZBuffers; ++b) {
      mbarrier_init(&z_full[b], Traits::kProducerThreads);
      mbarrier_init(&z_free[b], Traits::kConsumerThreads * (kShareZ ? 2 : 1));  // Z pair: the peer's too
    }
    // The first chunks land while the first Z is computed (the pair build: once both CTAs'
    // barriers exist, below).
    if constexpr (kCluster == 1)
      for (int s = 0; s < stages; ++s) fetch_next();
    if (clocks) {
      for (int i = 0; i < kSums; ++i) clock_sums[i] = 0;
      clock_sums[kProducerMark] = clock_sums[kConsumerMark] = sm_cycles();
    }
  }
  if constexpr (kCluster == 1) {
    __syncthreads();
  } else {
    cluster_sync();  // both CTAs' barriers initialised before either copies into the other
    if (threadIdx.x == 0) {
      if constexpr (kShareWeights)
        fetch_released(stages - 1, stages - 1);  // every slot's first use: free
      else
        for (int s = 0; s < stages; ++s) fetch_next();
    }
  }

  if (threadIdx.x >= Traits::kConsumerThreads) {
    // ---- producers: Z ------------------------------------------------------------------------
    constexpr int kProducerBarrier = 1;  // named barrier: the producers alone
    const int pt = threadIdx.x - Traits::kConsumerThreads;
    const float* packed_dw = reinterpret_cast<const float*>(static_cast<const unsigned char*>(p.workspace) +
                                                            wgmma_dw_offset_bytes<PackTraits>(p.Cout, p.Cmid));
    constexpr int kPassChannels = BK * Traits::kDwChunks;
    const int passes = (steps + Traits::kDwChunks - 1) / Traits::kDwChunks;
    // This CTA's passes (a Z pair: rank 0 the first half, rank 1 the rest) and their Z chunks, and
    // the chunks the peer computes (and copies here).
    const int half = (passes + 1) / 2;
    const int q_begin = kShareZ && rank == 1 ? half : 0, q_end = kShareZ && rank == 0 ? half : passes;
    auto chunk_of_pass = [&](int q) { return imin(q * Traits::kDwChunks, steps); };
    const uint32_t peer_bytes =
        kShareZ ? static_cast<uint32_t>(rank == 0 ? steps - chunk_of_pass(half) : chunk_of_pass(half)) *
                      Traits::kZChunkBytes
                : 0u;
#pragma unroll 1
    for (int u = unit, j = 0; u < items; u += units, ++j) {
      const int b = j % kZBuffers;
      const int64_t p0 = first_pixel(u);
      named_barrier_sync(kProducerBarrier, Traits::kProducerThreads);  // every producer is done with the last table
      if (pt < BM) px.template fill_row</*kNarrow=*/true>(p, p0, pt);
      named_barrier_sync(kProducerBarrier, Traits::kProducerThreads);
      const QuadDepthwise<T, BM, kPassChannels, Traits::kProducerThreads, Traits::kDwLanes, /*kNarrow=*/true,
                          Traits::kTwoRuns>
          depthwise(p, p0, pt, packed_dw);
      // Buffer b's use j / kZBuffers: the consumers released its use before (the first use waits
      // for the phase before the barrier's first, which counts as complete).
      mbarrier_wait_parity(&z_free[b], ((j / kZBuffers) & 1) ^ 1);
      if (clocks && pt == 0) clock_phase(kProducerMark, kOverlapBufferWait);
      const uint32_t z_at = static_cast<uint32_t>(b * z_bytes);
      // Pass q's group of channels kk (within the pass): chunk q * kDwChunks + kk / BK; a group past the
      // last chunk (Z's kpad) is not stored (its channels are past Cmid: zero, like the padding of
      // the chunks that are).
#pragma unroll 1
      for (int q = q_begin; q < q_end; ++q)
        depthwise.chunk(p, px, q, [&](int m, int kk, auto v) {
          const int c = q * Traits::kDwChunks + kk / BK;
          if (c < steps)
            store_shared_at(smem, z_at + c * Traits::kZChunkBytes + sw64_k_major_offset(m, kk % BK * sizeof(Element)),
                            v);
        });
      fence_shared_for_wgmma();  // this thread's Z stores, visible to wgmma (and the bulk copies) once
                                 // the buffer is full
      if constexpr (kShareZ) {
        // Once every producer's chunks are stored and fenced, this CTA's chunks into the peer's
        // buffer b (free: z_free counted the peer's consumers too), landing on the peer's z_full.
        named_barrier_sync(kProducerBarrier, Traits::kProducerThreads);
        if (pt == 0)
          for (int c = chunk_of_pass(q_begin); c < chunk_of_pass(q_end); ++c)
            bulk_copy_to_peer(smem + z_at + c * Traits::kZChunkBytes, Traits::kZChunkBytes, &z_full[b], rank ^ 1);
      }
      if (clocks && pt == 0) clock_phase(kProducerMark, kOverlapDepthwise);  // before the arrive: the
      // consumers' wait orders it. A Z pair's buffer is full once the peer's chunks have landed too:
      // one arrival announces their bytes.
      if (kShareZ && pt == 0)
        mbarrier_arrive_expect_tx(&z_full[b], peer_bytes);
      else
        mbarrier_arrive(&z_full[b]);
    }
  } else {
    // ---- consumers: the GEMM and the stores ------------------------------------------------------
    constexpr int kConsumerBarrier = 2;  // named barrier: the consumer warpgroup alone
    typename Cute::TiledMma mma;
    ThrMMA thr_mma = mma.get_slice(threadIdx.x);
    Tensor acc = partition_fragment_C(mma, Shape<Int<BM>, Int<BN>>{});  // fp32, (MMA, MMA_M, MMA_N)
    const auto coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<BM>, Int<BN>>{}));
    int64_t g = 0;       // the chunk of this step, counted over the CTA's items
    int slot = 0;        // its slot, g % stages
    uint32_t phase = 0;  // the parity of its slot's barrier phase: (g / stages) % 2
    int released = 0;    // the slot of chunk g - 1
#pragma unroll 1
    for (int u = unit, j = 0; u < items; u += units, ++j) {
      const int b = j % kZBuffers;
      int64_t y_rows[2];  // where this thread's two accumulator rows go
      accumulator_rows</*kNarrow=*/true>(p, coords, first_pixel(u), y_rows);
      int co_begin, co_end;
      cout_range(u, &co_begin, &co_end);
      Element* z = reinterpret_cast<Element*>(smem + b * z_bytes);
      auto z_chunk = [&](int c) { return make_tensor(make_smem_ptr(z + c * BM * BK), typename Cute::ZChunkLayout{}); };
      mbarrier_wait_parity(&z_full[b], (j / kZBuffers) & 1);  // the producers' stores to buffer b, fenced
      if (clocks && threadIdx.x == 0) clock_phase(kConsumerMark, kOverlapZWait);
      // Buffer b read (a Z pair: both CTAs' consumers arrive on both CTAs' z_free).
      auto release_z = [&] {
        mbarrier_arrive(&z_free[b]);
        if constexpr (kShareZ) mbarrier_arrive_remote(&z_free[b], rank ^ 1);
      };
      if (co_begin >= co_end) release_z();  // a part without channels (not launched so)
#pragma unroll 1
      for (int co0 = co_begin; co0 < co_end; co0 += BN) {
        clear(acc);
#pragma unroll 1
        for (int step = 0; step < steps; ++step, ++g) {
          // A weights pair: chunk g fetched (and what else the peer has released meanwhile).
          if (kShareWeights && threadIdx.x == 0) fetch_released(g, g - 2 + stages);
          mbarrier_wait_parity(&landed[slot], phase);                                   // chunk g landed
          Tensor a_frag = thr_mma.make_fragment_A(thr_mma.partition_A(z_chunk(step)));  // (MMA, MMA_M, MMA_K)
          Tensor b_frag = thr_mma.make_fragment_B(thr_mma.partition_B(w_slot(slot)));   // (MMA, MMA_N, MMA_K)
          const int this_slot = slot;
          if (++slot == stages) slot = 0, phase ^= 1;
          warpgroup_fence_operand(acc);
          wgmma_arrive();
          gemm(mma, a_frag, b_frag, acc);
          wgmma_commit();
          wgmma_wait<1>();  // the batch of step g - 1 has retired
          warpgroup_fence_operand(acc);
          // Once the whole warpgroup is past that wait, chunk g - 1's slot is free here: thread 0
          // refills it with chunk g - 1 + stages (the next in order); in a weights pair, it says so
          // to both CTAs' empty barriers and fetches whatever chunks both have released by now,
          // without waiting (the peer's release of this slot may come later: the top of a later
          // step fetches it then).
          named_barrier_sync(kConsumerBarrier, Traits::kConsumerThreads);
          if (threadIdx.x == 0 && g > 0) {
            if constexpr (kShareWeights) {
              mbarrier_arrive(&empty[released]);
              mbarrier_arrive_remote(&empty[released], rank ^ 1);
              fetch_released(/*need=*/-1, g - 1 + stages);
            } else {
              fetch_next();
            }
          }
          released = this_slot;
        }
        wgmma_wait<0>();
        warpgroup_fence_operand(acc);
        // After the last output-channel tile's batches, nothing reads buffer b: the producers may
        // fill it with a later tile's Z while these stores run.
        if (co0 + BN >= co_end) release_z();
        store_permuted_tile<T>(p, acc, coords, y_rows, co0);
      }
      if (clocks && threadIdx.x == 0) clock_phase(kConsumerMark, kOverlapGemmStores);
    }
    // The record: thread 0's (phase_record), once the producers' last sums are in (they precede
    // their last arrive, which this thread's last wait acquired).
    if (unsigned long long* r = phase_record(p.phase_clocks)) {
      for (int i = 0; i < kSums; ++i) r[kClockStamps + i] = clock_sums[i];
      r[kClockCount] = my_items;
    }
    stamp_end(p.phase_clocks);
  }
  // The pair builds: neither CTA leaves while the other may still arrive on its barriers or copy
  // into it.
  if constexpr (kCluster == 2) cluster_sync();
#endif
}

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
