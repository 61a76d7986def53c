// Launch of the staged backward kernels with their GEMMs on wgmma, included by
// sepconv_bwd_wgmma_{bf16,fp16}.cu.
#pragma once

#include <cuda_runtime.h>

#include "sepconv_bwd_input_wgmma.cuh"
#include "sepconv_bwd_pw_wgmma.cuh"
#include "sepconv_bwd_wgmma.h"

namespace xsep {

// Whether `kernel` has a body for the current device: the sm_90a code of the wgmma GEMMs declares
// a marker in static shared memory (the kernels' other shared memory is dynamic); the code other
// architectures get declares none. (cudaFuncGetAttributes is legal while a stream is being
// captured; a probe launch would not be.)
template <class Kernel>
bool wgmma_body_built(Kernel kernel) {
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, kernel) != cudaSuccess) {
    cudaGetLastError();  // no kernel image for this device: not the caller's error
    return false;
  }
  return attributes.sharedSizeBytes > 0;
}

// A staged kernel with its dynamic shared memory.
template <class Shared, class Kernel>
cudaError_t launch_with_shared(Kernel kernel, dim3 grid, int threads, const SepConvBwdParams& p, cudaStream_t stream) {
  const int bytes = static_cast<int>(sizeof(Shared));
  if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
      e != cudaSuccess)
    return e;
  kernel<<<grid, threads, bytes, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
bool wgmma_input_built() {
#if defined(XSEP_WITH_CUTE)
  return wgmma_body_built(sepconv_bwd_input_staged_kernel<StagedInputTraits<T, true>>);
#else
  return false;
#endif
}

template <typename T>
cudaError_t launch_wgmma_input(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream) {
#if defined(XSEP_WITH_CUTE)
  using Traits = StagedInputTraits<T, true>;
  return launch_with_shared<StagedInputShared<Traits>>(sepconv_bwd_input_staged_kernel<Traits>, grid,
                                                       Traits::Tile::kThreads, p, stream);
#else
  return cudaErrorNotSupported;
#endif
}

template <typename T>
bool wgmma_pw_built() {
#if defined(XSEP_WITH_CUTE)
  return wgmma_body_built(sepconv_bwd_pw_staged_kernel<StagedPwTraits<T, true>>);
#else
  return false;
#endif
}

template <typename T>
cudaError_t launch_wgmma_pw(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream) {
#if defined(XSEP_WITH_CUTE)
  using Traits = StagedPwTraits<T, true>;
  return launch_with_shared<StagedPwShared<Traits>>(sepconv_bwd_pw_staged_kernel<Traits>, grid, Traits::Tile::kThreads,
                                                    p, stream);
#else
  return cudaErrorNotSupported;
#endif
}

}  // namespace xsep
