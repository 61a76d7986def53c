// The forward kernels' epilogue: a BM pixels x BN output channels tile of fp32 accumulators,
// staged in shared memory as c[m * kLdC + n], plus the bias, rounded once and written to y.
// channels_last: neighbouring threads take neighbouring output channels; NCHW: neighbouring pixels
// (coalesced either way).
#pragma once

#include <cstdint>

#include "element_types.cuh"
#include "sepconv_params.h"

namespace xsep {

template <class Traits>
__device__ __forceinline__ void store_output_tile(const SepConvParams& p, const int64_t* y_base, const float* c,
                                                  int co0) {
  using T = typename Traits::T;
  constexpr int BM = Traits::BM, BN = Traits::BN, kThreads = Traits::kThreads;
  T* __restrict__ y = static_cast<T*>(p.y);
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
#pragma unroll 4
  for (int i = 0; i < BM * BN / kThreads; ++i) {
    const int idx = threadIdx.x + i * kThreads;
    const int m = Traits::kChannelsLast ? idx / BN : idx % BM;
    const int n = Traits::kChannelsLast ? idx % BN : idx / BM;
    const int co = co0 + n;
    if (co >= p.Cout || y_base[m] < 0) continue;  // past Cout, or past the last pixel
    float v = c[m * Traits::kLdC + n];
    if (bias != nullptr) v += to_float(__ldg(bias + co));
    y[y_base[m] + static_cast<int64_t>(co) * p.y_stride[1]] = from_float<T>(v);
  }
}

}  // namespace xsep
