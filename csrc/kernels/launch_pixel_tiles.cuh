// Host-side launch shared by the forward kernels that own a pixel tile and (a share of) every
// output channel (the resident and wgmma kernels): dynamic shared memory set up, the grid of pixel
// tiles x output-channel parts as resident_cout_parts chooses it from the device's occupancy.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "sepconv_fwd_resident_kernel.cuh"
#include "sepconv_params.h"

namespace xsep {

// Launches kernel(p, args...) with `threads` threads and `bytes` of dynamic shared memory over the
// pixel tiles of BM pixels; *parts: how many CTAs share each pixel tile's output channels (tiles
// of BN). Returns the launch's cudaError_t.
template <int BM, int BN, class Kernel, class... Args>
int launch_pixel_tiles(Kernel kernel, int threads, size_t bytes, const SepConvParams& p, cudaStream_t stream,
                       int* parts, Args... args) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  int device = 0, sms = 0, per_sm = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, bytes);
  if (err != cudaSuccess) return static_cast<int>(err);
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int64_t pixel_tiles = (pixels + BM - 1) / BM;
  *parts = resident_cout_parts(pixel_tiles, static_cast<int64_t>(sms) * per_sm, p.Cout, BN);
  kernel<<<dim3(static_cast<unsigned>(pixel_tiles), static_cast<unsigned>(*parts)), threads, bytes, stream>>>(p, args...);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace xsep
