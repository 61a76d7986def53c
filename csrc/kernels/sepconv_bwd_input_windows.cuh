// The input-gradient kernel's CUDA-core phases where the 3x3 depthwise conv has stride 1,
// dilation 1 and multiplier 1 (every separable conv of Xception): a thread walks whole rows of one
// channel and keeps the 3x3 window it needs in registers, so each step along a row loads three new
// values and does nine FMAs. The general path (sepconv_bwd_input_staged_kernel.cuh) finds every
// tap's position, bounds and 64-bit address anew for every pixel; the H200 profile had it at ~850
// instructions per (pixel, channel) at 128 channels @147, for 18 FMAs of work.
//
// The sums, and what is left out of them, are those of the general path: a tap whose output (for
// grad_x) or input (for grad_dw) does not exist adds nothing, not a zero product (an infinite
// weight or dZ must not turn into NaN there), and grad_x adds its taps in the same order (ky, then
// kx), so it gives the same bits.
#pragma once

#include <cstdint>

#include "element_types.cuh"
#include "sepconv_bwd_tiles.cuh"

namespace xsep {

// Does the sliding-window path take this call? (3x3 is the staged kernel's own condition.)
__host__ __device__ inline bool unit_stride_windows_apply(const SepConvParams& f) {
  return f.sh == 1 && f.sw == 1 && f.dh == 1 && f.dw == 1 && f.M == 1;
}

// grad_x of input channel c0 + cl at the tile's pixels, rows t.iy0 + part, + parts, ...: the
// output of tap (ky, kx) at input pixel (iy, ix) is (iy + pt - ky, ix + pl - kx), read from dz
// ([ext pixel][channel], fp32) where it is in the tile's ext (the ext holds every existing output
// that reads the tile's pixels). The window's column kx = 0 is the newest; each step right shifts
// it one column.
template <typename T, int kLdDz>
__device__ __forceinline__ void grad_x_unit_stride(const SepConvParams& f, const BwdTile& t, const float (*dz)[kLdDz],
                                                   const float (&w)[9], T* __restrict__ gx, int64_t gx_channel,
                                                   int64_t gx_row_stride, int64_t gx_col_stride, int cl, int part,
                                                   int parts) {
  const int ext_h = t.ey1 - t.ey0, ext_w = t.ex1 - t.ex0;
#pragma unroll 1
  for (int iy = t.iy0 + part; iy < t.iy1; iy += parts) {
    int row[3];  // ext row of tap ky's output, or -1
#pragma unroll
    for (int ky = 0; ky < 3; ++ky) {
      const int r = iy + f.pt - ky - t.ey0;
      row[ky] = r >= 0 && r < ext_h ? r * ext_w : -1;
    }
    // ext column of tap kx's output at the row's first pixel: ix0 + pl - ex0 - kx.
    int col = t.ix0 + f.pl - t.ex0;  // tap 0's, the newest column
    float v[3][3];
    bool col_ok[3];
#pragma unroll
    for (int kx = 1; kx < 3; ++kx) {  // the two older columns, loaded before the first step
      const int c = col - kx;
      col_ok[kx] = c >= 0 && c < ext_w;
#pragma unroll
      for (int ky = 0; ky < 3; ++ky) v[ky][kx] = col_ok[kx] && row[ky] >= 0 ? dz[row[ky] + c][cl] : 0.f;
    }
    T* __restrict__ out =
        gx + gx_channel + static_cast<int64_t>(iy) * gx_row_stride + static_cast<int64_t>(t.ix0) * gx_col_stride;
#pragma unroll 1
    for (int ix = t.ix0; ix < t.ix1; ++ix, ++col, out += gx_col_stride) {
      col_ok[0] = col >= 0 && col < ext_w;
#pragma unroll
      for (int ky = 0; ky < 3; ++ky) v[ky][0] = col_ok[0] && row[ky] >= 0 ? dz[row[ky] + col][cl] : 0.f;
      float acc = 0.f;
#pragma unroll
      for (int ky = 0; ky < 3; ++ky) {
#pragma unroll
        for (int kx = 0; kx < 3; ++kx) {
          if (row[ky] >= 0 && col_ok[kx]) acc = fmaf(w[ky * 3 + kx], v[ky][kx], acc);
        }
      }
      *out = from_float<T>(acc);
#pragma unroll
      for (int ky = 0; ky < 3; ++ky) {
        v[ky][2] = v[ky][1];
        v[ky][1] = v[ky][0];
      }
      col_ok[2] = col_ok[1];
      col_ok[1] = col_ok[0];
    }
  }
}

// grad_dw tap sums of channel c0 + cl (acc, nine of them) over the ext pixels this tile owns, ext
// rows part, + parts, ...: output (oy, ox) reads input (oy - pt + ky, ox - pl + kx). The window's
// column kx = 2 is the newest; each step right shifts it one column.
//
// The input columns arrive kGradDwAhead steps ahead of their use, in a ring of that many columns
// (each step refills the slot it empties), so that many columns' loads are in flight while a step
// does its FMAs. With one column ahead, each step waited out most of a load's latency: the H200's
// phase clocks (3ac7082, gpu-checks.md) had this phase at 41-65% of the kernel's cycles, ~17 us a
// CTA at 64 channels @147 for ~290 FMAs a thread.
inline constexpr int kGradDwAhead = 4;

template <typename T, int kLdDz>
__device__ __forceinline__ void grad_dw_unit_stride(const SepConvParams& f, const BwdTile& t, const float (*dz)[kLdDz],
                                                    const bool* own_row, const bool* own_col,
                                                    const T* __restrict__ x_channel, int cl, int part, int parts,
                                                    float (&acc)[9]) {
  const int ext_h = t.ey1 - t.ey0, ext_w = t.ex1 - t.ex0;
  const int64_t xs2 = f.x_stride[2], xs3 = f.x_stride[3];
#pragma unroll 1
  for (int ey = part; ey < ext_h; ey += parts) {
    if (!own_row[ey]) continue;  // another tile sums this output row
    const int iy0 = t.ey0 + ey - f.pt;
    bool row_ok[3];
    const T* rows[3];
#pragma unroll
    for (int ky = 0; ky < 3; ++ky) {
      row_ok[ky] = iy0 + ky >= 0 && iy0 + ky < f.H;
      rows[ky] = x_channel + (row_ok[ky] ? static_cast<int64_t>(iy0 + ky) * xs2 : 0);
    }
    const int ix = t.ex0 - f.pl;  // tap 0's input column at the row's first output
    // Column ix + c's three values (raw), or, outside the image, the row's first elements (masked
    // at the FMAs by `ok`).
    auto load_column = [&](int c, T(&column)[3], bool& ok) {
      ok = ix + c >= 0 && ix + c < f.W;
      const int64_t offset = ok ? static_cast<int64_t>(ix + c) * xs3 : 0;
#pragma unroll
      for (int ky = 0; ky < 3; ++ky) column[ky] = __ldg(rows[ky] + (row_ok[ky] ? offset : 0));
    };
    float v[3][3];
    bool col_ok[3];
#pragma unroll
    for (int kx = 0; kx < 2; ++kx) {  // the two older columns
      T column[3];
      load_column(kx, column, col_ok[kx]);
#pragma unroll
      for (int ky = 0; ky < 3; ++ky) v[ky][kx] = row_ok[ky] && col_ok[kx] ? to_float(column[ky]) : 0.f;
    }
    T ring[kGradDwAhead][3];  // slot j: the newest column of steps j, j + kGradDwAhead, ...
    bool ring_ok[kGradDwAhead];
#pragma unroll
    for (int j = 0; j < kGradDwAhead; ++j) load_column(2 + j, ring[j], ring_ok[j]);
    const float (*dz_row)[kLdDz] = dz + ey * ext_w;
#pragma unroll 1
    for (int ex0 = 0; ex0 < ext_w; ex0 += kGradDwAhead) {
#pragma unroll
      for (int j = 0; j < kGradDwAhead; ++j) {
        const int ex = ex0 + j;
        if (ex >= ext_w) break;
        col_ok[2] = ring_ok[j];
#pragma unroll
        for (int ky = 0; ky < 3; ++ky) v[ky][2] = to_float(ring[j][ky]);  // masked at the FMAs
        if (ex + kGradDwAhead < ext_w) load_column(ex + 2 + kGradDwAhead, ring[j], ring_ok[j]);
        if (own_col[ex]) {
          const float d = dz_row[ex][cl];
#pragma unroll
          for (int ky = 0; ky < 3; ++ky) {
#pragma unroll
            for (int kx = 0; kx < 3; ++kx) {
              if (row_ok[ky] && col_ok[kx]) acc[ky * 3 + kx] = fmaf(v[ky][kx], d, acc[ky * 3 + kx]);
            }
          }
        }
#pragma unroll
        for (int ky = 0; ky < 3; ++ky) {
          v[ky][0] = v[ky][1];
          v[ky][1] = v[ky][2];
        }
        col_ok[0] = col_ok[1];
        col_ok[1] = col_ok[2];
      }
    }
  }
}

}  // namespace xsep
