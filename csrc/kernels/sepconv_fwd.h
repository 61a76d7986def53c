// Launchers of the fused forward, one per dtype (each in its own .cu so nvcc builds them in
// parallel). They launch on `stream` and return the launch's error; they never synchronise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "sepconv_params.h"

namespace xsep {

// The bytes of device workspace a call needs (SepConvParams::workspace; 0: none), decided by the
// same kernel choice as the launch (so ask right before it, with the same knobs in force).
size_t sepconv_forward_workspace_bytes(const SepConvParams& p, DType dtype);

LaunchResult sepconv_forward_fp16(const SepConvParams& p, cudaStream_t stream);
LaunchResult sepconv_forward_bf16(const SepConvParams& p, cudaStream_t stream);
LaunchResult sepconv_forward_fp32(const SepConvParams& p, cudaStream_t stream);

}  // namespace xsep
