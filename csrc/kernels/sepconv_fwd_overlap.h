// The overlapped wgmma forward (sepconv_fwd_overlap_kernel.cuh) as seen from the forward launcher:
// whether it takes a call on the current device, its workspace, and its launch. Its kernels live in
// their own .cu files (sepconv_fwd_overlap_wgmma_{bf16,fp16,fp32}.cu), which include CuTe.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "sepconv_fwd_wgmma.h"  // WgmmaLaunch
#include "sepconv_params.h"

namespace xsep {

// True where the overlapped kernel was built for this device (sm_90a code, CuTe present at build
// time) and takes `p`: channels_last 3x3 with multiplier 1, 16-byte aligned x, weights and y,
// channel counts multiples of a 16-byte vector, fewer than 2^31 pixels, and two Z buffers of 64
// pixels fit in shared memory beside the smallest weight ring. T: __half, __nv_bfloat16, or float
// (TF32: only where TF32 is allowed).
template <typename T>
bool overlap_forward_applies(const SepConvParams& p);

// The workspace a launch needs (SepConvParams::workspace): both weights repacked.
template <typename T>
size_t overlap_forward_workspace_bytes(const SepConvParams& p);

// Launches it on `stream` (after overlap_forward_applies, with p.workspace of
// overlap_forward_workspace_bytes); returns the launch's cudaError_t.
template <typename T>
int launch_overlap_forward(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch);

}  // namespace xsep
