// Integer geometry of the fused backward, shared by the kernels (device) and the host code that
// plans a launch and sizes its workspace. Plain C++: it compiles with nvcc and with a host
// compiler alone, so tests/cpp/bwd_plan_emulation.cpp checks the tiling on any machine.
//
// The input-gradient kernel gives each CTA a rectangle of *input* pixels (a tile) of one image.
// It recomputes dZ = dY . W_pw for every output pixel whose receptive field touches the tile (the
// tile's "ext" rectangle, a halo around it), so that grad_x of every pixel in the tile is
// gathered from shared memory and written once: no atomics, no dZ in global memory. For
// grad_dw each output pixel is counted by exactly one tile, the one holding its first tap inside
// the image (`first_inside_tap`); the per-tile partial sums are added in a fixed order after.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace xsep {

XSEP_HD int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }  // b > 0
XSEP_HD int ceil_div(int a, int b) { return -floor_div(-a, b); }
XSEP_HD int imin(int a, int b) { return a < b ? a : b; }
XSEP_HD int imax(int a, int b) { return a > b ? a : b; }

// Along one axis: output coordinates o in [*lo, *hi) whose taps o*s - pad + k*d (0 <= k < taps)
// can land in the input interval [i0, i1). A superset when the dilation skips over the interval;
// the gather tests every tap exactly.
XSEP_HD void touching_outputs(int i0, int i1, int s, int pad, int taps, int d, int out, int* lo, int* hi) {
  *lo = imax(0, ceil_div(i0 + pad - (taps - 1) * d, s));
  *hi = imin(out, floor_div(i1 - 1 + pad, s) + 1);
  if (*hi < *lo) *hi = *lo;
}

// Along one axis: the input coordinate of output o's first tap inside [0, in), or -1 when every
// tap falls in the padding (then o contributes nothing to any gradient of x or w_dw).
XSEP_HD int first_inside_tap(int o, int s, int pad, int taps, int d, int in) {
  const int r0 = o * s - pad;
  const int k = r0 >= 0 ? 0 : ceil_div(-r0, d);
  if (k >= taps) return -1;
  const int r = r0 + k * d;
  return r < in ? r : -1;
}

// Along one axis: the output coordinate that input i reads through tap k, or -1 if none does.
XSEP_HD int output_of_tap(int i, int k, int s, int pad, int d, int out) {
  const int num = i + pad - k * d;
  if (num < 0 || num % s != 0) return -1;
  const int o = num / s;
  return o < out ? o : -1;
}

// output_of_tap for stride 1: no division.
XSEP_HD int stride1_output_of_tap(int i, int k, int pad, int d, int out) {
  const int o = i + pad - k * d;
  return o >= 0 && o < out ? o : -1;
}

// The sizes the plan needs (a subset of SepConvParams, so host tests need no CUDA headers).
struct BwdGeometry {
  int N, H, W, Ho, Wo, kh, kw, sh, sw, pt, pl, dh, dw;
};

// Tile shape of the input-gradient kernel: tih x tiw input pixels per tile, tiles_y x tiles_x
// tiles per image; every tile's ext rectangle has at most `rows` output pixels (the GEMM's M).
struct BwdTilePlan {
  int tih = 0, tiw = 0;
  int tiles_y = 0, tiles_x = 0;
  int max_ext_h = 0, max_ext_w = 0;
  bool ok = false;  // false: no tile fits (a huge kernel or dilation); the caller falls back
};

// One tile of one image: the input rectangle it owns and the output rectangle it recomputes.
struct BwdTile {
  int n;
  int iy0, iy1, ix0, ix1;  // owned input pixels [iy0, iy1) x [ix0, ix1)
  int ey0, ey1, ex0, ex1;  // recomputed output pixels (ext) [ey0, ey1) x [ex0, ex1)
};

XSEP_HD BwdTile bwd_tile(const BwdGeometry& g, const BwdTilePlan& plan, int64_t index) {
  BwdTile t;
  const int64_t per_image = static_cast<int64_t>(plan.tiles_y) * plan.tiles_x;
  t.n = static_cast<int>(index / per_image);
  const int r = static_cast<int>(index - t.n * per_image);
  const int ty = r / plan.tiles_x, tx = r % plan.tiles_x;
  t.iy0 = ty * plan.tih;
  t.iy1 = imin(g.H, t.iy0 + plan.tih);
  t.ix0 = tx * plan.tiw;
  t.ix1 = imin(g.W, t.ix0 + plan.tiw);
  touching_outputs(t.iy0, t.iy1, g.sh, g.pt, g.kh, g.dh, g.Ho, &t.ey0, &t.ey1);
  touching_outputs(t.ix0, t.ix1, g.sw, g.pl, g.kw, g.dw, g.Wo, &t.ex0, &t.ex1);
  return t;
}

// The largest ext extent along one axis over all tiles of size `tile` covering [0, in).
inline int max_ext(int in, int tile, int s, int pad, int taps, int d, int out) {
  int best = 0;
  for (int i0 = 0; i0 < in; i0 += tile) {
    int lo = 0, hi = 0;
    touching_outputs(i0, imin(in, i0 + tile), s, pad, taps, d, out, &lo, &hi);
    best = imax(best, hi - lo);
  }
  return best;
}

// The tile shape with the fewest tiles (each tile is one GEMM of `rows` rows, so fewer tiles is
// less recomputed work) among those whose ext fits in `rows`; ties go to squarer tiles.
inline BwdTilePlan plan_bwd_tiles(const BwdGeometry& g, int rows) {
  BwdTilePlan best;
  if (g.H <= 0 || g.W <= 0) return best;
  // ext extents depend on one axis each: tabulate, then search the pairs.
  const int hmax = imin(g.H, rows), wmax = imin(g.W, rows);
  int ext_h[129] = {0}, ext_w[129] = {0};  // rows <= 128
  if (rows > 128) return best;
  for (int t = 1; t <= hmax; ++t) ext_h[t] = max_ext(g.H, t, g.sh, g.pt, g.kh, g.dh, g.Ho);
  for (int t = 1; t <= wmax; ++t) ext_w[t] = max_ext(g.W, t, g.sw, g.pl, g.kw, g.dw, g.Wo);
  int64_t best_tiles = -1;
  int best_skew = 0;
  for (int th = 1; th <= hmax; ++th) {
    for (int tw = 1; tw <= wmax; ++tw) {
      if (static_cast<int64_t>(ext_h[th]) * ext_w[tw] > rows) continue;
      const int64_t tiles = static_cast<int64_t>(ceil_div(g.H, th)) * ceil_div(g.W, tw);
      const int skew = th > tw ? th - tw : tw - th;
      if (best_tiles < 0 || tiles < best_tiles || (tiles == best_tiles && skew < best_skew)) {
        best_tiles = tiles;
        best_skew = skew;
        best.tih = th;
        best.tiw = tw;
      }
    }
  }
  if (best_tiles < 0) return best;
  best.tiles_y = ceil_div(g.H, best.tih);
  best.tiles_x = ceil_div(g.W, best.tiw);
  best.max_ext_h = ext_h[best.tih];
  best.max_ext_w = ext_w[best.tiw];
  best.ok = true;
  return best;
}

}  // namespace xsep
