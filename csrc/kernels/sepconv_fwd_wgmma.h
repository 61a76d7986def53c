// The wgmma forward (sepconv_fwd_wgmma_kernel.cuh) as seen from the forward launcher: whether it can
// take a call on the current device, and its launch. Its kernels live in their own .cu files
// (sepconv_fwd_wgmma_{bf16,fp16}.cu), the only ones that include CuTe.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "sepconv_params.h"

namespace xsep {

// The shape of one launch: pixels per CTA, how many CTAs share a pixel tile's output channels, and
// the slots of the weight ring.
struct WgmmaLaunch {
  int pixels = 0;
  int parts = 1;
  int stages = 0;
  int warpgroups = 0;
  int tile_channels = 0;     // the streamed kernel's output channels per CTA
  int min_blocks = 0;        // the CTAs per SM the kernel was built for (its launch bounds)
  bool prefetch = false;     // the next depthwise chunk's loads in flight during a chunk's arithmetic
  int dw_lanes = 0;          // channels per depthwise item (wgmma_dw_lanes)
  int dw_pass_channels = 0;  // channels per depthwise pass (BK * wgmma_dw_chunks)
  int band_buffers = 0;      // the depthwise phase from bands of x in the ring (XSEP_FWD_DW=staged): 1 or 2
  int z_buffers = 0;         // the overlapped forward's Z buffers: 2, or 1 where Z is too wide for two
  int pair = 0;              // the overlapped forward's pair build (OverlapPair: 1 weights, 2 Z; 0 none)
};

// True where the wgmma kernel was built for this device (sm_90a code, CuTe present at build time)
// and takes `p`: channels_last 3x3 with multiplier 1, 16-byte aligned x, weights and y, channel
// counts multiples of a 16-byte vector, and Z for 64 pixels fits in shared memory. T: __half,
// __nv_bfloat16, or float (TF32: only where TF32 is allowed).
template <typename T>
bool wgmma_forward_applies(const SepConvParams& p);

// The workspace a launch needs (SepConvParams::workspace): the pointwise weight packed as the
// kernel's ring slots.
template <typename T>
size_t wgmma_forward_workspace_bytes(const SepConvParams& p);

// Launches it on `stream` (after wgmma_forward_applies, with p.workspace of
// wgmma_forward_workspace_bytes); returns the launch's cudaError_t.
template <typename T>
int launch_wgmma_forward(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch);

}  // namespace xsep
