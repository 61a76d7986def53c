// Host-side launch shared by the forward kernels that own a pixel tile and (a share of) every
// output channel (the resident and wgmma kernels): dynamic shared memory set up, the grid of pixel
// tiles x output-channel parts as resident_cout_parts chooses it from the device's occupancy.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "sepconv_fwd_resident_kernel.cuh"
#include "sepconv_params.h"

namespace xsep {

// The CTAs of `kernel` (with `threads` threads and `bytes` of dynamic shared memory) an SM of the
// current device holds, with the kernel's dynamic shared-memory limit at least `bytes`. Both are
// the driver's, and fixed for (device, kernel, threads, bytes), so they are asked once and
// remembered: a launch then costs no driver query (the forward runs per layer and step, and its
// host time is GPU idle time wherever the host falls behind). The limit only ever rises here (to
// the most bytes asked for the kernel so far), so every remembered size stays launchable; the
// wgmma launcher's ring search may raise it further, never lower it.
template <class Kernel>
cudaError_t blocks_per_sm(Kernel kernel, int threads, size_t bytes, int* per_sm) {
  int device = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  const void* const function = reinterpret_cast<const void*>(kernel);
  static std::mutex mutex;
  static std::map<std::tuple<int, const void*, int, size_t>, int> known;  // -> CTAs per SM
  static std::map<std::pair<int, const void*>, size_t> limit;            // -> the limit set
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(device, function, threads, bytes);
  if (const auto it = known.find(key); it != known.end()) {
    *per_sm = it->second;
    return cudaSuccess;
  }
  size_t& set = limit[{device, function}];
  if (bytes > set) {
    const cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (e != cudaSuccess) return e;
    set = bytes;
  }
  const cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(per_sm, kernel, threads, bytes);
  if (e == cudaSuccess) known.emplace(key, *per_sm);
  return e;
}

// Launches kernel(p, args...) with `threads` threads and `bytes` of dynamic shared memory over the
// pixel tiles of BM pixels; *parts: how many CTAs share each pixel tile's output channels (tiles
// of BN). Returns the launch's cudaError_t.
template <int BM, int BN, class Kernel, class... Args>
int launch_pixel_tiles(Kernel kernel, int threads, size_t bytes, const SepConvParams& p, cudaStream_t stream,
                       int* parts, Args... args) {
  int device = 0, sms = 0, per_sm = 0;
  if (const cudaError_t e = blocks_per_sm(kernel, threads, bytes, &per_sm); e != cudaSuccess)
    return static_cast<int>(e);
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int64_t pixel_tiles = (pixels + BM - 1) / BM;
  *parts = resident_cout_parts(pixel_tiles, static_cast<int64_t>(sms) * per_sm, p.Cout, BN);
  kernel<<<dim3(static_cast<unsigned>(pixel_tiles), static_cast<unsigned>(*parts)), threads, bytes, stream>>>(p, args...);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace xsep
