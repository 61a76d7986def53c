// Choice and launch of the wgmma forward, included by sepconv_fwd_wgmma_{bf16,fp16}.cu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "sepconv_fwd_wgmma.h"
#include "sepconv_fwd_wgmma_kernel.cuh"

namespace xsep {

// Whether the kernel in this build has a body for the current device: the sm_90a code declares
// the pixel table as static shared memory, the stub other architectures get declares none.
// (cudaFuncGetAttributes is legal while a stream is being captured; a probe launch would not be.)
template <class Traits>
bool wgmma_kernel_built() {
#if defined(XSEP_WITH_CUTE)
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, sepconv_fwd_wgmma_kernel<Traits>) != cudaSuccess) {
    cudaGetLastError();  // no kernel image for this device: not an error of the caller's
    return false;
  }
  return attributes.sharedSizeBytes >= sizeof(FwdPixelTable<Traits::BM>);
#else
  return false;
#endif
}

// 128 pixels per CTA where Z fits, else 64; 0: neither fits. XSEP_FWD_PIXELS=64 asks for 64 (for
// measurement: half the weight reuse, twice the CTAs).
template <typename T>
int wgmma_pixels(const SepConvParams& p, int smem_optin) {
  auto fits = [&](auto traits) {
    using Traits = decltype(traits);
    return WgmmaFwdLayout<Traits>::bytes(p.Cmid) + sizeof(FwdPixelTable<Traits::BM>) <=
           static_cast<size_t>(smem_optin);
  };
  static const char* forced = std::getenv("XSEP_FWD_PIXELS");
  const bool ask_64 = forced != nullptr && std::strcmp(forced, "64") == 0;
  if (!ask_64 && fits(WgmmaFwdTraits<T, 128>{})) return 128;
  if (fits(WgmmaFwdTraits<T, 64>{})) return 64;
  return 0;
}

template <typename T>
bool wgmma_forward_applies(const SepConvParams& p) {
  using Traits = WgmmaFwdTraits<T, 64>;
  int device = 0, smem_optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  return p.channels_last && p.kh == 3 && p.kw == 3 && depthwise_vec_applies<Traits>(p) &&
         output_vec_applies<Traits>(p) && p.Cmid % Traits::kVec == 0 &&
         reinterpret_cast<uintptr_t>(p.pw_weight) % 16 == 0 && (pixels + 63) / 64 <= INT32_MAX &&
         wgmma_pixels<T>(p, smem_optin) > 0 && wgmma_kernel_built<WgmmaFwdTraits<T, 128>>() &&
         wgmma_kernel_built<WgmmaFwdTraits<T, 64>>();
}

template <class Traits>
int launch_wgmma_traits(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch) {
  const size_t bytes = WgmmaFwdLayout<Traits>::bytes(p.Cmid);
  const auto kernel = sepconv_fwd_wgmma_kernel<Traits>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  int device = 0, sms = 0, per_sm = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, Traits::kThreads, bytes);
  if (err != cudaSuccess) return static_cast<int>(err);
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int64_t pixel_tiles = (pixels + Traits::BM - 1) / Traits::BM;
  launch->pixels = Traits::BM;
  launch->parts = resident_cout_parts(pixel_tiles, static_cast<int64_t>(sms) * per_sm, p.Cout, Traits::BN);
  kernel<<<dim3(static_cast<unsigned>(pixel_tiles), static_cast<unsigned>(launch->parts)), Traits::kThreads, bytes,
           stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int launch_wgmma_forward(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch) {
  int device = 0, smem_optin = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (wgmma_pixels<T>(p, smem_optin) == 128) return launch_wgmma_traits<WgmmaFwdTraits<T, 128>>(p, stream, launch);
  return launch_wgmma_traits<WgmmaFwdTraits<T, 64>>(p, stream, launch);
}

}  // namespace xsep
