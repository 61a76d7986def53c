// Per-CTA tables the backward kernels share (the first and the staged ones).
#pragma once

#include <cstdint>

#include "sepconv_bwd_plan.h"
#include "sepconv_params.h"

namespace xsep {

// For each ext pixel e < BM of input tile t: gy_base[e], the offset of grad_y[n, 0, oy, ox] (-1
// past the ext), and whether the tile counts ext row / column e in grad_dw (own_row, own_col: the
// output's first tap inside the image falls in the tile, first_inside_tap). The caller synchronises.
template <int BM, int kThreads>
__device__ __forceinline__ void fill_ext_tables(const SepConvParams& f, const BwdTile& t, int kh, int kw,
                                                int64_t* gy_base, bool* own_row, bool* own_col) {
  const int ext_h = t.ey1 - t.ey0, ext_w = t.ex1 - t.ex0, ext_count = ext_h * ext_w;
  for (int e = threadIdx.x; e < BM; e += kThreads) {
    gy_base[e] = -1;
    if (e < ext_count) {
      const int oy = t.ey0 + e / ext_w, ox = t.ex0 + e % ext_w;
      gy_base[e] =
          t.n * f.y_stride[0] + static_cast<int64_t>(oy) * f.y_stride[2] + static_cast<int64_t>(ox) * f.y_stride[3];
    }
    if (e < ext_h) {
      const int r = first_inside_tap(t.ey0 + e, f.sh, f.pt, kh, f.dh, f.H);
      own_row[e] = r >= t.iy0 && r < t.iy1;
    }
    if (e < ext_w) {
      const int r = first_inside_tap(t.ex0 + e, f.sw, f.pl, kw, f.dw, f.W);
      own_col[e] = r >= t.ix0 && r < t.ix1;
    }
  }
}

// The output pixels [*begin, *end) of split `split` of the pw-gradient kernel.
__device__ __forceinline__ void pw_split_pixels(const SepConvBwdParams& p, int split, int64_t* begin, int64_t* end) {
  const int64_t pixels = static_cast<int64_t>(p.fwd.N) * p.fwd.Ho * p.fwd.Wo;
  *begin = static_cast<int64_t>(split) * p.pw_pixels_per_split;
  *end = *begin + p.pw_pixels_per_split < pixels ? *begin + p.pw_pixels_per_split : pixels;
}

}  // namespace xsep
