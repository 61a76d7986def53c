// The forward kernels' epilogue: a BM pixels x BN output channels tile of fp32 accumulators,
// staged in shared memory as c[m * kLdC + n], plus the bias, rounded once and written to y.
// channels_last: neighbouring threads take neighbouring output channels; NCHW: neighbouring pixels
// (coalesced either way).
#pragma once

#include <cstdint>

#include "element_types.cuh"
#include "sepconv_params.h"

namespace xsep {

// Where y is channels_last with 16-byte aligned pixels (unit channel stride, the other strides and
// Cout multiples of a 16-byte vector, an aligned base), each thread writes 16 bytes: one store
// per eight 16-bit (four fp32) outputs. Uniform over the grid.
template <class Traits>
__host__ __device__ __forceinline__ bool output_vec_applies(const SepConvParams& p) {
  constexpr int kVec = 16 / sizeof(typename Traits::T);
  return Traits::kChannelsLast && p.y_stride[1] == 1 && p.Cout % kVec == 0 && p.y_stride[0] % kVec == 0 &&
         p.y_stride[2] % kVec == 0 && p.y_stride[3] % kVec == 0 && reinterpret_cast<uintptr_t>(p.y) % 16 == 0;
}

template <class Traits>
__device__ __forceinline__ void store_output_tile(const SepConvParams& p, const int64_t* y_base, const float* c,
                                                  int co0) {
  using T = typename Traits::T;
  constexpr int BM = Traits::BM, BN = Traits::BN, kThreads = Traits::kThreads;
  T* __restrict__ y = static_cast<T*>(p.y);
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  if constexpr (Traits::kChannelsLast) {
    constexpr int kVec = 16 / sizeof(T), kGroups = BN / kVec;
    static_assert(BM * kGroups % kThreads == 0, "whole vectors per thread");
    if (output_vec_applies<Traits>(p)) {
#pragma unroll 2
      for (int i = 0; i < BM * kGroups / kThreads; ++i) {
        const int idx = threadIdx.x + i * kThreads;
        const int m = idx / kGroups, n = (idx % kGroups) * kVec;  // neighbouring threads: neighbouring vectors
        const int co = co0 + n;
        if (co >= p.Cout || y_base[m] < 0) continue;  // Cout % kVec == 0: a vector is wholly in or out
        Vec16<T> out;
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
          float v = c[m * Traits::kLdC + n + j];
          if (bias != nullptr) v += to_float(__ldg(bias + co + j));
          out.v[j] = from_float<T>(v);
        }
        *reinterpret_cast<uint4*>(y + y_base[m] + co) = out.u;
      }
      return;
    }
  }
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
