// The fused forward on Hopper's warpgroup MMA (wgmma, sm_90a), for channels_last 3x3 layers with
// 16-byte aligned channels (every Xception layer) in fp16, bf16, and fp32 on TF32 (64 pixels per
// CTA, Z up to 768 channels): the resident kernel's plan (sepconv_fwd_resident_kernel.cuh) with the
// pointwise GEMM moved from WMMA to wgmma.
//
//   1. Z[BM x Cmid] = depthwise(x) of the CTA's BM pixels, computed once into shared memory
//      (sepconv_fwd_quad_depthwise.cuh: a thread's items are two or four channels of four
//      neighbouring pixels, which on a row share a 3 x 6 input window) in the K-major, 64-byte-swizzled layout
//      wgmma reads directly (CuTe's GMMA layout atoms: chunks of BM pixels x 64 bytes of channels).
//   2. For each tile of 128 output channels: Y = Z . W^T, one wgmma batch (BM/64 warpgroups of
//      64 x 128 x BK) per BK channels (64 bytes of them: 32 16-bit, 16 fp32). The weight is packed
//      first (sepconv_fwd_wgmma_pack_kernel: zero-padded, TF32-rounded for fp32) into chunks laid
//      out exactly as a ring slot, so one thread moves a chunk with one bulk copy (bulk_copy.cuh),
//      `stages - 1` chunks ahead, into a ring of `stages` slots; a transaction barrier per slot says
//      when it landed. The bulk copies write through the async proxy wgmma reads through, so no
//      proxy fence (which would wait for every copy in flight) sits in the loop. One wgmma batch
//      stays in flight while the warps move on to the barrier that frees the slot before it and
//      the next step's wait. The first chunks are in flight during step 1, and the next tile's
//      while a tile's epilogue runs.
//   3. Epilogue per tile: accumulators plus bias, rounded once, stored from registers, so the ring
//      stays free for the next tile's chunks. The weight's rows are packed in an order
//      (permuted_column) that gives each thread eight neighbouring output channels: 16-byte
//      stores, a warp's covering 8 pixels x 64 contiguous bytes (fp32: 32).
//
// Why: the resident kernel's WMMA fragments are loaded through registers from shared memory, and
// its 32-pixel tiles make every CTA stream the whole pointwise weight from L2 for 32 rows of GEMM;
// here 128 pixels share each weight chunk (64 for Cmid > 768, to fit Z) and the tensor cores read
// both operands from shared memory themselves. Every chunk is read from L2 by every CTA, so the
// copies in flight set the pace (Little's law: bytes in flight = bandwidth x latency): the launcher
// gives the ring every slot shared memory holds without losing a CTA per SM (4 to 16). (Fed by
// 16-byte cp.async copies instead, with the fence they need, the ring drained at every step: on an
// H200 four slots ran as fast as five to eight; gpu-checks.md.)
//
// Built only with CuTe's headers (XSEP_WITH_CUTE: the nvidia-cutlass wheel) and only for sm_90a;
// elsewhere the kernel is an empty stub that the launcher never starts (wgmma_body_built). The
// host emulation (tests/cpp/wgmma_fwd_emulation.cpp) runs it with a stand-in for the warpgroup MMA
// that reads the operands through the descriptors CuTe builds, as the PTX ISA defines them.
#pragma once

#include <cstdint>
#include <type_traits>

#include "bulk_copy.cuh"
#include "cp_async.cuh"  // store_shared_at
#include "element_types.cuh"
#include "phase_clocks.cuh"
#include "sepconv_fwd_band.cuh"
#include "sepconv_fwd_epilogue.cuh"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_fwd_quad_depthwise.cuh"
#include "sepconv_fwd_resident_kernel.cuh"
#include "sepconv_params.h"
#include "wgmma_common.cuh"

namespace xsep {

// The pointwise-weight chunks and the ring of them; the tile's pixels and threads, the kernel size.
// T: __half, __nv_bfloat16, or float (TF32 wgmma: operands rounded to TF32 in shared memory).
// kSplitN_: warpgroups along the output channels. 1: BM / 64 warpgroups of 64 x 128; 2 (for
// measurement, XSEP_FWD_WARPGROUPS=4 at 128 pixels): twice the warps, each warpgroup 64 x 64 of a
// tile, so the depthwise phase (and the epilogue) has 16 warps to hide its load latency with where
// Z leaves room for one CTA per SM. kMinBlocks_: the CTAs per SM the build is for (launch bounds):
// two for 128 pixels on one warpgroup along the channels (at most 128 registers a thread: channel
// pairs in the depthwise phase), where the shallow layers fit two; 1 (where only one fits: the
// 728-channel layers; XSEP_FWD_CTAS) lifts that to 255 and takes channel quartets and two-window
// quads. kPrefetch_: the depthwise phase keeps the next chunk's loads in flight during a chunk's
// arithmetic (registers for two chunks' loads; XSEP_FWD_PREFETCH=1, for measurement): by default
// in the one-CTA build at 128 pixels (the launcher passes false for its build without), and in the
// 64-pixel kernel (128 threads, up to 255 registers: 197-241 against 120-149 without, so two CTAs
// per SM where shared memory would hold three or four: TF32's shallow layers).
template <typename T_, int BM_, int kSplitN_ = 1, int kMinBlocks_ = (kSplitN_ == 1 ? 2 : 1),
          bool kPrefetch_ = (BM_ == 128 && kSplitN_ == 1 && kMinBlocks_ == 1)>
struct WgmmaFwdTraits {
  using T = T_;
  using Operand = T_;
  static constexpr int BM = BM_;              // pixels per CTA: 64 per warpgroup
  static constexpr int BN = 128;              // output channels per tile (the wgmma N)
  static constexpr int BK = 64 / sizeof(T_);  // channels per step: one 64-byte swizzle row
  // Slots in the weight ring (a launch argument): chunks are copied stages - 1 ahead; a slot is
  // refilled as soon as every warpgroup has retired the wgmma batch that read it (one stays in
  // flight: the slot of the step before).
  static constexpr int kMinStages = 4, kMaxStages = 16;
  static constexpr int kSplitN = kSplitN_;
  static constexpr int kWarpgroups = BM_ / 64 * kSplitN_;
  static constexpr int kThreads = 128 * kWarpgroups;
  static constexpr bool kChannelsLast = true;
  static constexpr int kKH = 3, kKW = 3;
  static constexpr int kVec = 16 / sizeof(T_);
  // Two CTAs per SM where shared memory allows (the shallow layers): at most 128 registers for 256
  // threads (512 threads: one CTA, the same 128). The accumulators (64 per thread; 32 with kSplitN
  // 2) are not live during the depthwise phase.
  static constexpr int kMinBlocks = kMinBlocks_;
  static constexpr bool kPrefetch = kPrefetch_;
  static_assert(!kPrefetch_ || kMinBlocks_ * kSplitN_ * BM_ / 64 * 128 <= 256, "registers for two chunks' loads");
  // Bytes of one Z chunk (BM x BK) and one weight slot (BN x BK): multiples of the 512-byte
  // swizzle atom, so every chunk starts on one.
  static constexpr int kZChunkBytes = BM_ * 64;
  static constexpr int kWSlotBytes = BN * 64;
};

// Dynamic shared memory: [alignment slack][Z: kpad / BK chunks][weight ring: stages slots]. wgmma's
// 64-byte-swizzled operands must start on 512-byte boundaries (the pattern); the slack aligns Z to
// one wherever dynamic shared memory starts (after the static pixel table).
template <class Traits>
struct WgmmaFwdLayout {
  static constexpr int kAlign = 512;  // align_for_wgmma<kAlign>'s slack
  static __host__ __device__ int kpad(int cmid) { return (cmid + Traits::BK - 1) / Traits::BK * Traits::BK; }
  static __host__ __device__ size_t z_bytes(int cmid) {
    return static_cast<size_t>(kpad(cmid) / Traits::BK) * Traits::kZChunkBytes;
  }
  static __host__ __device__ size_t bytes(int cmid, int stages) {
    return kAlign + z_bytes(cmid) + static_cast<size_t>(stages) * Traits::kWSlotBytes;
  }
};

// Where each of the CTA's pixels reads, with a bit per tap (the compact table; the epilogue finds
// its own output offsets): at 728 channels and 128 pixels its saving is the ring's fifth slot.
template <class Traits>
using WgmmaFwdPixelTable = FwdTapTable<Traits::BM, Traits::kKH, Traits::kKW>;

#if defined(XSEP_WITH_CUTE)

// The CuTe types of one traits: element type, smem layouts and the warpgroup MMA.
template <class Traits>
struct WgmmaFwdCute {
  using Element = CuteElement<typename Traits::T>;
  // One Z chunk: BM pixels x BK channels, K-major (channels contiguous), 64-byte swizzle.
  using ZChunkLayout = decltype(cute::tile_to_shape(cute::GMMA::Layout_K_SW64_Atom<Element>{},
                                                    cute::Shape<cute::Int<Traits::BM>, cute::Int<Traits::BK>>{}));
  // One slot of the weight ring: BN output channels x BK channels, the same atom.
  using WSlotLayout = decltype(cute::tile_to_shape(cute::GMMA::Layout_K_SW64_Atom<Element>{},
                                                   cute::Shape<cute::Int<Traits::BN>, cute::Int<Traits::BK>>{}));
  using Atom = typename WgmmaAtom<typename Traits::T, Traits::BN / Traits::kSplitN, cute::GMMA::Major::K,
                                  cute::GMMA::Major::K>::type;
  // BM / 64 warpgroups along M (pixels) by kSplitN along N (output channels).
  using TiledMma = decltype(cute::make_tiled_mma(
      Atom{}, cute::Layout<cute::Shape<cute::Int<Traits::BM / 64>, cute::Int<Traits::kSplitN>, cute::_1>>{}));
};

// The packed pointwise weight: for each tile of BN output channels, for each step of BK channels,
// one ring slot's image (BN x BK, the swizzled layout wgmma reads), zero past Cout and Cmid; fp32
// rounded to TF32 (to nearest, as the WMMA path rounds; wgmma would truncate). Chunk (tile t, step
// s) is chunk t * steps + s, so a CTA's chunks are one contiguous run.
template <class Traits>
__host__ __device__ inline int64_t wgmma_packed_weight_elements(int cout, int cmid) {
  const int64_t tiles = (cout + Traits::BN - 1) / Traits::BN;
  return tiles * WgmmaFwdLayout<Traits>::kpad(cmid) * Traits::BN;
}

// BK-channel chunks of Z per depthwise pass (QuadDepthwise's chunk: BK times this): two in the
// 64-pixel build for one CTA per SM (the 1024- and 1536-channel layers in 16 bits, the 728+ ones
// in TF32), whose 128 threads had one (channel group, quad) item a chunk (TF32: a pair of 16
// channels' chunk), so the phase was a chain of 32-96 chunks each waiting out its loads' latency:
// on the H200 (3ac7082, phase clocks) 67-104 us a CTA, ~2-5x the cost per value of the 128-pixel
// builds. Two chunks a pass halve the waits: 16-bit, two quartet items' loads in flight a thread
// (255 registers, no spills); TF32, one quartet item of 16-byte loads instead of a pair (231;
// four chunks spilled 248 bytes). One chunk elsewhere (the builds with more threads, or the
// registers of the prefetch build's two chunks).
template <class Traits>
__host__ __device__ constexpr int wgmma_dw_chunks() {
  return Traits::BM == 64 && Traits::kMinBlocks == 1 && !Traits::kPrefetch ? 2 : 1;
}

// Channels per depthwise work item (QuadDepthwise): four where every thread has whole items and
// the registers allow, else pairs (the kernels of two CTAs per SM at 256 threads have 128
// registers a thread, and spill with four).
template <class Traits>
__host__ __device__ constexpr int wgmma_dw_lanes() {
  return Traits::kMinBlocks * Traits::kThreads > 256
             ? 2
             : quad_lanes(Traits::BM, Traits::BK * wgmma_dw_chunks<Traits>(), Traits::kThreads);
}

// Whether quads an output row ends inside take two windows (QuadDepthwise's kTwoRuns): in the
// builds for one CTA per SM (up to 255 registers a thread: 176 with it at 128 pixels). Not in the
// 128-register ones, where the second window costs spills, nor in the 64-pixel ones for several
// CTAs per SM, whose ~25 more registers (bf16 144 -> 176, TF32 117 -> 142) would cost a CTA its
// place: four or three fit per SM where the ring is small (TF32's shallow layers).
template <class Traits>
__host__ __device__ constexpr bool wgmma_dw_two_runs() {
  return Traits::kMinBlocks == 1 && Traits::kThreads <= 256;
}

// Whether a build has the band path of the depthwise phase (sepconv_fwd_band.cuh, XSEP_FWD_DW=staged):
// the builds for one CTA per SM on one warpgroup per 64 pixels without the prefetch (the defaults
// where only one CTA fits), whose ring is the largest and idle during that phase.
template <class Traits>
__host__ __device__ constexpr bool wgmma_band_build() {
  return Traits::kMinBlocks == 1 && Traits::kSplitN == 1 && !Traits::kPrefetch;
}

// The workspace: the packed pointwise weight, then the depthwise weight in fp32 channel groups
// (sepconv_fwd_dw_pack_kernel with wgmma_dw_lanes: Cmid x 9 floats).
template <class Traits>
__host__ __device__ inline size_t wgmma_dw_offset_bytes(int cout, int cmid) {
  return static_cast<size_t>(wgmma_packed_weight_elements<Traits>(cout, cmid)) * sizeof(typename Traits::T);
}
template <class Traits>
__host__ __device__ inline size_t wgmma_workspace_bytes(int cout, int cmid) {
  return wgmma_dw_offset_bytes<Traits>(cout, cmid) + packed_dw_bytes(cmid);
}

// The output channel (within its tile) that row n of a packed weight slot holds where the rows are
// permuted for 16-byte output stores: within each group of 32 rows, row 8k + 2q + e holds channel
// 8q + 2k + e (an involution; BN a multiple of 32). The D fragment gives lane q of a quad columns
// 8j + 2q and 8j + 2q + 1 of every 8-column block j, so with this order its values of the four
// blocks of a group are channels 8q .. 8q + 7 of the group, contiguous in y (store_permuted_tile):
// one 16-byte store instead of four 4-byte ones.
__host__ __device__ constexpr int permuted_column(int n) {
  return n / 32 * 32 + (n % 8) / 2 * 8 + (n % 32) / 8 * 2 + n % 2;
}

#if defined(XSEP_WGMMA_DEVICE_CODE)
// Packs p.pw_weight into `packed` (wgmma_packed_weight_elements), 16 bytes per thread and step of
// a grid-stride loop (pieces first, first + stride, ..); neighbouring threads read neighbouring
// pieces of a weight row. kPermuted: the rows of each tile in permuted_column's order (the wgmma
// forward's; the streamed kernel's are in order).
template <class Traits, bool kPermuted>
__device__ __forceinline__ void pack_pw_weight(const SepConvParams& p, typename Traits::T* packed, int64_t first,
                                               int64_t stride) {
  using T = typename Traits::T;
  using Cute = WgmmaFwdCute<Traits>;
  constexpr int BN = Traits::BN, BK = Traits::BK, kVec = Traits::kVec;
  constexpr int kPiecesPerRow = BK / kVec, kPiecesPerChunk = BN * kPiecesPerRow;
  const int steps = WgmmaFwdLayout<Traits>::kpad(p.Cmid) / BK;
  const int64_t pieces = wgmma_packed_weight_elements<Traits>(p.Cout, p.Cmid) / kVec;
  const T* __restrict__ w = static_cast<const T*>(p.pw_weight);
  // Where element (n, k) of a slot sits: CuTe applies the swizzle to the shared-memory address (as
  // the hardware reads it), not to the layout's offset, so ask a slot tensor at a pattern-aligned
  // stand-in address (never dereferenced).
  using Element = typename Cute::Element;
  Element* const aligned = reinterpret_cast<Element*>(uintptr_t{1} << 20);
  const auto slot = cute::make_tensor(cute::make_smem_ptr(aligned), typename Cute::WSlotLayout{});
  for (int64_t v = first; v < pieces; v += stride) {
    const int64_t chunk = v / kPiecesPerChunk;
    const int in_chunk = static_cast<int>(v % kPiecesPerChunk);
    const int n = in_chunk / kPiecesPerRow, k = in_chunk % kPiecesPerRow * kVec;
    const int co = static_cast<int>(chunk / steps) * BN + (kPermuted ? permuted_column(n) : n);
    const int cm = static_cast<int>(chunk % steps) * BK + k;
    Vec16<T> piece;
    piece.u = make_uint4(0, 0, 0, 0);
    if (co < p.Cout && cm < p.Cmid) {  // Cmid % kVec == 0: a piece is wholly in or out
      piece.u = __ldg(reinterpret_cast<const uint4*>(w + static_cast<int64_t>(co) * p.Cmid + cm));
      if constexpr (std::is_same_v<T, float>) {
#pragma unroll
        for (int j = 0; j < kVec; ++j) piece.v[j] = round_to_tf32(piece.v[j]);
      }
    }
    // 16 bytes from a multiple of kVec channels are contiguous in the swizzled slot.
    *reinterpret_cast<uint4*>(packed + chunk * (BN * BK) + (&slot(n, k) - aligned)) = piece.u;
  }
}
#endif

// The pointwise weight packed alone, its rows in order (pack_pw_weight; the streamed kernel's).
template <class Traits>
__global__ void sepconv_fwd_wgmma_pack_kernel(const SepConvParams p, typename Traits::T* packed) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
  pack_pw_weight<Traits, /*kPermuted=*/false>(p, packed, blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x,
                                              static_cast<int64_t>(gridDim.x) * blockDim.x);
#endif
}

// The wgmma forward's workspace in one launch: the pointwise weight (pack_pw_weight, rows in
// permuted_column's order), then the depthwise weight in fp32 groups of kLanes (pack_dw_weights),
// each over the whole grid. Two launches before: the second, tiny, cost a launch's gap a forward.
template <class Traits, int kLanes>
__global__ void sepconv_fwd_wgmma_weights_pack_kernel(const SepConvParams p, typename Traits::T* packed,
                                                      float* packed_dw) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  pack_pw_weight<Traits, /*kPermuted=*/true>(p, packed, first, stride);
  pack_dw_weights<typename Traits::T, kLanes>(p, packed_dw, first, stride);
#endif
}

// Two neighbouring output channels at `at` (the first even; y 16-byte aligned): v0, v1 rounded once
// (fp32: 8 bytes, 16-bit: 4).
template <typename T>
__device__ __forceinline__ void store_output_pair(T* at, float v0, float v1) {
  if constexpr (std::is_same_v<T, float>) {
    *reinterpret_cast<float2*>(at) = make_float2(v0, v1);
  } else {
    Vec16<T> pair;  // the first two lanes; one 4-byte store
    pair.v[0] = from_float<T>(v0), pair.v[1] = from_float<T>(v1);
    *reinterpret_cast<uint32_t*>(at) = pair.u.x;
  }
}

#if defined(XSEP_WITH_CUTE)
// The bias of output channels at, at + 1 (even, below Cout) as floats: one load of the pair where
// the bias is aligned for it (`paired`), else two.
template <typename T>
__device__ __forceinline__ void load_bias_pair(const T* at, bool paired, float& b0, float& b1) {
  if (paired) {
    if constexpr (std::is_same_v<T, float>) {
      const float2 b = __ldg(reinterpret_cast<const float2*>(at));
      b0 = b.x, b1 = b.y;
    } else {
      Vec16<T> pair;  // the first two lanes
      pair.u.x = __ldg(reinterpret_cast<const unsigned int*>(at));
      b0 = to_float(pair.v[0]), b1 = to_float(pair.v[1]);
    }
  } else {
    b0 = to_float(__ldg(at)), b1 = to_float(__ldg(at + 1));
  }
}

// The output offsets of the two rows of a wgmma accumulator tile a thread holds (`coords`: its
// (pixel, channel) indices in the tile, as partition_C gives them), for the tile of pixels from p0:
// -1 past the last pixel. The D fragment gives a thread rows r and r + 8 of its warpgroup's 64.
// Two divisions (kNarrow: fwd_pixel_origin's), once per pixel tile, not per output-channel tile.
template <bool kNarrow = false, class Coords>
__device__ __forceinline__ void accumulator_rows(const SepConvParams& p, const Coords& coords, int64_t p0,
                                                 int64_t (&y_rows)[2]) {
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int m0 = cute::get<0>(coords(0));
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t pix = p0 + m0 + 8 * h;
    y_rows[h] = pix < pixels ? fwd_pixel_origin<kNarrow>(p, pix).y_base : -1;
  }
}

// Bias, one rounding, stores from registers: a wgmma accumulator tile `acc` (fp32; `coords` as
// above) of the output channels from co0, in the rows at y_rows (accumulator_rows). For each
// 8-channel block j of the tile, the D fragment gives a thread values 4j .. 4j + 3: channels c,
// c + 1 of row r, then the same channels of row r + 8 (r and c its own), c 8 past block j - 1's.
// A block's bias pair is loaded once for both rows, kBatch blocks' loads at a time, ahead of their
// stores (each store used to wait for its own two loads); kBatch 1 where registers are short (the
// streamed kernel's 128 a thread, 96 of them accumulators at 192 channels). Every address is one
// base a tile plus a constant (a pointer per block, kept across a persistent CTA's tiles, spilled).
template <typename T, int kBatch = 4, class Acc, class Coords>
__device__ __forceinline__ void store_accumulator_tile(const SepConvParams& p, const Acc& acc, const Coords& coords,
                                                       const int64_t (&y_rows)[2], int co0) {
  constexpr int kValues = decltype(cute::size(acc))::value, kBlocks = kValues / 4;
  static_assert(kValues % 4 == 0 && kBlocks % kBatch == 0, "whole 8-channel blocks, in batches");
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  const bool paired = reinterpret_cast<uintptr_t>(bias) % (2 * sizeof(T)) == 0;
  const int c0 = co0 + cute::get<1>(coords(0));  // this thread's first channel; block j's: c0 + 8j
  const T* bias_at = bias != nullptr ? bias + c0 : nullptr;
  T* const y = static_cast<T*>(p.y);
  T* y_at[2] = {y_rows[0] >= 0 ? y + y_rows[0] + c0 : y, y_rows[1] >= 0 ? y + y_rows[1] + c0 : y};
#pragma unroll
  for (int j0 = 0; j0 < kBlocks; j0 += kBatch) {
    float b[kBatch][2];
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      b[j][0] = b[j][1] = 0.f;
      if (bias != nullptr && c0 + 8 * (j0 + j) < p.Cout) load_bias_pair(bias_at + 8 * (j0 + j), paired, b[j][0], b[j][1]);
    }
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      if (c0 + 8 * (j0 + j) >= p.Cout) continue;  // Cout % kVec == 0: the pair is inside too
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int i = 4 * (j0 + j) + 2 * h;
        if (y_rows[h] >= 0) store_output_pair(y_at[h] + 8 * (j0 + j), acc(i) + b[j][0], acc(i + 1) + b[j][1]);
      }
    }
  }
}

// store_accumulator_tile's job for a tile whose weight rows were packed in permuted_column's order:
// for each group g of 32 columns (four 8-column blocks), the D fragment gives a thread channels
// 8q .. 8q + 7 of the group (q: its column pair within a block, c0 = 8 * block + 2q) in rows r and
// r + 8: values 4j + 2h + e of blocks j = 4g + k are channel 8q + 2k + e of row r + 8h. Each row's
// eight are one 16-byte store (fp32: two); a warp's store covers 8 pixels x 64 contiguous bytes
// (fp32: 32) instead of 8 x 16 (8 x 32). The bias of a group's eight channels is loaded once for
// both rows. Cout % kVec == 0: a 16-byte piece is wholly in or out.
template <typename T, class Acc, class Coords>
__device__ __forceinline__ void store_permuted_tile(const SepConvParams& p, const Acc& acc, const Coords& coords,
                                                    const int64_t (&y_rows)[2], int co0) {
  constexpr int kValues = decltype(cute::size(acc))::value, kGroups = kValues / 16;
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));  // channels a store
  static_assert(kValues % 16 == 0, "whole groups of four 8-column blocks");
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  const bool paired = reinterpret_cast<uintptr_t>(bias) % (2 * sizeof(T)) == 0;
  const int col = cute::get<1>(coords(0));             // 8 * block + 2q, within the tile
  const int c0 = co0 + (col & ~31) + col % 8 / 2 * 8;  // group 0's first channel of this thread: 8q in it
  T* const y = static_cast<T*>(p.y);
#pragma unroll
  for (int g = 0; g < kGroups; ++g) {
    const int c = c0 + 32 * g;
    if (c >= p.Cout) continue;
    float b[8];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      b[2 * k] = b[2 * k + 1] = 0.f;
      if (bias != nullptr && c + 2 * k < p.Cout) load_bias_pair(bias + c + 2 * k, paired, b[2 * k], b[2 * k + 1]);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (y_rows[h] < 0) continue;
#pragma unroll
      for (int piece = 0; piece < 8 / kVec; ++piece) {
        if (c + kVec * piece >= p.Cout) continue;
        Vec16<T> out;
#pragma unroll
        for (int v = 0; v < kVec; ++v) {
          const int ch = kVec * piece + v, k = ch / 2, e = ch % 2;  // channel c + ch: block 4g + k, value e
          out.v[v] = from_float<T>(acc(4 * (4 * g + k) + 2 * h + e) + b[ch]);
        }
        *reinterpret_cast<uint4*>(y + y_rows[h] + c + kVec * piece) = out.u;
      }
    }
  }
}
#endif  // XSEP_WITH_CUTE

// stages: slots in the weight ring, kMinStages..kMaxStages (the launcher's choice; the dynamic
// shared memory is WgmmaFwdLayout::bytes(Cmid, stages)). p.workspace: the packed weight
// (sepconv_fwd_wgmma_pack_kernel). band_buffers: 1 or 2 for the depthwise phase from bands of x in
// the ring (band_buffer_count's; builds with wgmma_band_build, layers with band_geometry_applies;
// elsewhere the windows' loads from x), 0 for the loads from x.
template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kMinBlocks)
    sepconv_fwd_wgmma_kernel(const SepConvParams p, const int stages, const int band_buffers) {
#if defined(XSEP_WGMMA_DEVICE_CODE)
  using namespace cute;
  using Cute = WgmmaFwdCute<Traits>;
  using Element = typename Cute::Element;
  using T = typename Traits::T;
  constexpr int BM = Traits::BM, BN = Traits::BN, BK = Traits::BK;
  constexpr uint32_t kChunkBytes = Traits::kWSlotBytes;
  using Layout = WgmmaFwdLayout<Traits>;
  // The pixel table and the slots' barriers are static shared memory, which the launcher also uses
  // to tell this kernel from the stub other architectures get (see wgmma_body_built).
  __shared__ WgmmaFwdPixelTable<Traits> px;
  __shared__ uint64_t landed[Traits::kMaxStages];  // slot s: its chunk has landed
  XSEP_DYNAMIC_SHARED(smem_raw);
  stamp_start(p.phase_clocks);  // measurement only (XSEP_PHASE_CLOCKS=1): phase_clocks.cuh
  unsigned char* smem = align_for_wgmma<Layout::kAlign>(smem_raw);
  const int kpad = Layout::kpad(p.Cmid), steps = kpad / BK;
  Element* z = reinterpret_cast<Element*>(smem);
  Element* w = reinterpret_cast<Element*>(smem + Layout::z_bytes(p.Cmid));
  auto z_chunk = [&](int c) { return make_tensor(make_smem_ptr(z + c * BM * BK), typename Cute::ZChunkLayout{}); };
  auto w_slot = [&](int s) { return make_tensor(make_smem_ptr(w + s * BN * BK), typename Cute::WSlotLayout{}); };

  // The CTA's weight chunks, one sequence over its output-channel tiles: chunk g is tile g / steps,
  // channels (g % steps) * BK.., in slot g % stages, packed at chunk co_begin / BN * steps + g.
  // Thread 0 copies them; fetch(g) announces the chunk's bytes on its slot's barrier and starts the
  // copy (nothing past the last chunk).
  int co_begin, co_end;
  resident_cout_range<Traits>(p.Cout, blockIdx.y, gridDim.y, &co_begin, &co_end);
  const int chunks = (co_end - co_begin + BN - 1) / BN * steps;
  const T* packed = static_cast<const T*>(p.workspace) + static_cast<int64_t>(co_begin / BN) * steps * (BN * BK);
  int slot_of_next = 0;  // fetch's slot for the next chunk, g % stages, kept without a division
  auto fetch = [&](int g) {
    if (g < chunks) {
      mbarrier_arrive_expect_tx(&landed[slot_of_next], kChunkBytes);
      bulk_copy_to_shared(w + slot_of_next * BN * BK, packed + static_cast<int64_t>(g) * (BN * BK), kChunkBytes,
                          &landed[slot_of_next]);
    }
    slot_of_next = slot_of_next + 1 == stages ? 0 : slot_of_next + 1;
  };
  // The band path: the band at the ring's end (band_offset), the ring's chunks of the slots below it
  // fetched now, the others once the depthwise phase is done with the band.
  constexpr int kDwChunks = wgmma_dw_chunks<Traits>();  // Z chunks a depthwise pass
  constexpr int kPassBytes = BK * kDwChunks * static_cast<int>(sizeof(T));
  const int64_t p0 = static_cast<int64_t>(blockIdx.x) * BM;
  const size_t ring_bytes = static_cast<size_t>(stages) * kChunkBytes;
  int band_count = 0, band_bytes_each = 0;
  size_t band_at = 0;  // from the ring's start
  if constexpr (wgmma_band_build<Traits>()) {
    if (band_buffers > 0) {
      // 0 where the layer takes no band; band_max_slots bounds every tile's slots, TileBand's too.
      band_bytes_each = band_buffer_bytes(p, BM, kPassBytes);
      if (band_bytes_each > 0 && band_area_bytes(band_buffers, band_bytes_each, kPassBytes) <= ring_bytes) {
        band_count = band_buffers;
        band_at = band_offset(ring_bytes, band_count, band_bytes_each, kPassBytes);
      }
    }
  }
  const int early_chunks = band_count > 0 ? static_cast<int>(band_at / kChunkBytes) : stages;
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) mbarrier_init(&landed[s], 1);
    for (int g = 0; g < early_chunks; ++g) fetch(g);  // they land while the depthwise phase runs
  }

  px.fill(p, p0);
  __syncthreads();
  stamp(p.phase_clocks, kFwdTableDone);

  // 1. Z, a K chunk after another (sepconv_fwd_quad_depthwise.cuh: a thread's items are two or four
  // channels of four neighbouring pixels), with the intermediate activation applied after rounding.
  {
    const QuadDepthwise<T, BM, BK * kDwChunks, Traits::kThreads, wgmma_dw_lanes<Traits>(), /*kNarrow=*/false,
                        wgmma_dw_two_runs<Traits>()>
        depthwise(
        p, p0, threadIdx.x,
        reinterpret_cast<const float*>(static_cast<const unsigned char*>(p.workspace) +
                                       wgmma_dw_offset_bytes<Traits>(p.Cout, p.Cmid)));
    // A channel group (4 to 16 bytes from a multiple of its size) is contiguous in the swizzled
    // layout; its address is z_chunk(c)(m, kk)'s, formed in 32 bits (sw64_k_major_offset).
    auto store_z = [&](int c, int m, int kk, auto v) {
      store_shared_at(smem, c * Traits::kZChunkBytes + sw64_k_major_offset(m, kk * sizeof(Element)), v);
    };
    // Pass q's group of channels kk (within the pass): chunk q * kDwChunks + kk / BK; a group past
    // the last chunk (Z's kpad) is not stored (its channels are past Cmid: zero, like the padding
    // of the chunks that are).
    auto store_pass = [&](int q, int m, int kk, auto v) {
      const int c = q * kDwChunks + kk / BK;
      if (c < steps) store_z(c, m, kk % BK, v);
    };
    const int passes = (steps + kDwChunks - 1) / kDwChunks;
    if (band_count > 0) {  // never in the other builds
      if constexpr (wgmma_band_build<Traits>())
        band_depthwise_phase<Traits::kThreads>(p, depthwise, px, TileBand(p, p0, BM), p0,
                                               smem + Layout::z_bytes(p.Cmid) + band_at, band_count, band_bytes_each,
                                               passes, store_pass);
    } else if constexpr (Traits::kPrefetch) {  // the registers for the next chunk's loads in flight
      depthwise.all_chunks_prefetched(p, px, steps, store_z);
    } else if constexpr (kDwChunks == 1) {
#pragma unroll 1
      for (int c = 0; c < steps; ++c)
        depthwise.chunk(p, px, c, [&](int m, int kk, auto v) { store_z(c, m, kk, v); });
    } else {
#pragma unroll 1
      for (int q = 0; q < passes; ++q)
        depthwise.chunk(p, px, q, [&](int m, int kk, auto v) { store_pass(q, m, kk, v); });
    }
  }
  // Z, written through the generic proxy, visible to wgmma: each thread fences its own stores (no
  // cp.async of its own in flight for the fence to wait for: the band path has waited for its
  // copies, and the weight's bulk copies are the async proxy's), then a barrier publishes them all
  // (and the stamp times the slowest thread's phase).
  fence_shared_for_wgmma();
  __syncthreads();
  stamp(p.phase_clocks, kFwdDepthwiseDone);
  // The band's slots, read by this phase through the generic proxy (fenced above), now take their
  // chunks through the async one.
  if (threadIdx.x == 0)
    for (int g = early_chunks; g < stages; ++g) fetch(g);

  typename Cute::TiledMma mma;
  ThrMMA thr_mma = mma.get_slice(threadIdx.x);
  Tensor acc = partition_fragment_C(mma, Shape<Int<BM>, Int<BN>>{});  // fp32, (MMA, MMA_M, MMA_N)
  Tensor coords = thr_mma.partition_C(make_identity_tensor(Shape<Int<BM>, Int<BN>>{}));
  int64_t y_rows[2];  // where this thread's two accumulator rows go, the same for every tile
  accumulator_rows(p, coords, static_cast<int64_t>(blockIdx.x) * BM, y_rows);

  int g = 0;           // the chunk of this step
  int slot = 0;        // its slot, g % stages
  uint32_t phase = 0;  // the parity of its slot's barrier phase: (g / stages) % 2
#pragma unroll 1
  for (int co0 = co_begin, tile = 0; co0 < co_end; co0 += BN, ++tile) {
    clear(acc);
#pragma unroll 1
    for (int step = 0; step < steps; ++step, ++g) {
      mbarrier_wait_parity(&landed[slot], phase);  // chunk g landed (its barrier's phase completed)
      Tensor a_frag = thr_mma.make_fragment_A(thr_mma.partition_A(z_chunk(step)));  // (MMA, MMA_M, MMA_K)
      Tensor b_frag = thr_mma.make_fragment_B(thr_mma.partition_B(w_slot(slot)));   // (MMA, MMA_N, MMA_K)
      if (++slot == stages) slot = 0, phase ^= 1;
      warpgroup_fence_operand(acc);
      wgmma_arrive();
      gemm(mma, a_frag, b_frag, acc);
      wgmma_commit();
      wgmma_wait<1>();  // this warpgroup's batch of step g - 1 has retired (none in flight after a tile)
      warpgroup_fence_operand(acc);
      // Once every warpgroup is past that wait, chunk g - 1's slot is free: thread 0 refills it with
      // chunk g - 1 + stages, so stages - 1 chunks are in flight beyond the one being multiplied
      // (the refill waited one step longer before, for stages - 2: at 728 channels the ring has 5
      // slots, and the profile put ~20% of the stall samples at the landed wait).
      __syncthreads();
      if (threadIdx.x == 0 && g > 0) fetch(g - 1 + stages);
    }
    wgmma_wait<0>();
    warpgroup_fence_operand(acc);
    stamp(p.phase_clocks, kFwdFirstTile + 2 * tile);

    // 3. Bias, one rounding, stores from registers while the next tile's chunks are in flight.
    store_permuted_tile<T>(p, acc, coords, y_rows, co0);
    stamp(p.phase_clocks, kFwdFirstTile + 2 * tile + 1);
    stamp_count(p.phase_clocks, tile + 1);
  }
  stamp_end(p.phase_clocks);
#endif
}

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
