// The staged backward kernels with their GEMMs on wgmma (sepconv_bwd_input_wgmma.cuh,
// sepconv_bwd_pw_wgmma.cuh) and the resident pw-gradient kernel as seen from the backward launcher. Their kernels live
// in sepconv_bwd_wgmma_{bf16,fp16}.cu, which include CuTe.
#pragma once

#include <cuda_runtime_api.h>

#include "sepconv_params.h"

namespace xsep {

// True where the kernel was built with a body for the current device (sm_90a code, CuTe present at
// build time). T: __half or __nv_bfloat16; kChannels: 64 or 128 depthwise channels per CTA
// (StagedInputTraits). (Whether it takes a call: staged_input_applies.)
template <typename T, int kChannels>
bool wgmma_input_built();

// Launches it over `grid` on `stream` (the staged input kernel's grid); returns the launch's error.
template <typename T, int kChannels>
cudaError_t launch_wgmma_input(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream);

// The same for the pw-gradient kernel (whether it takes a call: staged_pw_applies).
template <typename T>
bool wgmma_pw_built();
template <typename T>
cudaError_t launch_wgmma_pw(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream);

// The resident pw-gradient kernel (sepconv_bwd_pw_resident_kernel.cuh) with `half` output channels
// per warpgroup (resident_pw_half: 64 or 128) and splits of at most max_pixels
// (resident_pw_max_pixels). p carries its split (with_resident_pw).
template <typename T>
bool resident_pw_built(int half, int max_pixels);
template <typename T>
cudaError_t launch_resident_pw(const SepConvBwdParams& p, int half, dim3 grid, cudaStream_t stream);

}  // namespace xsep
