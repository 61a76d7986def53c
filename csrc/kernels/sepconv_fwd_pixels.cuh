// Where each output pixel of a forward tile reads from and writes to, computed once per CTA (one
// 64-bit division per pixel) and kept in shared memory. Shared by the forward kernels.
#pragma once

#include <cstdint>

#include "sepconv_params.h"

namespace xsep {

template <int BM>
struct FwdPixelTable {
  int64_t x_base[BM];  // offset of x[n, 0, iy0, ix0] (iy0/ix0 may be negative: padding)
  int64_t y_base[BM];  // offset of y[n, 0, oy, ox]; -1 past the last pixel
  int iy0[BM];
  int ix0[BM];

  // Threads 0..BM-1 fill row m for flattened output pixel p0 + m. The caller synchronises.
  __device__ __forceinline__ void fill(const SepConvParams& p, int64_t p0) {
    if (threadIdx.x >= BM) return;
    const int m = threadIdx.x;
    const int64_t pix = p0 + m;
    const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
    if (pix < pixels) {
      const int64_t hw = static_cast<int64_t>(p.Ho) * p.Wo;
      const int64_t n = pix / hw;
      const int rem = static_cast<int>(pix - n * hw);
      const int oy = rem / p.Wo, ox = rem % p.Wo;
      const int iy = oy * p.sh - p.pt, ix = ox * p.sw - p.pl;
      iy0[m] = iy;
      ix0[m] = ix;
      x_base[m] =
          n * p.x_stride[0] + static_cast<int64_t>(iy) * p.x_stride[2] + static_cast<int64_t>(ix) * p.x_stride[3];
      y_base[m] =
          n * p.y_stride[0] + static_cast<int64_t>(oy) * p.y_stride[2] + static_cast<int64_t>(ox) * p.y_stride[3];
    } else {
      iy0[m] = ix0[m] = 0;
      x_base[m] = 0;
      y_base[m] = -1;
    }
  }
};

}  // namespace xsep
