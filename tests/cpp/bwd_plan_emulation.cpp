// Host emulation of the fused CUDA backward's tiling (csrc/kernels/sepconv_bwd_plan.h), so the
// index logic is checked on every machine, GPU or not (tests/test_bwd_plan.py compiles and runs
// this). For random geometries it plans the tiles, then follows the input-gradient kernel's
// algorithm tile by tile in double precision — dZ recomputed over each tile's ext only, grad_x
// gathered from it, grad_dw summed over the output pixels the tile owns — and compares with a
// direct (scatter) backward over the whole image. Also checks the grouping of the fixed-order
// reduction. Prints one line and exits 0 when every case agrees.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "sepconv_bwd_plan.h"

using xsep::BwdGeometry;
using xsep::BwdTile;
using xsep::BwdTilePlan;

namespace {

constexpr int kRows = 128;  // kBwdInputRows of csrc/kernels/sepconv_bwd.h

struct Case {
  BwdGeometry g;
  int C, M, Cout, pb, pr;
};

int fail(const char* what, const Case& c) {
  const BwdGeometry& g = c.g;
  std::printf("FAILED: %s  N=%d C=%d M=%d Cout=%d H=%d W=%d k=%dx%d s=%dx%d d=%dx%d pad t%d b%d l%d r%d\n", what, g.N,
              c.C, c.M, c.Cout, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, c.pb, g.pl, c.pr);
  return 1;
}

int run_case(const Case& c, std::mt19937& rng) {
  const BwdGeometry& g = c.g;
  const int Cmid = c.C * c.M, taps = g.kh * g.kw;
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  auto randv = [&](size_t n) {
    std::vector<double> v(n);
    for (double& e : v) e = u(rng);
    return v;
  };
  const auto x = randv(static_cast<size_t>(g.N) * c.C * g.H * g.W);  // NCHW
  const auto wdw = randv(static_cast<size_t>(Cmid) * taps);
  const auto wpw = randv(static_cast<size_t>(c.Cout) * Cmid);
  const auto dy = randv(static_cast<size_t>(g.N) * c.Cout * g.Ho * g.Wo);
  auto X = [&](int n, int ch, int iy, int ix) { return x[((static_cast<size_t>(n) * c.C + ch) * g.H + iy) * g.W + ix]; };
  auto DY = [&](int n, int co, int oy, int ox) {
    return dy[((static_cast<size_t>(n) * c.Cout + co) * g.Ho + oy) * g.Wo + ox];
  };
  auto dz_at = [&](int n, int cm, int oy, int ox) {
    double s = 0;
    for (int co = 0; co < c.Cout; ++co) s += DY(n, co, oy, ox) * wpw[static_cast<size_t>(co) * Cmid + cm];
    return s;
  };

  // Direct backward: scatter every output's dZ through its taps.
  std::vector<double> gx_ref(x.size(), 0.0), gdw_ref(wdw.size(), 0.0);
  for (int n = 0; n < g.N; ++n)
    for (int cm = 0; cm < Cmid; ++cm)
      for (int oy = 0; oy < g.Ho; ++oy)
        for (int ox = 0; ox < g.Wo; ++ox) {
          const double dz = dz_at(n, cm, oy, ox);
          for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx) {
              const int iy = oy * g.sh - g.pt + ky * g.dh, ix = ox * g.sw - g.pl + kx * g.dw;
              if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
              const int ch = cm / c.M;
              gx_ref[((static_cast<size_t>(n) * c.C + ch) * g.H + iy) * g.W + ix] += wdw[cm * taps + ky * g.kw + kx] * dz;
              gdw_ref[cm * taps + ky * g.kw + kx] += X(n, ch, iy, ix) * dz;
            }
        }

  const BwdTilePlan plan = xsep::plan_bwd_tiles(g, kRows);
  if (!plan.ok) return fail("no plan", c);
  if (plan.max_ext_h * plan.max_ext_w > kRows) return fail("plan exceeds the GEMM rows", c);

  // The kernel, tile by tile (all channels at once: the channel chunks are independent).
  std::vector<double> gx(x.size(), std::nan("")), gdw(wdw.size(), 0.0);
  std::vector<int> written(x.size(), 0);
  const int64_t tiles = static_cast<int64_t>(g.N) * plan.tiles_y * plan.tiles_x;
  std::vector<double> partials(static_cast<size_t>(tiles) * Cmid * taps, 0.0);
  for (int64_t ti = 0; ti < tiles; ++ti) {
    const BwdTile t = xsep::bwd_tile(g, plan, ti);
    const int ext_h = t.ey1 - t.ey0, ext_w = t.ex1 - t.ex0;
    if (ext_h * ext_w > kRows || ext_h < 0 || ext_w < 0) return fail("tile ext exceeds the GEMM rows", c);
    std::vector<double> dz(static_cast<size_t>(ext_h) * ext_w * Cmid);
    for (int e = 0; e < ext_h * ext_w; ++e)
      for (int cm = 0; cm < Cmid; ++cm) dz[e * Cmid + cm] = dz_at(t.n, cm, t.ey0 + e / ext_w, t.ex0 + e % ext_w);
    std::vector<char> own_row(ext_h), own_col(ext_w);
    for (int e = 0; e < ext_h; ++e) {
      const int r = xsep::first_inside_tap(t.ey0 + e, g.sh, g.pt, g.kh, g.dh, g.H);
      own_row[e] = r >= t.iy0 && r < t.iy1;
    }
    for (int e = 0; e < ext_w; ++e) {
      const int r = xsep::first_inside_tap(t.ex0 + e, g.sw, g.pl, g.kw, g.dw, g.W);
      own_col[e] = r >= t.ix0 && r < t.ix1;
    }
    for (int ch = 0; ch < c.C; ++ch)
      for (int iy = t.iy0; iy < t.iy1; ++iy)
        for (int ix = t.ix0; ix < t.ix1; ++ix) {
          double acc = 0;
          for (int ky = 0; ky < g.kh; ++ky) {
            const int oy = xsep::output_of_tap(iy, ky, g.sh, g.pt, g.dh, g.Ho);
            // The kernels' division-free form at stride 1 must agree.
            if (g.sh == 1 && oy != xsep::stride1_output_of_tap(iy, ky, g.pt, g.dh, g.Ho))
              return fail("stride1_output_of_tap disagrees", c);
            if (oy < 0) continue;
            for (int kx = 0; kx < g.kw; ++kx) {
              const int ox = xsep::output_of_tap(ix, kx, g.sw, g.pl, g.dw, g.Wo);
              if (g.sw == 1 && ox != xsep::stride1_output_of_tap(ix, kx, g.pl, g.dw, g.Wo))
                return fail("stride1_output_of_tap disagrees", c);
              if (ox < 0) continue;
              if (oy < t.ey0 || oy >= t.ey1 || ox < t.ex0 || ox >= t.ex1) return fail("tap outside the ext", c);
              const int e = (oy - t.ey0) * ext_w + (ox - t.ex0);
              for (int m = 0; m < c.M; ++m) acc += wdw[(ch * c.M + m) * taps + ky * g.kw + kx] * dz[e * Cmid + ch * c.M + m];
            }
          }
          const size_t at = ((static_cast<size_t>(t.n) * c.C + ch) * g.H + iy) * g.W + ix;
          gx[at] = acc;
          ++written[at];
        }
    for (int cm = 0; cm < Cmid; ++cm)
      for (int tap = 0; tap < taps; ++tap) {
        const int ky = tap / g.kw, kx = tap % g.kw;
        double acc = 0;
        for (int ey = 0; ey < ext_h; ++ey) {
          const int iy = (t.ey0 + ey) * g.sh - g.pt + ky * g.dh;
          if (!own_row[ey] || iy < 0 || iy >= g.H) continue;
          for (int ex = 0; ex < ext_w; ++ex) {
            const int ix = (t.ex0 + ex) * g.sw - g.pl + kx * g.dw;
            if (!own_col[ex] || ix < 0 || ix >= g.W) continue;
            acc += X(t.n, cm / c.M, iy, ix) * dz[(ey * ext_w + ex) * Cmid + cm];
          }
        }
        partials[(static_cast<size_t>(ti) * Cmid + cm) * taps + tap] = acc;
      }
  }
  // The reduction's grouping (reduce_partials): groups of 32 rows while more than 64 are left.
  int64_t count = tiles;
  const size_t len = static_cast<size_t>(Cmid) * taps;
  std::vector<double> rows = partials;
  while (count > 64) {
    const int64_t groups = (count + 31) / 32;
    std::vector<double> next(static_cast<size_t>(groups) * len, 0.0);
    for (int64_t r = 0; r < count; ++r)
      for (size_t j = 0; j < len; ++j) next[(r / 32) * len + j] += rows[r * len + j];
    rows.swap(next);
    count = groups;
  }
  for (int64_t r = 0; r < count; ++r)
    for (size_t j = 0; j < len; ++j) gdw[j] += rows[r * len + j];

  for (size_t i = 0; i < gx.size(); ++i) {
    if (written[i] != 1) return fail("a grad_x element not written exactly once", c);
    if (!(std::fabs(gx[i] - gx_ref[i]) <= 1e-9 * (1 + std::fabs(gx_ref[i])))) return fail("grad_x differs", c);
  }
  for (size_t i = 0; i < gdw.size(); ++i) {
    if (!(std::fabs(gdw[i] - gdw_ref[i]) <= 1e-9 * (1 + std::fabs(gdw_ref[i])))) return fail("grad_dw differs", c);
  }
  return 0;
}

int out_size(int in, int pad_total, int k, int d, int s) { return (in + pad_total - d * (k - 1) - 1) / s + 1; }

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 400;
  std::mt19937 rng(1234);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int failures = 0, run = 0, unplanned = 0;
  // Fixed cases first: Xception's 3x3 layers at the real map sizes, a large map with many tiles.
  std::vector<Case> fixed;
  for (int hw : {19, 10, 37, 74}) fixed.push_back({{1, hw, hw, hw, hw, 3, 3, 1, 1, 1, 1, 1, 1}, 2, 1, 3, 1, 1});
  fixed.push_back({{2, 150, 9, 75, 9, 3, 3, 2, 1, 0, 1, 1, 1}, 1, 1, 2, 1, 1});  // many tiles: the reduce groups
  for (const Case& c : fixed) {
    failures += run_case(c, rng);
    ++run;
  }
  while (run < cases) {
    Case c{};
    BwdGeometry& g = c.g;
    g.N = pick(1, 2);
    c.C = pick(1, 3);
    c.M = pick(1, 3);
    c.Cout = pick(1, 3);
    g.kh = pick(1, 7);
    g.kw = pick(1, 7);
    g.sh = pick(1, 3);
    g.sw = pick(1, 3);
    g.dh = pick(1, 3);
    g.dw = pick(1, 3);
    g.H = pick(1, 30);
    g.W = pick(1, 30);
    g.pt = pick(0, 4);
    c.pb = pick(0, 4);
    g.pl = pick(0, 4);
    c.pr = pick(0, 4);
    g.Ho = out_size(g.H, g.pt + c.pb, g.kh, g.dh, g.sh);
    g.Wo = out_size(g.W, g.pl + c.pr, g.kw, g.dw, g.sw);
    if (g.Ho < 1 || g.Wo < 1) continue;
    const BwdTilePlan plan = xsep::plan_bwd_tiles(g, kRows);
    if (!plan.ok) {  // allowed only when even a 1x1 tile's halo is larger than the GEMM
      int lo, hi, lo2, hi2;
      xsep::touching_outputs(0, 1, g.sh, g.pt, g.kh, g.dh, g.Ho, &lo, &hi);
      xsep::touching_outputs(0, 1, g.sw, g.pl, g.kw, g.dw, g.Wo, &lo2, &hi2);
      if (xsep::max_ext(g.H, 1, g.sh, g.pt, g.kh, g.dh, g.Ho) * xsep::max_ext(g.W, 1, g.sw, g.pl, g.kw, g.dw, g.Wo) <=
          kRows)
        failures += fail("no plan although 1x1 tiles fit", c);
      ++unplanned;
      ++run;
      continue;
    }
    failures += run_case(c, rng);
    ++run;
  }
  std::printf("%d cases, %d without a fused plan, %d failed\n", run, unplanned, failures);
  return failures == 0 ? 0 : 1;
}
