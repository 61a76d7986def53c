// Launch of the staged backward kernels with their GEMMs on wgmma, included by
// sepconv_bwd_wgmma_{bf16,fp16}.cu.
#pragma once

#include <cuda_runtime.h>

#include "sepconv_bwd_input_wgmma.cuh"
#include "sepconv_bwd_launch.cuh"  // launch_staged
#include "sepconv_bwd_pw_wgmma.cuh"
#include "sepconv_bwd_wgmma.h"

namespace xsep {

template <typename T>
bool wgmma_input_built() {
#if defined(XSEP_WITH_CUTE)
  static std::atomic<int8_t> cache[64];
  return once_per_device(cache,
                         [] { return wgmma_body_built(sepconv_bwd_input_staged_kernel<StagedInputTraits<T, true>>); });
#else
  return false;
#endif
}

template <typename T>
cudaError_t launch_wgmma_input(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream) {
#if defined(XSEP_WITH_CUTE)
  using Traits = StagedInputTraits<T, true>;
  return launch_staged<StagedInputShared<Traits>>(sepconv_bwd_input_staged_kernel<Traits>, grid,
                                                  Traits::Tile::kThreads, p, stream);
#else
  return cudaErrorNotSupported;
#endif
}

template <typename T>
bool wgmma_pw_built() {
#if defined(XSEP_WITH_CUTE)
  static std::atomic<int8_t> cache[64];
  return once_per_device(cache, [] { return wgmma_body_built(sepconv_bwd_pw_staged_kernel<StagedPwTraits<T, true>>); });
#else
  return false;
#endif
}

template <typename T>
cudaError_t launch_wgmma_pw(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream) {
#if defined(XSEP_WITH_CUTE)
  using Traits = StagedPwTraits<T, true>;
  return launch_staged<StagedPwShared<Traits>>(sepconv_bwd_pw_staged_kernel<Traits>, grid, Traits::Tile::kThreads, p,
                                               stream);
#else
  return cudaErrorNotSupported;
#endif
}

}  // namespace xsep
