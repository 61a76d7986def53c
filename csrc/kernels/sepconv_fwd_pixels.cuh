// Where each output pixel of a forward tile reads from and writes to, computed once per CTA (one
// 64-bit division per pixel) and kept in shared memory. Shared by the forward kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sepconv_params.h"

namespace xsep {

// A forward kernel's static shared memory (its pixel table, `declared` bytes) as the driver counts
// it against the per-block opt-in limit, with the dynamic bytes: ptxas adds a kilobyte to every
// sm_90 kernel's (cuobjdump --dump-resource-usage: the resident kernel's 768-byte table reads 768
// on sm_80, 1792 on sm_90), which sizeof cannot see. The launchers budget for it on every device.
constexpr size_t kernel_static_shared_bytes(size_t declared) { return declared + 1024; }

// Output pixel `pix` (< N * Ho * Wo): the input row/column its window's corner falls on (negative
// in the padding) and the offsets of x[n, 0, iy, ix] and y[n, 0, oy, ox].
struct FwdPixelOrigin {
  int iy, ix;
  int64_t x_base, y_base;
};

// Output pixel `pix` (< N * Ho * Wo) as image, row and column. With p's multiply-high divisors
// (set_output_divisors) and pix below 2^31, two of those (a few instructions each); else long
// division. kNarrow: the tensor has fewer than 2^31 pixels, and the division is 32-bit long division
// only (the streamed forward's: at its limit of 128 registers a thread the multiply-high path beside
// it spilled; a 64-bit division is a call whose scratch registers such a kernel may have to spill too).
template <bool kNarrow = false>
__device__ __forceinline__ void fwd_pixel_coords(const SepConvParams& p, int64_t pix, int64_t& n, int& oy, int& ox) {
  int rem;
  const int64_t hw = static_cast<int64_t>(p.Ho) * p.Wo;
  if (!kNarrow && pix <= INT32_MAX && p.out_hw.divisor == hw && p.out_w.divisor == p.Wo) {
    int image;
    p.out_hw.divmod(static_cast<int>(pix), &image, &rem);
    n = image;
    p.out_w.divmod(rem, &oy, &ox);
  } else {
    if constexpr (kNarrow) {
      const int q = static_cast<int>(pix);
      n = q / static_cast<int>(hw), rem = q - static_cast<int>(n * hw);
    } else {
      n = pix / hw;
      rem = static_cast<int>(pix - n * hw);
    }
    oy = rem / p.Wo, ox = rem % p.Wo;
  }
}

// Where output pixel `pix` reads and writes (fwd_pixel_coords' division, kNarrow its).
template <bool kNarrow = false>
__device__ __forceinline__ FwdPixelOrigin fwd_pixel_origin(const SepConvParams& p, int64_t pix) {
  int64_t n;
  int oy, ox;
  fwd_pixel_coords<kNarrow>(p, pix, n, oy, ox);
  FwdPixelOrigin o;
  o.iy = oy * p.sh - p.pt, o.ix = ox * p.sw - p.pl;
  o.x_base =
      n * p.x_stride[0] + static_cast<int64_t>(o.iy) * p.x_stride[2] + static_cast<int64_t>(o.ix) * p.x_stride[3];
  o.y_base = n * p.y_stride[0] + static_cast<int64_t>(oy) * p.y_stride[2] + static_cast<int64_t>(ox) * p.y_stride[3];
  return o;
}

// Whether input row iy, column ix is inside the image (not the padding).
__device__ __forceinline__ bool inside_image(const SepConvParams& p, int iy, int ix) {
  return iy >= 0 && iy < p.H && ix >= 0 && ix < p.W;
}

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
    if (pix < static_cast<int64_t>(p.N) * p.Ho * p.Wo) {
      const FwdPixelOrigin o = fwd_pixel_origin(p, pix);
      iy0[m] = o.iy, ix0[m] = o.ix;
      x_base[m] = o.x_base, y_base[m] = o.y_base;
    } else {
      iy0[m] = ix0[m] = 0;
      x_base[m] = 0;
      y_base[m] = -1;
    }
  }

  // Whether pixel m is one of the tensor's (else its depthwise result is zero, and unused).
  __device__ __forceinline__ bool reads_input(int m) const { return y_base[m] >= 0; }

  // Whether tap (ky, kx) of pixel m's window reads inside the image (not the padding).
  __device__ __forceinline__ bool tap_inside(const SepConvParams& p, int m, int ky, int kx) const {
    return inside_image(p, iy0[m] + ky * p.dh, ix0[m] + kx * p.dw);
  }
};

// FwdPixelTable's reading half for a fixed kKH x kKW kernel (at most 16 taps), for a kernel that
// finds each thread's few output offsets itself (fwd_pixel_origin): one bit per tap says whether it
// reads inside the image, in place of the window's corner, and no output offsets. 10 bytes a pixel
// instead of 24: the wgmma forward's shared memory is full to the last kilobyte at 728 channels,
// and the 1.75 KB this frees at 128 pixels is what a fifth weight-ring slot needs.
template <int BM, int kKH, int kKW>
struct FwdTapTable {
  static_assert(kKH * kKW <= 16, "one bit per tap in 16");
  int64_t x_base[BM];
  uint16_t taps[BM];  // bit ky * kKW + kx: that tap is inside the image (none past the last pixel)

  __device__ __forceinline__ void fill(const SepConvParams& p, int64_t p0) {
    if (threadIdx.x < BM) fill_row(p, p0, threadIdx.x);
  }

  // Row m (< BM) alone, by whichever thread the caller assigns it (kNarrow: fwd_pixel_origin's).
  template <bool kNarrow = false>
  __device__ __forceinline__ void fill_row(const SepConvParams& p, int64_t p0, int m) {
    const int64_t pix = p0 + m;
    unsigned bits = 0;
    int64_t base = 0;
    if (pix < static_cast<int64_t>(p.N) * p.Ho * p.Wo) {
      const FwdPixelOrigin o = fwd_pixel_origin<kNarrow>(p, pix);
      for (int ky = 0; ky < kKH; ++ky)
        for (int kx = 0; kx < kKW; ++kx)
          if (inside_image(p, o.iy + ky * p.dh, o.ix + kx * p.dw)) bits |= 1u << (ky * kKW + kx);
      base = o.x_base;
    }
    taps[m] = static_cast<uint16_t>(bits);
    x_base[m] = base;
  }

  // Whether pixel m reads any input: a pixel past the last, or whose window lies wholly in the
  // padding, has a zero depthwise result.
  __device__ __forceinline__ bool reads_input(int m) const { return taps[m] != 0; }

  __device__ __forceinline__ bool tap_inside(const SepConvParams&, int m, int ky, int kx) const {
    return (taps[m] >> (ky * kKW + kx)) & 1;
  }
};

}  // namespace xsep
