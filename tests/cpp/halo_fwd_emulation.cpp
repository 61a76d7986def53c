// Host emulation of the experimental halo forward kernel's tiling (csrc/kernels/
// sepconv_fwd_halo_plan.h), so its index math is checked on every machine, GPU or not
// (tests/test_halo_plan.py compiles and runs this). For random geometries (kernel 1-7, stride 1-3,
// dilation 1-3, asymmetric padding, channels not a multiple of the chunk) it follows the kernel
// tile by tile and chunk by chunk in double precision: the halo staged with the kernel's
// inside/outside rule, the chunk's weights transposed with the kernel's slot function, every tap
// read through halo_index (and checked to fall inside the staged rectangle), Z rows of pixels past
// the map's edge left zero; then compares Z with a direct depthwise convolution and checks that the
// tiles cover every output pixel exactly once. Prints one line and exits 0 when every case agrees.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "sepconv_fwd_halo_plan.h"

using namespace xsep;

namespace {

struct Case {
  int N, C, H, W, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr;
  int Ho() const { return (H + pt + pb - dh * (kh - 1) - 1) / sh + 1; }
  int Wo() const { return (W + pl + pr - dw * (kw - 1) - 1) / sw + 1; }
};

int fail(const char* what, const Case& c) {
  std::printf("FAILED: %s  N=%d C=%d H=%d W=%d k=%dx%d s=%dx%d d=%dx%d pad t%d b%d l%d r%d\n", what, c.N, c.C, c.H, c.W,
              c.kh, c.kw, c.sh, c.sw, c.dh, c.dw, c.pt, c.pb, c.pl, c.pr);
  return 1;
}

int run_case(const Case& c, std::mt19937& rng) {
  const int Ho = c.Ho(), Wo = c.Wo(), taps = c.kh * c.kw;
  if (Ho < 1 || Wo < 1) return 0;
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> x(static_cast<size_t>(c.N) * c.H * c.W * c.C);  // channels_last
  std::vector<double> w(static_cast<size_t>(c.C) * taps);             // [channel][tap]
  for (double& e : x) e = u(rng);
  for (double& e : w) e = u(rng);
  auto X = [&](int64_t n, int iy, int ix, int ch) { return x[((n * c.H + iy) * c.W + ix) * c.C + ch]; };

  const int kpad = (c.C + kHaloChunk - 1) / kHaloChunk * kHaloChunk;
  const int hh = halo_extent(c.sh, c.kh, c.dh), hw = halo_extent(c.sw, c.kw, c.dw);
  std::vector<int> covered(static_cast<size_t>(c.N) * Ho * Wo, 0);
  std::vector<double> halo(static_cast<size_t>(hh) * hw * kHaloChunk), wt(static_cast<size_t>(taps) * kHaloChunk);
  const int64_t tiles = halo_tile_count(c.N, Ho, Wo);
  for (int64_t block = 0; block < tiles; ++block) {
    const HaloTile t = halo_tile(block, Ho, Wo);
    if (t.n < 0 || t.n >= c.N || t.oy0 >= Ho || t.ox0 >= Wo) return fail("tile outside the output", c);
    const int iy_org = halo_origin(t.oy0, c.sh, c.pt), ix_org = halo_origin(t.ox0, c.sw, c.pl);
    std::vector<double> z(static_cast<size_t>(kHaloTile) * kHaloTile * kpad, 0.0);
    for (int chunk = 0; chunk < kpad / kHaloChunk; ++chunk) {
      const int c0 = chunk * kHaloChunk;
      for (int hp = 0; hp < hh * hw; ++hp) {  // stage_x: zero outside the image and past C
        const int iy = iy_org + hp / hw, ix = ix_org + hp % hw;
        for (int k = 0; k < kHaloChunk; ++k) {
          const bool inside = iy >= 0 && iy < c.H && ix >= 0 && ix < c.W && c0 + k < c.C;
          halo[static_cast<size_t>(hp) * kHaloChunk + k] = inside ? X(t.n, iy, ix, c0 + k) : 0.0;
        }
      }
      for (int idx = 0; idx < kHaloChunk * taps; ++idx) {  // fetch_w + store_w
        const bool live = c0 + idx / taps < c.C;
        const int slot = halo_weight_slot(idx, taps);
        if (slot < 0 || slot >= taps * kHaloChunk) return fail("weight slot outside the staged weights", c);
        wt[slot] = live ? w[static_cast<size_t>(chunk) * kHaloChunk * taps + idx] : 0.0;
      }
      for (int m = 0; m < kHaloTile * kHaloTile; ++m) {
        const int r = m / kHaloTile, col = m % kHaloTile;
        const bool live = t.oy0 + r < Ho && t.ox0 + col < Wo;
        for (int k = 0; k < kHaloChunk; ++k) {
          double acc = 0.0;
          for (int ky = 0; ky < c.kh; ++ky)
            for (int kx = 0; kx < c.kw; ++kx) {
              const int hp = halo_index(r, col, ky, kx, c.sh, c.sw, c.dh, c.dw, hw);
              if (hp < 0 || hp >= hh * hw) return fail("tap outside the staged halo", c);
              acc += halo[static_cast<size_t>(hp) * kHaloChunk + k] *
                     wt[static_cast<size_t>(ky * c.kw + kx) * kHaloChunk + k];
            }
          z[static_cast<size_t>(m) * kpad + c0 + k] = live ? acc : 0.0;
        }
      }
    }
    for (int m = 0; m < kHaloTile * kHaloTile; ++m) {  // compare with a direct depthwise conv
      const int oy = t.oy0 + m / kHaloTile, ox = t.ox0 + m % kHaloTile;
      for (int k = 0; k < kpad; ++k) {
        double want = 0.0;
        if (oy < Ho && ox < Wo && k < c.C) {
          for (int ky = 0; ky < c.kh; ++ky)
            for (int kx = 0; kx < c.kw; ++kx) {
              const int iy = oy * c.sh - c.pt + ky * c.dh, ix = ox * c.sw - c.pl + kx * c.dw;
              if (iy >= 0 && iy < c.H && ix >= 0 && ix < c.W)
                want += X(t.n, iy, ix, k) * w[static_cast<size_t>(k) * taps + ky * c.kw + kx];
            }
        }
        if (std::fabs(z[static_cast<size_t>(m) * kpad + k] - want) > 1e-9)
          return fail("Z differs from a direct depthwise conv", c);
      }
      if (oy < Ho && ox < Wo) ++covered[(static_cast<size_t>(t.n) * Ho + oy) * Wo + ox];
    }
  }
  for (int v : covered)
    if (v != 1) return fail("an output pixel is covered by no tile or by several", c);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 300;
  std::mt19937 rng(12345);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int failed = 0;
  // Xception's entry-flow geometry first (3x3, stride 1, padding 1), then random ones.
  failed += run_case(Case{1, 40, 19, 21, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, rng);
  for (int i = 1; i < cases; ++i) {
    Case c;
    c.N = pick(1, 2), c.C = pick(1, 70), c.H = pick(1, 26), c.W = pick(1, 26);
    c.kh = pick(1, 7), c.kw = pick(1, 7), c.sh = pick(1, 3), c.sw = pick(1, 3), c.dh = pick(1, 3), c.dw = pick(1, 3);
    c.pt = pick(0, 4), c.pb = pick(0, 4), c.pl = pick(0, 4), c.pr = pick(0, 4);
    failed += run_case(c, rng);
  }
  std::printf("%d cases, %d failed\n", cases, failed);
  return failed == 0 ? 0 : 1;
}
