// Building blocks of the fused CPU op: how output rows are cut into tiles, and the depthwise
// work on one tile (forward, transposed for grad_x, and the weight reduction for grad_dw).
// Both memory formats: in NCHW a tile's depthwise result is (Cmid x P), channel-major, so the
// inner loops run along a row; in NHWC it is (P x Cmid), pixel-major, so they run along the
// channels. Either way the pointwise part on the tile is one GEMM.
#pragma once

#include <c10/core/ScalarType.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../common/sepconv_geometry.h"

// The tile buffers never alias x or the weights; say so, so the channel/row loops vectorise.
#define XSEP_SIMD _Pragma("omp simd")

namespace xsep::cpu {

// torch's name of a dtype, as the dispatch log spells it (the CUDA side's lines too).
inline const char* dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Half:
      return "float16";
    case c10::ScalarType::BFloat16:
      return "bfloat16";
    case c10::ScalarType::Float:
      return "float32";
    case c10::ScalarType::Double:
      return "float64";
    default:
      return c10::toString(t);
  }
}

// A tile is a block of whole output rows. NCHW: within one image (per channel, an image's output
// rows are contiguous, but not across images), or, where a whole image fits in a tile's budget,
// several whole images whose depthwise results sit side by side in the tile's (Cmid x P) matrix
// (the late layers' small maps: one GEMM for several images instead of one each, each reading the
// whole pointwise weight). NHWC: a block of the batch's rows taken as one tall image, row (n, oy)
// -> n * Ho + oy, whose outputs are contiguous: the small images of late layers then share a tile
// and the GEMM gets a useful size.
struct Tile {
  int64_t row0;        // first output row, flattened: n * Ho + oy
  int64_t rows;        // rows per image
  int64_t wave;        // 0 or 1: tiles of one wave never touch the same input rows (see the backward)
  int64_t images = 1;  // NCHW: whole images n .. n + images - 1 (rows = Ho) when above 1
};

struct TilePlan {
  int64_t rows;             // rows per tile (per image); the last tile (of an image, or of the batch) may have fewer
  int64_t count;            // tiles in all
  int64_t tiles_per_image;  // NCHW, one image per tile
  bool across_images;       // NHWC
  int64_t images = 1;       // NCHW: the most images in a tile; above 1, tiles of whole images (rows = Ho)

  Tile tile(int64_t t, const SepConvGeometry& g) const {
    if (across_images) return {t * rows, std::min(rows, g.N * g.Ho - t * rows), t % 2};
    if (images > 1) {  // images [t N / count, (t + 1) N / count): shares that differ by one at most
      const int64_t first = t * g.N / count, end = (t + 1) * g.N / count;
      return {first * g.Ho, g.Ho, 0, end - first};  // one wave: whole images share no rows
    }
    const int64_t n = t / tiles_per_image, block = t % tiles_per_image, r0 = block * rows;
    return {n * g.Ho + r0, std::min(rows, g.Ho - r0), block % 2};
  }
  // Output pixels of the largest tile: the size of its buffers.
  int64_t max_pixels(const SepConvGeometry& g) const { return rows * images * g.Wo; }
  // For the dispatch log: e.g. "8 tiles of 4 rows" or "3 tiles of up to 11 whole images".
  std::string describe() const {
    if (images > 1) return std::to_string(count) + " tiles of up to " + std::to_string(images) + " whole images";
    return std::to_string(count) + " tiles of " + std::to_string(rows) + (across_images ? " batch rows" : " rows");
  }
};

// Rows per tile so that the tile's buffers (bytes_per_output_row each row) stay within about
// a core's L2 while the GEMM reads them, and so that there are at least min_tiles tiles to share
// between the threads (when the rows allow; NHWC: a multiple of min_tiles, so the threads get equal
// shares); at least min_rows; rows split evenly (no thin last tile). NCHW: several whole images per
// tile where more than one fits the budget and the batch still gives min_tiles tiles.
inline TilePlan make_tile_plan(const SepConvGeometry& g, int64_t bytes_per_output_row, int64_t min_rows,
                               bool across_images, int64_t min_tiles) {
  constexpr int64_t kTileBytes = 2 << 20;
  const int64_t total = std::max<int64_t>(across_images ? g.N * g.Ho : g.Ho, 1);
  const int64_t images = across_images ? 1 : std::max<int64_t>(g.N, 1);
  int64_t rows = std::max<int64_t>(1, kTileBytes / std::max<int64_t>(1, bytes_per_output_row));
  if (!across_images) {
    min_tiles = std::max<int64_t>(min_tiles, 1);
    const int64_t per_tile = std::min(rows / total, (images + min_tiles - 1) / min_tiles);
    if (per_tile > 1) {
      // A multiple of min_tiles tiles, so that the threads get equal shares.
      int64_t tiles = (images + per_tile - 1) / per_tile;
      tiles = std::min((tiles + min_tiles - 1) / min_tiles * min_tiles, images);
      return {total, tiles, 1, false, (images + tiles - 1) / tiles};
    }
  }
  const int64_t tiles_wanted_per_image = (min_tiles + images - 1) / images;
  rows = std::min(rows, (total + tiles_wanted_per_image - 1) / tiles_wanted_per_image);
  rows = std::min(std::max(rows, min_rows), total);
  int64_t tiles = (total + rows - 1) / rows;
  if (across_images) tiles = (tiles + min_tiles - 1) / min_tiles * min_tiles;  // no thread left idle
  rows = std::max((total + tiles - 1) / tiles, std::min(min_rows, total));
  const int64_t per_image = (total + rows - 1) / rows;
  return {rows, across_images ? per_image : g.N * per_image, per_image, across_images};
}

// Output columns [lo, hi) whose input column ox * s + off falls inside [0, W).
inline void valid_columns(int64_t off, int64_t s, int64_t W, int64_t Wo, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / s + 1;
  hi = std::min(hi, Wo);
  lo = std::min(lo, hi);
}

// ---- NCHW: x_n is (C, H, W); z, dz are (Cmid, rows * Wo) with rows ldz apart (the tile's pixel
// count: an image's block of a multi-image tile); w is (Cmid, kh * kw) ----

// Stride 1: each channel's input rows go, zero-padded, into a (rows_in x Wp) scratch plane, the
// tile's images one below the other; then every tap is one long unit-stride loop over the
// flattened planes (outputs computed on a Wp-wide grid; the rows between images' outputs are
// computed and dropped), and the Wo valid columns of each row are compacted into z (image i's block
// at z + i * rows * Wo). Long loops instead of kh*kw*rows loops of Wo elements, which are short in
// Xception's late layers (Wo = 10, 19, and 3 or 5 at 71x71).
template <typename scalar_t, typename acc_t>
void depthwise_tile_nchw_stride1(const SepConvGeometry& g, const scalar_t* x_n, int64_t images, const acc_t* w,
                                 int64_t r0, int64_t rows, acc_t* z, int64_t ldz) {
  const int64_t Wp = g.Wo + (g.kw - 1) * g.dw;       // padded width the outputs need
  const int64_t rows_in = rows + (g.kh - 1) * g.dh;  // padded input rows of the tile (per image)
  const int64_t image_plane = rows_in * Wp;
  const int64_t wide = (images - 1) * image_plane + (rows - 1) * Wp + g.Wo;  // flat outputs on the grid
  thread_local std::vector<acc_t> plane, out;
  plane.assign(images * image_plane, acc_t(0));
  out.resize(wide);
  int64_t col_lo, col_hi;  // the padded columns that hold real input
  valid_columns(-g.pl, 1, g.W, Wp, col_lo, col_hi);
  for (int64_t cm = 0; cm < g.Cmid; ++cm) {
    if (cm % g.M == 0) {  // the M channels of one input channel share its planes
      for (int64_t n = 0; n < images; ++n) {
        const scalar_t* xc = x_n + n * g.C * g.H * g.W + (cm / g.M) * g.H * g.W;
        for (int64_t i = 0; i < rows_in; ++i) {
          const int64_t iy = r0 - g.pt + i;
          acc_t* dst = plane.data() + n * image_plane + i * Wp;
          if (iy < 0 || iy >= g.H) {
            std::fill(dst, dst + Wp, acc_t(0));
            continue;
          }
          const scalar_t* src = xc + iy * g.W - g.pl;
          XSEP_SIMD
          for (int64_t j = col_lo; j < col_hi; ++j) dst[j] = static_cast<acc_t>(src[j]);
        }
      }
    }
    const acc_t* wc = w + cm * g.kh * g.kw;
    acc_t* o = out.data();
    std::fill(o, o + wide, acc_t(0));
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const acc_t wv = wc[ky * g.kw + kx];
        const acc_t* src = plane.data() + ky * g.dh * Wp + kx * g.dw;
        XSEP_SIMD
        for (int64_t j = 0; j < wide; ++j) o[j] += wv * src[j];
      }
    }
    acc_t* zc = z + cm * ldz;
    for (int64_t n = 0; n < images; ++n) {
      const acc_t* on = o + n * image_plane;
      acc_t* zn = zc + n * rows * g.Wo;
      for (int64_t r = 0; r < rows; ++r) std::copy(on + r * Wp, on + r * Wp + g.Wo, zn + r * g.Wo);
    }
  }
}

// padded_planes: take the stride-1 fast path, which multiplies the weights with the zero padding.
// Callers pass false when a weight is not finite: inf * 0 would turn a border output into NaN where
// taps outside the image contribute nothing elsewhere (NHWC, the CUDA kernels, oneDNN/cuDNN in fp32).
// x_n: the tile's first image, followed by its other images; z: image i's block at z + i * rows * Wo.
template <typename scalar_t, typename acc_t>
void depthwise_tile_nchw(const SepConvGeometry& g, const scalar_t* x_n, int64_t images, const acc_t* w, int64_t r0,
                         int64_t rows, acc_t* z, int64_t ldz, bool padded_planes) {
  if (g.sh == 1 && g.sw == 1 && padded_planes) return depthwise_tile_nchw_stride1(g, x_n, images, w, r0, rows, z, ldz);
  const int64_t P = rows * g.Wo;
  for (int64_t plane = 0; plane < images * g.Cmid; ++plane) {  // (image, channel) pairs
    const int64_t n = plane / g.Cmid, cm = plane % g.Cmid;
    const scalar_t* xc = x_n + n * g.C * g.H * g.W + (cm / g.M) * g.H * g.W;
    const acc_t* wc = w + cm * g.kh * g.kw;
    acc_t* zc = z + cm * ldz + n * P;
    std::fill(zc, zc + P, acc_t(0));
    for (int64_t r = 0; r < rows; ++r) {
      acc_t* zr = zc + r * g.Wo;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = (r0 + r) * g.sh - g.pt + ky * g.dh;
        if (iy < 0 || iy >= g.H) continue;
        const scalar_t* xr = xc + iy * g.W;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t off = kx * g.dw - g.pl;
          int64_t lo, hi;
          valid_columns(off, g.sw, g.W, g.Wo, lo, hi);
          const acc_t wv = wc[ky * g.kw + kx];
          for (int64_t ox = lo; ox < hi; ++ox) zr[ox] += wv * static_cast<acc_t>(xr[ox * g.sw + off]);
        }
      }
    }
  }
}

// Stride 1, both depthwise gradients of one tile at once, over the same padded planes as the
// forward: dz goes onto the Wp-wide grid (zeros in the extra columns), then each tap is one long
// loop: a dot product with the x plane for grad_dw, an axpy into a grad_x plane for grad_x, whose
// real rows and columns are added into gx_n at the end. Either of gw and gx_n may be null.
template <typename scalar_t, typename acc_t>
void depthwise_backward_tile_nchw_stride1(const SepConvGeometry& g, const scalar_t* x_n, const acc_t* dz, int64_t ldz,
                                          const acc_t* w, int64_t r0, int64_t rows, acc_t* gw, acc_t* gx_n) {
  const int64_t Wp = g.Wo + (g.kw - 1) * g.dw;
  const int64_t rows_in = rows + (g.kh - 1) * g.dh;
  const int64_t wide = (rows - 1) * Wp + g.Wo;
  const int64_t taps = g.kh * g.kw;
  thread_local std::vector<acc_t> plane, gplane, dz_wide;
  dz_wide.assign(wide, acc_t(0));  // only the row segments are written below: the gaps stay 0
  if (gw != nullptr) plane.resize(rows_in * Wp);
  if (gx_n != nullptr) gplane.resize(rows_in * Wp);
  int64_t col_lo, col_hi;  // the padded columns that hold real input
  valid_columns(-g.pl, 1, g.W, Wp, col_lo, col_hi);
  for (int64_t c = 0; c < g.C; ++c) {
    if (gw != nullptr) {
      const scalar_t* xc = x_n + c * g.H * g.W;
      for (int64_t i = 0; i < rows_in; ++i) {
        const int64_t iy = r0 - g.pt + i;
        acc_t* dst = plane.data() + i * Wp;
        std::fill(dst, dst + Wp, acc_t(0));
        if (iy < 0 || iy >= g.H) continue;
        const scalar_t* src = xc + iy * g.W - g.pl;
        XSEP_SIMD
        for (int64_t j = col_lo; j < col_hi; ++j) dst[j] = static_cast<acc_t>(src[j]);
      }
    }
    if (gx_n != nullptr) std::fill(gplane.begin(), gplane.end(), acc_t(0));
    for (int64_t m = 0; m < g.M; ++m) {
      const int64_t cm = c * g.M + m;
      for (int64_t r = 0; r < rows; ++r) {
        std::copy(dz + cm * ldz + r * g.Wo, dz + cm * ldz + (r + 1) * g.Wo, dz_wide.data() + r * Wp);
      }
      const acc_t* d = dz_wide.data();
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t off = ky * g.dh * Wp + kx * g.dw;
          const int64_t tap = ky * g.kw + kx;
          if (gw != nullptr) {
            const acc_t* xs = plane.data() + off;
            acc_t sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < wide; ++j) sum += xs[j] * d[j];
            gw[cm * taps + tap] += sum;
          }
          if (gx_n != nullptr) {
            const acc_t wv = w[cm * taps + tap];
            acc_t* gs = gplane.data() + off;
            XSEP_SIMD
            for (int64_t j = 0; j < wide; ++j) gs[j] += wv * d[j];
          }
        }
      }
    }
    if (gx_n != nullptr) {
      acc_t* gxc = gx_n + c * g.H * g.W;
      for (int64_t i = 0; i < rows_in; ++i) {
        const int64_t iy = r0 - g.pt + i;
        if (iy < 0 || iy >= g.H) continue;
        acc_t* dst = gxc + iy * g.W - g.pl;
        const acc_t* src = gplane.data() + i * Wp;
        XSEP_SIMD
        for (int64_t j = col_lo; j < col_hi; ++j) dst[j] += src[j];
      }
    }
  }
}

// gx_n (C, H, W) += depthwise-transpose(dz): each tile scatters into the input rows it read.
template <typename acc_t>
void depthwise_transpose_tile_nchw(const SepConvGeometry& g, const acc_t* dz, int64_t ldz, const acc_t* w, int64_t r0,
                                   int64_t rows, acc_t* gx_n) {
  for (int64_t cm = 0; cm < g.Cmid; ++cm) {
    acc_t* gxc = gx_n + (cm / g.M) * g.H * g.W;
    const acc_t* wc = w + cm * g.kh * g.kw;
    const acc_t* dzc = dz + cm * ldz;
    for (int64_t r = 0; r < rows; ++r) {
      const acc_t* dzr = dzc + r * g.Wo;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = (r0 + r) * g.sh - g.pt + ky * g.dh;
        if (iy < 0 || iy >= g.H) continue;
        acc_t* gxr = gxc + iy * g.W;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t off = kx * g.dw - g.pl;
          int64_t lo, hi;
          valid_columns(off, g.sw, g.W, g.Wo, lo, hi);
          const acc_t wv = wc[ky * g.kw + kx];
          if (g.sw == 1) {
            XSEP_SIMD
            for (int64_t ox = lo; ox < hi; ++ox) gxr[ox + off] += wv * dzr[ox];
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) gxr[ox * g.sw + off] += wv * dzr[ox];
          }
        }
      }
    }
  }
}

// gw (Cmid, kh * kw) += sum over the tile's pixels of x (shifted by the tap) * dz.
template <typename scalar_t, typename acc_t>
void depthwise_weight_grad_tile_nchw(const SepConvGeometry& g, const scalar_t* x_n, const acc_t* dz, int64_t ldz,
                                     int64_t r0, int64_t rows, acc_t* gw) {
  for (int64_t cm = 0; cm < g.Cmid; ++cm) {
    const scalar_t* xc = x_n + (cm / g.M) * g.H * g.W;
    const acc_t* dzc = dz + cm * ldz;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t off = kx * g.dw - g.pl;
        int64_t lo, hi;
        valid_columns(off, g.sw, g.W, g.Wo, lo, hi);
        acc_t sum = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t iy = (r0 + r) * g.sh - g.pt + ky * g.dh;
          if (iy < 0 || iy >= g.H) continue;
          const scalar_t* xr = xc + iy * g.W;
          const acc_t* dzr = dzc + r * g.Wo;
          if (g.sw == 1) {
#pragma omp simd reduction(+ : sum)
            for (int64_t ox = lo; ox < hi; ++ox) sum += static_cast<acc_t>(xr[ox + off]) * dzr[ox];
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) sum += static_cast<acc_t>(xr[ox * g.sw + off]) * dzr[ox];
          }
        }
        gw[cm * g.kh * g.kw + ky * g.kw + kx] += sum;
      }
    }
  }
}

// ---- NHWC: x (and gx) is the whole batch (N, H, W, C); row0 is a flattened output row n * Ho + oy
// (a tile may span images); z, dz are (rows * Wo, Cmid); wT is (kh * kw, Cmid). ----
// Channel cm = c * M + m reads input channel c, so a pixel's Cmid values are C runs of M.

// kPix output pixels of one row (input columns ix0, ix0 + sw, ...), channels [c0, c0 + kBlock)
// (M == 1): each pixel's block accumulates over all taps in registers, then is stored once. The
// kPix * kBlock accumulators are independent FMA chains: with one pixel's two vectors the chains
// wait on each FMA's latency (a quarter of the FMA throughput measured here); a tap's weights are
// loaded once for the kPix pixels. kPix > 1 only where every horizontal tap of the pixels is inside
// the image (the caller checks). Taps are added in the same order for every kPix.
template <int64_t kBlock, int64_t kPix, typename scalar_t, typename acc_t>
inline void depthwise_block_nhwc(const SepConvGeometry& g, const scalar_t* x_n, const acc_t* wT, int64_t iy0,
                                 int64_t ix0, int64_t c0, acc_t* zp) {
  acc_t acc[kPix][kBlock] = {};
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    const int64_t iy = iy0 + ky * g.dh;
    if (iy < 0 || iy >= g.H) continue;
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      const int64_t ix = ix0 + kx * g.dw;
      if (kPix == 1 && (ix < 0 || ix >= g.W)) continue;
      const acc_t* wt = wT + (ky * g.kw + kx) * g.Cmid + c0;
      const scalar_t* xp = x_n + (iy * g.W + ix) * g.C + c0;
      for (int64_t q = 0; q < kPix; ++q) {
        const scalar_t* xq = xp + q * g.sw * g.C;
        XSEP_SIMD
        for (int64_t j = 0; j < kBlock; ++j) acc[q][j] += wt[j] * static_cast<acc_t>(xq[j]);
      }
    }
  }
  for (int64_t q = 0; q < kPix; ++q) {
    XSEP_SIMD
    for (int64_t j = 0; j < kBlock; ++j) zp[q * g.Cmid + c0 + j] = acc[q][j];
  }
}

// kPix output pixels of one row (as above), all their Cmid channels into zp (kPix rows, Cmid apart):
// blocks of two 64-byte vectors, then of a quarter vector, then the rest (and any depth
// multiplier) by the plain loop, one pixel at a time.
template <int64_t kPix, typename scalar_t, typename acc_t>
inline void depthwise_pixels_nhwc(const SepConvGeometry& g, const scalar_t* x_n, const acc_t* wT, int64_t iy0,
                                  int64_t ix0, acc_t* zp) {
  constexpr int64_t kLanes = 64 / sizeof(acc_t);
  int64_t c0 = 0;
  if (g.M == 1) {
    for (; c0 + 2 * kLanes <= g.C; c0 += 2 * kLanes)
      depthwise_block_nhwc<2 * kLanes, kPix>(g, x_n, wT, iy0, ix0, c0, zp);
    for (; c0 + kLanes / 4 <= g.C; c0 += kLanes / 4)
      depthwise_block_nhwc<kLanes / 4, kPix>(g, x_n, wT, iy0, ix0, c0, zp);
  }
  if (c0 == g.Cmid) return;
  const int64_t c_begin = c0 / g.M;
  for (int64_t q = 0; q < kPix; ++q) {
    acc_t* zq = zp + q * g.Cmid;
    const int64_t ixq = ix0 + q * g.sw;
    std::fill(zq + c0, zq + g.Cmid, acc_t(0));
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = iy0 + ky * g.dh;
      if (iy < 0 || iy >= g.H) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t ix = ixq + kx * g.dw;
        if (ix < 0 || ix >= g.W) continue;
        const scalar_t* xp = x_n + (iy * g.W + ix) * g.C;
        const acc_t* wt = wT + (ky * g.kw + kx) * g.Cmid;
        for (int64_t c = c_begin; c < g.C; ++c) {
          const acc_t xv = static_cast<acc_t>(xp[c]);
          for (int64_t m = 0; m < g.M; ++m) zq[c * g.M + m] += wt[c * g.M + m] * xv;
        }
      }
    }
  }
}

template <typename scalar_t, typename acc_t>
void depthwise_tile_nhwc(const SepConvGeometry& g, const scalar_t* x, const acc_t* wT, int64_t row0, int64_t rows,
                         acc_t* z) {
  constexpr int64_t kPix = 4;
  // The output columns whose every horizontal tap is inside the image: [inner_lo, inner_hi).
  int64_t lo_first, hi_first, lo_last, hi_last;
  valid_columns(-g.pl, g.sw, g.W, g.Wo, lo_first, hi_first);
  valid_columns((g.kw - 1) * g.dw - g.pl, g.sw, g.W, g.Wo, lo_last, hi_last);
  const int64_t inner_lo = std::max(lo_first, lo_last), inner_hi = std::min(hi_first, hi_last);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = (row0 + r) / g.Ho, oy = (row0 + r) % g.Ho;
    const scalar_t* x_n = x + n * g.H * g.W * g.C;
    const int64_t iy0 = oy * g.sh - g.pt;
    acc_t* z_row = z + r * g.Wo * g.Cmid;
    int64_t ox = 0;
    while (ox < g.Wo) {
      if (ox >= inner_lo && ox + kPix <= inner_hi) {
        depthwise_pixels_nhwc<kPix>(g, x_n, wT, iy0, ox * g.sw - g.pl, z_row + ox * g.Cmid);
        ox += kPix;
      } else {
        depthwise_pixels_nhwc<1>(g, x_n, wT, iy0, ox * g.sw - g.pl, z_row + ox * g.Cmid);
        ox += 1;
      }
    }
  }
}

template <typename acc_t>
void depthwise_transpose_tile_nhwc(const SepConvGeometry& g, const acc_t* dz, const acc_t* wT, int64_t row0,
                                   int64_t rows, acc_t* gx) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = (row0 + r) / g.Ho, oy = (row0 + r) % g.Ho;
    acc_t* gx_n = gx + n * g.H * g.W * g.C;
    for (int64_t ox = 0; ox < g.Wo; ++ox) {
      const acc_t* dzp = dz + (r * g.Wo + ox) * g.Cmid;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.sh - g.pt + ky * g.dh;
        if (iy < 0 || iy >= g.H) continue;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.sw - g.pl + kx * g.dw;
          if (ix < 0 || ix >= g.W) continue;
          acc_t* gxp = gx_n + (iy * g.W + ix) * g.C;
          const acc_t* wt = wT + (ky * g.kw + kx) * g.Cmid;
          if (g.M == 1) {
            XSEP_SIMD
            for (int64_t c = 0; c < g.C; ++c) gxp[c] += wt[c] * dzp[c];
          } else {
            for (int64_t c = 0; c < g.C; ++c) {
              acc_t sum = 0;
              for (int64_t m = 0; m < g.M; ++m) sum += wt[c * g.M + m] * dzp[c * g.M + m];
              gxp[c] += sum;
            }
          }
        }
      }
    }
  }
}

// gwT (kh * kw, Cmid) += sum over the tile's pixels of x (shifted by the tap) * dz.
template <typename scalar_t, typename acc_t>
void depthwise_weight_grad_tile_nhwc(const SepConvGeometry& g, const scalar_t* x, const acc_t* dz, int64_t row0,
                                     int64_t rows, acc_t* gwT) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = (row0 + r) / g.Ho, oy = (row0 + r) % g.Ho;
    const scalar_t* x_n = x + n * g.H * g.W * g.C;
    for (int64_t ox = 0; ox < g.Wo; ++ox) {
      const acc_t* dzp = dz + (r * g.Wo + ox) * g.Cmid;
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.sh - g.pt + ky * g.dh;
        if (iy < 0 || iy >= g.H) continue;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.sw - g.pl + kx * g.dw;
          if (ix < 0 || ix >= g.W) continue;
          const scalar_t* xp = x_n + (iy * g.W + ix) * g.C;
          acc_t* gwt = gwT + (ky * g.kw + kx) * g.Cmid;
          if (g.M == 1) {
            XSEP_SIMD
            for (int64_t c = 0; c < g.C; ++c) gwt[c] += static_cast<acc_t>(xp[c]) * dzp[c];
          } else {
            for (int64_t c = 0; c < g.C; ++c) {
              const acc_t xv = static_cast<acc_t>(xp[c]);
              for (int64_t m = 0; m < g.M; ++m) gwt[c * g.M + m] += xv * dzp[c * g.M + m];
            }
          }
        }
      }
    }
  }
}

}  // namespace xsep::cpu
