// Launch of the input-gradient kernel with the wgmma dZ GEMM, included by
// sepconv_bwd_wgmma_{bf16,fp16}.cu.
#pragma once

#include <cuda_runtime.h>

#include "sepconv_bwd_input_wgmma.cuh"
#include "sepconv_bwd_wgmma.h"

namespace xsep {

template <typename T>
bool wgmma_input_built() {
#if defined(XSEP_WITH_CUTE)
  // The sm_90a code declares a marker in static shared memory (the kernel's other shared memory is
  // dynamic); the code other architectures get declares none. (cudaFuncGetAttributes is legal
  // while a stream is being captured; a probe launch would not be.)
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, sepconv_bwd_input_staged_kernel<StagedInputTraits<T, true>>) != cudaSuccess) {
    cudaGetLastError();  // no kernel image for this device: not the caller's error
    return false;
  }
  return attributes.sharedSizeBytes > 0;
#else
  return false;
#endif
}

template <typename T>
cudaError_t launch_wgmma_input(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream) {
#if defined(XSEP_WITH_CUTE)
  using Traits = StagedInputTraits<T, true>;
  const auto kernel = sepconv_bwd_input_staged_kernel<Traits>;
  const int bytes = static_cast<int>(sizeof(StagedInputShared<Traits>));
  if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
      e != cudaSuccess)
    return e;
  kernel<<<grid, Traits::Tile::kThreads, bytes, stream>>>(p);
  return cudaGetLastError();
#else
  return cudaErrorNotSupported;
#endif
}

}  // namespace xsep
