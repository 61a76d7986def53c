// The wgmma forward's depthwise phase from x staged in shared memory, a band of input rows at a
// time (XSEP_FWD_DW=staged, for measurement until a GPU run says whether it beats the windows'
// loads from global memory): in the builds for one CTA per SM, for stride 1, dilation 1, 3x3.
//
// Why: on the H200 (3ac7082, phase clocks) the depthwise phase took 42-72% of the forward's cycles
// and several times its issue time, with little gain from more loads in flight (the prefetch
// build) or more warps (four warpgroups). Each thread loads its quads' 3 x 6 windows itself: every
// x element ~4.5 times (three rows of windows, overlapping column windows), through an L1 that
// the kernel's ~227 KB of shared memory leaves at ~29 KB. Here the CTA copies each element of its
// band once a pass with 16-byte cp.async copies (no registers while in flight; a pass ahead where
// the ring holds two bands), and the windows come from shared memory at constant offsets from one
// base an item, with no address arithmetic and no padding predicates: the band's padding is zero.
//
// The band: the input rows that the tile's windows read, one slot each. For each image the tile's
// pixels touch, its output rows' windows' rows: from the first output row's top row to the last
// one's bottom row (the image's output rows + 2 slots; rows in the padding are slots of zeros). A
// slot holds Wo + 2 columns (input columns -pl .. W + pr - 1, stride 1), each of them the pass's
// channels (kDwChunks x 64 bytes). The band buffers live in the weight ring's last slots, idle
// until the GEMM: the ring chunks that would have landed there during the depthwise phase are
// fetched after it instead (the kernel's caller, sepconv_fwd_wgmma_kernel.cuh).
//
// The arithmetic is QuadDepthwise's (the same items, sums and rounding), so the values are the same
// bits as the global path's: a tap in the padding reads a zero here where it read a zero there.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cp_async.cuh"
#include "fast_divmod.h"
#include "sepconv_fwd_pixels.cuh"
#include "sepconv_fwd_quad_depthwise.cuh"
#include "sepconv_params.h"

namespace xsep {

constexpr int kMaxBandSlots = 32;                   // the slot table's rows
constexpr int kBandTableBytes = kMaxBandSlots * 8;  // the slot table: x offsets of rows
// Pixels after the last buffer: a two-run quad's first window reads up to three columns past its
// slot's end (values no pixel uses), into the next slot or buffer, or here after the last.
constexpr int kBandSlackPixels = 4;

// Whether a layer's windows can come from a band: stride 1 and dilation 1 both ways, 3x3 (the
// quad windows' geometry; the wgmma forward checks channels_last and 16-byte pixels).
__host__ __device__ inline bool band_geometry_applies(const SepConvParams& p) {
  return p.sh == 1 && p.sw == 1 && p.dh == 1 && p.dw == 1 && p.kh == 3 && p.kw == 3;
}

// The most slots the band of a tile of bm pixels takes: its output rows (a row-major run of b
// pixels touches at most ceil((b - 1) / Wo) + 1) plus two for each image among them.
__host__ __device__ inline int band_max_slots(const SepConvParams& p, int bm) {
  const int64_t wo = p.Wo, hw = static_cast<int64_t>(p.Ho) * p.Wo;
  const int64_t b = bm < p.N * hw ? bm : p.N * hw;  // a tile's pixels
  const int64_t rows = (b - 1 + wo - 1) / wo + 1;
  int64_t images = (b - 1 + hw - 1) / hw + 1;
  if (images > rows) images = rows;
  const int64_t slots = rows + 2 * images;
  return slots > kMaxBandSlots ? kMaxBandSlots + 1 : static_cast<int>(slots);
}

// Bytes of one band buffer (band_max_slots slots of Wo + 2 columns) for passes of pixel_bytes a
// pixel (a multiple of 16); 0 where a band does not apply (or takes more slots than the table).
__host__ __device__ inline int band_buffer_bytes(const SepConvParams& p, int bm, int pixel_bytes) {
  if (!band_geometry_applies(p)) return 0;
  const int slots = band_max_slots(p, bm);
  if (slots > kMaxBandSlots) return 0;
  const int64_t bytes = static_cast<int64_t>(slots) * (p.Wo + 2) * pixel_bytes;
  return bytes > (int64_t{1} << 24) ? 0 : static_cast<int>(bytes);
}

// The band's bytes with `count` buffers: the slot table, the buffers, the slack.
__host__ __device__ inline size_t band_area_bytes(int count, int buffer_bytes, int pixel_bytes) {
  return kBandTableBytes + static_cast<size_t>(count) * buffer_bytes +
         static_cast<size_t>(kBandSlackPixels) * pixel_bytes;
}

// How many band buffers (two: a pass's copies in flight during the previous pass's arithmetic;
// one; 0: none) fit in `room` bytes (the weight ring's).
__host__ __device__ inline int band_buffer_count(const SepConvParams& p, int bm, int pixel_bytes, size_t room) {
  const int buffer = band_buffer_bytes(p, bm, pixel_bytes);
  if (buffer == 0) return 0;
  for (int count = 2; count >= 1; --count)
    if (band_area_bytes(count, buffer, pixel_bytes) <= room) return count;
  return 0;
}

// Where the band starts within the ring's `room` bytes: as late as it fits, on a 128-byte boundary
// (the ring's slots below it take their weight chunks during the depthwise phase).
__host__ __device__ inline size_t band_offset(size_t room, int count, int buffer_bytes, int pixel_bytes) {
  return (room - band_area_bytes(count, buffer_bytes, pixel_bytes)) / 128 * 128;
}

// The band of a CTA's tile: pixels p0 .. p0 + bm - 1 (those below N * Ho * Wo), which slot holds
// which input row.
struct TileBand {
  int64_t n0;  // the first pixel's image
  int oy0;     // and output row
  int first;   // slots of image n0: its output rows from oy0, plus two
  int slots;

  __device__ __forceinline__ TileBand(const SepConvParams& p, int64_t p0, int bm) {
    const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
    const int64_t last = (p0 + bm < pixels ? p0 + bm : pixels) - 1;
    int64_t n1;
    int oy1, ox;
    fwd_pixel_coords(p, p0, n0, oy0, ox);
    fwd_pixel_coords(p, last, n1, oy1, ox);
    first = (n1 == n0 ? oy1 : p.Ho - 1) - oy0 + 3;
    slots = n1 == n0 ? first : first + static_cast<int>(n1 - n0 - 1) * (p.Ho + 2) + oy1 + 3;
  }

  // The slot of the top row of output pixel (n, oy)'s window (n0 <= n, within the tile).
  __device__ __forceinline__ int slot_of(const SepConvParams& p, int64_t n, int oy) const {
    return n == n0 ? oy - oy0 : first + static_cast<int>(n - n0 - 1) * (p.Ho + 2) + oy;
  }

  // Slot s's input row as the offset of x[n, 0, iy, 0], or -1 for a row in the padding.
  __device__ __forceinline__ int64_t row_offset(const SepConvParams& p, int s) const {
    int64_t n = n0;
    int iy = oy0 - p.pt + s;
    if (s >= first) {
      const int k = (s - first) / (p.Ho + 2);
      n = n0 + 1 + k;
      iy = s - first - k * (p.Ho + 2) - p.pt;
    }
    if (iy < 0 || iy >= p.H) return -1;
    return n * p.x_stride[0] + static_cast<int64_t>(iy) * p.x_stride[2];
  }
};

// The 3 x 6 window of a quad from a band buffer: its top-left pixel's group at buffer + offset (row
// stride row_bytes, kPixelBytes a column), as shared-memory loads.
template <typename T, int kLanes, int kPixelBytes>
__device__ __forceinline__ void load_band_window(const unsigned char* buffer, int offset, int row_bytes,
                                                 ChannelGroup<T, kLanes> (&v)[3][kQuadCols]) {
#pragma unroll
  for (int ky = 0; ky < 3; ++ky)
#pragma unroll
    for (int c = 0; c < kQuadCols; ++c)
      v[ky][c] = load_shared_at<ChannelGroup<T, kLanes>>(buffer, offset + ky * row_bytes + c * kPixelBytes);
}

#if defined(XSEP_WITH_CUTE)
// Z of every pass from bands: a thread's QuadDepthwise items (Quads, its chunk a pass of
// Quads::kChannels channels), each window read from the band buffer of its pass. The same items,
// weights and fallbacks as the global path: an item without a window (the tile's tail, quads a row
// breaks twice) or a group with a weight that is not finite takes the per-pixel path from x.
template <class Quads>
struct BandDepthwise {
  using T = typename Quads::Value;
  static constexpr int kLanes = Quads::kLanes, kItems = Quads::kItems;
  static constexpr int kPixelBytes = Quads::kChannels * static_cast<int>(sizeof(T));
  static constexpr int kUnits = kPixelBytes / 16;  // 16-byte copies a pixel
  static_assert(kPixelBytes % 16 == 0, "whole 16-byte copies a pixel");
  using Group = typename Quads::Group;

  const Quads& quads;
  int row_bytes;
  int first_run[kItems];   // a window item's band offset (its first run's window, at its group)
  int second_run[kItems];  // a two-run quad's second window's

  __device__ __forceinline__ BandDepthwise(const SepConvParams& p, const Quads& q, const TileBand& band, int64_t p0)
      : quads(q), row_bytes((p.Wo + 2) * kPixelBytes) {
    const int group_bytes = kLanes * static_cast<int>(sizeof(T)) * quads.group;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      first_run[i] = second_run[i] = 0;
      if (!quads.quads[i].window) continue;
      int64_t n;
      int oy, ox;
      fwd_pixel_coords(p, p0 + quads.m0[i], n, oy, ox);
      first_run[i] = (band.slot_of(p, n, oy) * (p.Wo + 2) + ox) * kPixelBytes + group_bytes;
      const int split = quad_split(quads.quads[i]);
      if (split < kQuadPixels) {
        // The second run starts a row (or an image) later at column 0; its window `split`
        // columns left of that one's (quad_window's layout), in the previous slot's tail.
        fwd_pixel_coords(p, p0 + quads.m0[i] + split, n, oy, ox);
        second_run[i] = (band.slot_of(p, n, oy) * (p.Wo + 2) - split) * kPixelBytes + group_bytes;
      }
    }
  }

  // Pass q's copies into `buffer`: every in-image pixel of every slot, its channels of the pass
  // below C, 16 bytes a copy, spread over the CTA's threads; one commit group. rows: the slot table.
  template <int kThreads>
  __device__ __forceinline__ void copy_pass(const SepConvParams& p, const unsigned char* rows, int slots,
                                            const FastDivmod& width, int q, unsigned char* buffer) const {
    const T* __restrict__ x = static_cast<const T*>(p.x);
    constexpr int kVec = 16 / static_cast<int>(sizeof(T));
    const int c0 = q * Quads::kChannels;
    const int copies = slots * p.W * kUnits;
    for (int idx = threadIdx.x; idx < copies; idx += kThreads) {
      const int u = idx % kUnits, pixel = idx / kUnits;
      int s, ix;
      width.divmod(pixel, &s, &ix);
      const int64_t row = load_shared_at<int64_t>(rows, static_cast<unsigned>(s) * 8);
      const int c = c0 + u * kVec;
      if (row >= 0 && c < p.C)
        cp_async_16(buffer + (s * (p.Wo + 2) + ix + p.pl) * kPixelBytes + u * 16, x + row + ix * p.x_stride[3] + c,
                    true);
    }
    cp_async_commit();
  }

  // Pass q's Z from its band buffer: store(m, kk, bits) as QuadDepthwise::chunk's.
  template <class TapTable, class Store>
  __device__ __forceinline__ void compute_pass(const SepConvParams& p, const TapTable& px, int q,
                                               const unsigned char* buffer, Store&& store) const {
    const int k = q * Quads::kChannels + kLanes * quads.group;
    float w[9][kLanes];
    bool finite = false;  // the pack's word: the group's weights are all finite
    if (k < p.Cmid) {
      load_group_weights<kLanes>(quads.packed_dw, k / kLanes, w);
      finite = __ldg(packed_dw_finite(quads.packed_dw, p.Cmid) + k / kLanes) != 0;
    } else {
#pragma unroll
      for (int t = 0; t < 9; ++t)
#pragma unroll
        for (int j = 0; j < kLanes; ++j) w[t][j] = 0.f;
    }
    auto first = [&](int i, Group(&v)[3][kQuadCols]) {
      load_band_window<T, kLanes, kPixelBytes>(buffer, first_run[i], row_bytes, v);
    };
    auto second = [&](int i, Group(&v)[3][kQuadCols]) {
      load_band_window<T, kLanes, kPixelBytes>(buffer, second_run[i], row_bytes, v);
    };
    if (p.activation == Activation::kNone)
      quads.template compute_items<false>(p, px, k, w, finite, first, second, store);
    else
      quads.template compute_items<true>(p, px, k, w, finite, first, second, store);
  }
};

// The depthwise phase from bands: every pass's copies (a pass ahead with two buffers), a barrier,
// its arithmetic, a barrier (the buffer is free again). `table` in shared memory (band_offset's
// place in the ring): the slot table, then `count` buffers of `buffer_bytes`, for the tile from
// pixel p0 (band: its TileBand, of at most band_max_slots slots). Zeroes the buffers first (the
// padding is never copied to) and fills the table; ends after the last pass's arithmetic with no
// copy in flight. store(q, m, kk, bits): q the pass.
template <int kThreads, class Quads, class TapTable, class Store>
__device__ __forceinline__ void band_depthwise_phase(const SepConvParams& p, const Quads& quads, const TapTable& px,
                                                     const TileBand& band, int64_t p0, unsigned char* table, int count,
                                                     int buffer_bytes, int passes, Store&& store) {
  using Band = BandDepthwise<Quads>;
  unsigned char* buffers = table + kBandTableBytes;
  for (int s = threadIdx.x; s < band.slots; s += kThreads) store_shared(table + 8 * s, band.row_offset(p, s));
  for (int b = threadIdx.x * 16; b < count * buffer_bytes; b += kThreads * 16)
    store_shared(buffers + b, make_uint4(0, 0, 0, 0));
  const Band staged(p, quads, band, p0);
  const FastDivmod width(p.W);
  __syncthreads();  // the table and the zeros, before any copy lands
  auto buffer = [&](int q) { return buffers + (q % count) * buffer_bytes; };
  for (int q = 0; q < count - 1 && q < passes; ++q)
    staged.template copy_pass<kThreads>(p, table, band.slots, width, q, buffer(q));
#pragma unroll 1
  for (int q = 0; q < passes; ++q) {
    const int ahead = q + count - 1;  // its buffer was last read by pass q - 1, before the barrier
    if (ahead < passes)
      staged.template copy_pass<kThreads>(p, table, band.slots, width, ahead, buffer(ahead));
    else
      cp_async_commit();               // an empty group: the wait below counts the same in every pass
    cp_async_wait_pending(count - 1);  // this thread's copies of pass q have landed
    __syncthreads();                   // and everyone's
    staged.compute_pass(p, px, q, buffer(q), [&](int m, int kk, auto bits) { store(q, m, kk, bits); });
    __syncthreads();  // pass q's buffer is free for pass q + count
  }
  cp_async_wait<0>();  // nothing left in flight (the groups past the last pass are empty)
}
#endif  // XSEP_WITH_CUTE

}  // namespace xsep
