// The halo forward kernel's index math (sepconv_fwd_halo_kernel.cuh), host-device and free of CUDA
// headers so tests/cpp/halo_fwd_emulation.cpp checks it on every machine: which output tile a CTA
// owns, the input rectangle (halo) it stages, where each tap of each output pixel sits in it, and
// where a depthwise weight goes when a chunk is transposed to [tap][channel].
#pragma once

#include <cstdint>

#include "host_device.h"

namespace xsep {

constexpr int kHaloTile = 8;    // output rows and columns per CTA: 64 pixels
constexpr int kHaloChunk = 32;  // channels staged per step (= the GEMM's BK, so Z's padding matches)

// Rows (or columns) of input that kHaloTile outputs read: stride s, kernel extent k, dilation d.
XSEP_HD int halo_extent(int s, int k, int d) { return (kHaloTile - 1) * s + (k - 1) * d + 1; }

XSEP_HD int halo_tiles_along(int out) { return (out + kHaloTile - 1) / kHaloTile; }

XSEP_HD int64_t halo_tile_count(int n, int ho, int wo) {
  return static_cast<int64_t>(n) * halo_tiles_along(ho) * halo_tiles_along(wo);
}

// Tile `block` (image-major, then rows, then columns): its image and first output pixel.
struct HaloTile {
  int64_t n;
  int oy0, ox0;
};

XSEP_HD HaloTile halo_tile(int64_t block, int ho, int wo) {
  const int tiles_x = halo_tiles_along(wo), tiles_y = halo_tiles_along(ho);
  HaloTile t;
  t.ox0 = static_cast<int>(block % tiles_x) * kHaloTile;
  t.oy0 = static_cast<int>((block / tiles_x) % tiles_y) * kHaloTile;
  t.n = block / (static_cast<int64_t>(tiles_x) * tiles_y);
  return t;
}

// The input row (or column) of the halo's first row: first output o0, stride s, padding before pad.
XSEP_HD int halo_origin(int o0, int s, int pad) { return o0 * s - pad; }

// Index into the staged halo (row-major, halo_w wide) of tap (ky, kx) of the tile's output pixel
// (r, col); the halo's (0, 0) is input (oy0 * sh - pt, ox0 * sw - pl).
XSEP_HD int halo_index(int r, int col, int ky, int kx, int sh, int sw, int dh, int dw, int halo_w) {
  return (r * sh + ky * dh) * halo_w + col * sw + kx * dw;
}

// A chunk's depthwise weights are contiguous as [channel][tap] in memory; element idx of the chunk
// goes to [tap][channel] in shared memory.
XSEP_HD int halo_weight_slot(int idx, int taps) { return (idx % taps) * kHaloChunk + idx / taps; }

}  // namespace xsep
