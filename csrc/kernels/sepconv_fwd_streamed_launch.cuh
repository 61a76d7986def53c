// Choice and launch of the streamed wgmma forward, included by sepconv_fwd_streamed_wgmma_*.cu.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>

#include "kernel_knobs.h"
#include "sepconv_fwd_streamed.h"
#include "sepconv_fwd_streamed_kernel.cuh"
#include "sepconv_fwd_wgmma_launch.cuh"  // launch_wgmma_weight_pack, grid_stride_blocks

namespace xsep {

#if defined(XSEP_WITH_CUTE)

// Ring slots: kDefaultStages, or XSEP_FWD_STAGES=2..8 (for measurement).
template <class Traits>
int streamed_stages() {
  const int asked = std::atoi(kernel_knob(KernelKnob::kFwdStages).c_str());
  return asked >= Traits::kMinStages && asked <= Traits::kMaxStages ? asked : Traits::kDefaultStages;
}

// The kernel's static shared memory: its tap table and the slots' two barriers.
template <class Traits>
constexpr size_t streamed_static_bytes() {
  return sizeof(FwdTapTable<Traits::BM, Traits::kKH, Traits::kKW>) + 2 * Traits::kMaxStages * sizeof(uint64_t);
}

// Output channels per CTA: 192 where it takes fewer tiles than 128 (each tile recomputes Z), e.g.
// 4 instead of 6 at 728, 11 instead of 16 at 2048; else 128.
inline int streamed_tile_channels(int cout) { return (cout + 191) / 192 < (cout + 127) / 128 ? 192 : 128; }

template <typename T>
bool streamed_forward_built() {
  static std::atomic<int8_t> cache[64];
  return once_per_device(cache, [] {
    return wgmma_body_built(sepconv_fwd_streamed_kernel<StreamedFwdTraits<T, 128>>) &&
           wgmma_body_built(sepconv_fwd_streamed_kernel<StreamedFwdTraits<T, 192>>);
  });
}

template <typename T>
bool streamed_forward_applies(const SepConvParams& p) {
  using Traits = StreamedFwdTraits<T, 192>;  // the larger shared memory of the two
  int device = 0, smem_optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  // Pixels and tiles below 2^31: the kernel's index arithmetic is 32-bit.
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int64_t tiles = (pixels + Traits::BM - 1) / Traits::BM * ((p.Cout + 127) / 128);
  return p.channels_last && p.kh == 3 && p.kw == 3 && depthwise_vec_applies<Traits>(p) &&
         output_vec_applies<Traits>(p) && reinterpret_cast<uintptr_t>(p.pw_weight) % 16 == 0 && pixels <= INT32_MAX &&
         tiles <= INT32_MAX &&
         StreamedFwdLayout<Traits>::bytes(Traits::kMaxStages) +
                 kernel_static_shared_bytes(streamed_static_bytes<Traits>()) <=
             static_cast<size_t>(smem_optin) &&
         streamed_forward_built<T>();
}

template <typename T>
size_t streamed_forward_workspace_bytes(const SepConvParams& p) {
  return streamed_tile_channels(p.Cout) == 192 ? streamed_workspace_bytes<StreamedFwdTraits<T, 192>>(p.Cout, p.Cmid)
                                               : streamed_workspace_bytes<StreamedFwdTraits<T, 128>>(p.Cout, p.Cmid);
}

// Both pack kernels, then the forward: persistent, as many CTAs as fit on the GPU at once (one per
// SM: 512 threads of 128 registers), each taking tiles in turn.
template <class Traits>
int launch_streamed_traits(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch) {
  using T = typename Traits::T;
  launch->pixels = Traits::BM;
  launch->warpgroups = Traits::kThreads / 128;
  launch->stages = streamed_stages<Traits>();
  launch->parts = 1;
  launch->tile_channels = Traits::BN;
  if (p.workspace == nullptr) return static_cast<int>(cudaErrorInvalidValue);
  unsigned char* workspace = static_cast<unsigned char*>(p.workspace);
  if (const int e = launch_wgmma_weight_pack<Traits>(p, reinterpret_cast<T*>(workspace), stream)) return e;
  sepconv_fwd_dw_pack_kernel<T, streamed_dw_lanes<Traits>()>
      <<<grid_stride_blocks(static_cast<int64_t>(p.Cmid) * Traits::kTaps), 256, 0, stream>>>(
          p, reinterpret_cast<float*>(workspace + streamed_dw_offset_bytes<Traits>(p.Cout, p.Cmid)));
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return static_cast<int>(e);
  const auto kernel = sepconv_fwd_streamed_kernel<Traits>;
  const size_t bytes = StreamedFwdLayout<Traits>::bytes(launch->stages);
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  int device = 0, sms = 0, per_sm = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, Traits::kThreads, bytes);
  if (err != cudaSuccess) return static_cast<int>(err);
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int64_t tiles = (pixels + Traits::BM - 1) / Traits::BM * ((p.Cout + Traits::BN - 1) / Traits::BN);
  const int64_t ctas = std::min<int64_t>(tiles, static_cast<int64_t>(sms) * std::max(per_sm, 1));
  kernel<<<static_cast<unsigned>(ctas), Traits::kThreads, bytes, stream>>>(p, launch->stages);
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int launch_streamed_forward(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch) {
  if (streamed_tile_channels(p.Cout) == 192)
    return launch_streamed_traits<StreamedFwdTraits<T, 192>>(p, stream, launch);
  return launch_streamed_traits<StreamedFwdTraits<T, 128>>(p, stream, launch);
}

#else  // without CuTe there is no wgmma kernel: nothing applies

template <typename T>
bool streamed_forward_applies(const SepConvParams&) {
  return false;
}

template <typename T>
size_t streamed_forward_workspace_bytes(const SepConvParams&) {
  return 0;
}

template <typename T>
int launch_streamed_forward(const SepConvParams&, cudaStream_t, WgmmaLaunch*) {
  return static_cast<int>(cudaErrorNotSupported);
}

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
