// Launch of the staged backward kernels with their GEMMs on wgmma, included by
// sepconv_bwd_wgmma_{bf16,fp16}.cu.
#pragma once

#include <cuda_runtime.h>

#include "sepconv_bwd_input_wgmma.cuh"
#include "sepconv_bwd_launch.cuh"  // launch_staged
#include "sepconv_bwd_pw_resident_kernel.cuh"
#include "sepconv_bwd_pw_wgmma.cuh"
#include "sepconv_bwd_wgmma.h"

namespace xsep {

#if defined(XSEP_WITH_CUTE)

template <typename T, int kChannels>
bool wgmma_input_built() {
  static std::atomic<int8_t> cache[64];
  return once_per_device(
      cache, [] { return wgmma_body_built(sepconv_bwd_input_staged_kernel<StagedInputTraits<T, true, kChannels>>); });
}

template <typename T, int kChannels>
cudaError_t launch_wgmma_input(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream) {
  using Traits = StagedInputTraits<T, true, kChannels>;
  return launch_staged<StagedInputShared<Traits>>(sepconv_bwd_input_staged_kernel<Traits>, grid, Traits::Tile::kThreads,
                                                  p, stream);
}

template <typename T>
bool wgmma_pw_built() {
  static std::atomic<int8_t> cache[64];
  return once_per_device(cache, [] { return wgmma_body_built(sepconv_bwd_pw_staged_kernel<StagedPwTraits<T, true>>); });
}

template <typename T>
cudaError_t launch_wgmma_pw(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream) {
  using Traits = StagedPwTraits<T, true>;
  return launch_staged<StagedPwShared<Traits>>(sepconv_bwd_pw_staged_kernel<Traits>, grid, Traits::Tile::kThreads, p,
                                               stream);
}

// f(kernel, shared bytes) for the resident kernel with `half` output channels per warpgroup and
// splits of at most max_pixels (resident_pw_max_pixels).
template <typename T, class F>
auto with_resident_pw_kernel(int half, int max_pixels, F&& f) {
  using Wide = ResidentPwTraits<T, 128>;
  using Narrow = ResidentPwTraits<T, 64>;
  using NarrowTwoPerSm = ResidentPwTraits<T, 64, kPwResidentTwoCtaPixels>;
  if (half == 64 && max_pixels == kPwResidentTwoCtaPixels)
    return f(sepconv_bwd_pw_resident_kernel<NarrowTwoPerSm>, NarrowTwoPerSm::kSharedBytes);
  return half == 64 ? f(sepconv_bwd_pw_resident_kernel<Narrow>, Narrow::kSharedBytes)
                    : f(sepconv_bwd_pw_resident_kernel<Wide>, Wide::kSharedBytes);
}

template <typename T>
bool resident_pw_built(int half, int max_pixels) {
  static std::atomic<int8_t> wide[64], narrow[64], narrow_two[64];
  const bool two = half == 64 && max_pixels == kPwResidentTwoCtaPixels;
  return once_per_device(two          ? narrow_two
                         : half == 64 ? narrow
                                      : wide,
                         [half, max_pixels] {
                           return with_resident_pw_kernel<T>(half, max_pixels,
                                                             [](auto kernel, int) { return wgmma_body_built(kernel); });
                         });
}

// p: with_resident_pw's, its split at most p.pw_resident_max_pixels.
template <typename T>
cudaError_t launch_resident_pw(const SepConvBwdParams& p, int half, dim3 grid, cudaStream_t stream) {
  if (p.pw_resident_max_pixels != kPwResidentMaxPixels && p.pw_resident_max_pixels != kPwResidentTwoCtaPixels)
    return cudaErrorInvalidValue;
  if (p.pw_pixels_per_split > p.pw_resident_max_pixels) return cudaErrorInvalidValue;
  return with_resident_pw_kernel<T>(half, p.pw_resident_max_pixels, [&](auto kernel, int bytes) {
    if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
        e != cudaSuccess)
      return e;
    kernel<<<grid, 256, bytes, stream>>>(p);
    return cudaGetLastError();
  });
}

#else  // without CuTe there are no wgmma kernels: none is built, none launches

template <typename T, int kChannels>
bool wgmma_input_built() {
  return false;
}
template <typename T, int kChannels>
cudaError_t launch_wgmma_input(const SepConvBwdParams&, dim3, cudaStream_t) {
  return cudaErrorNotSupported;
}
template <typename T>
bool wgmma_pw_built() {
  return false;
}
template <typename T>
cudaError_t launch_wgmma_pw(const SepConvBwdParams&, dim3, cudaStream_t) {
  return cudaErrorNotSupported;
}
template <typename T>
bool resident_pw_built(int, int) {
  return false;
}
template <typename T>
cudaError_t launch_resident_pw(const SepConvBwdParams&, int, dim3, cudaStream_t) {
  return cudaErrorNotSupported;
}

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
