// Which forward kernel runs, and its launch: the resident kernel (32 pixels and all output channels
// per CTA) where its shared memory fits, else the tiled kernel. Included by the per-dtype .cu files.
//
// 32 pixels rather than 64: on the H100 (benchmarks/results/gpu-forward-bf16-resident*.md) 32 was
// faster on most Xception layers at N=32 and 128 (up to 1.5x on 728-channel layers: three CTAs per
// SM instead of one) and within 2% on the rest, and it fits intermediates twice as wide.
//
// XSEP_FWD_KERNEL=resident | tiled forces a choice (resident only where it fits), for benchmarks
// and tests; unset or auto: resident where it fits. XSEP_FWD_STAGES=3: the resident kernel with
// three weight chunks in flight (default two), for measurement. XSEP_FWD_KERNEL=halo runs the experimental
// halo kernel (sepconv_fwd_halo_kernel.cuh) where it applies, the usual choice elsewhere.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "sepconv_fwd.h"
#include "sepconv_fwd_halo_kernel.cuh"
#include "sepconv_fwd_kernel.cuh"
#include "sepconv_fwd_resident_kernel.cuh"

namespace xsep {

enum class FwdKernel { kResident, kTiled, kHalo };
constexpr int kResidentPixels = 32;

// Where the halo kernel can run: see sepconv_fwd_halo_kernel.cuh.
template <typename T, Math kMath>
bool halo_applies(const SepConvParams& p, int smem_optin, int major) {
  using Traits = ResidentFwdTraits<T, kMath, true, 3, 3, kHaloTile * kHaloTile>;
  constexpr int kVec = HaloFwdLayout<Traits>::kVec;
  const bool aligned = p.x_stride[0] % kVec == 0 && p.x_stride[2] % kVec == 0 && p.x_stride[3] % kVec == 0 &&
                       reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && p.C % kVec == 0;
  const int64_t tiles = halo_tile_count(p.N, p.Ho, p.Wo);
  return major >= 8 && p.channels_last && p.x_stride[1] == 1 && aligned && p.M == 1 && p.kh * p.kw <= kHaloMaxTaps &&
         tiles <= INT32_MAX &&
         HaloFwdLayout<Traits>::bytes(p) + 64 * sizeof(int64_t) <= static_cast<size_t>(smem_optin);
}

// XSEP_FWD_STAGES=3: the resident kernel keeps three weight chunks in flight instead of two (for
// measurement: 50% more shared memory for the chunks, so fewer CTAs per SM on wide layers).
inline int resident_stages() {
  static const char* forced = std::getenv("XSEP_FWD_STAGES");
  return forced != nullptr && std::strcmp(forced, "3") == 0 ? 3 : 2;
}

template <typename T, Math kMath>
FwdKernel choose_forward_kernel(const SepConvParams& p) {
  using Layout2 = ResidentFwdLayout<ResidentFwdTraits<T, kMath, true, 3, 3, kResidentPixels, 2>>;
  using Layout3 = ResidentFwdLayout<ResidentFwdTraits<T, kMath, true, 3, 3, kResidentPixels, 3>>;
  int device = 0, smem_optin = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  const size_t resident_bytes = resident_stages() == 3 ? Layout3::bytes(p.Cmid) : Layout2::bytes(p.Cmid);
  const bool fits = resident_bytes + sizeof(FwdPixelTable<kResidentPixels>) <= static_cast<size_t>(smem_optin);
  static const char* forced = std::getenv("XSEP_FWD_KERNEL");
  if (forced != nullptr && std::strcmp(forced, "tiled") == 0) return FwdKernel::kTiled;
  if (forced != nullptr && std::strcmp(forced, "halo") == 0 && halo_applies<T, kMath>(p, smem_optin, major))
    return FwdKernel::kHalo;
  return fits ? FwdKernel::kResident : FwdKernel::kTiled;
}

// Launches the resident kernel; *parts says how many CTAs shared each pixel tile's output channels.
template <class Traits>
int launch_resident(const SepConvParams& p, cudaStream_t stream, int* parts) {
  const size_t bytes = ResidentFwdLayout<Traits>::bytes(p.Cmid);
  const auto kernel = sepconv_fwd_resident_kernel<Traits>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  int device = 0, sms = 0, per_sm = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, Traits::kThreads, bytes);
  if (err != cudaSuccess) return static_cast<int>(err);
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int64_t pixel_tiles = (pixels + Traits::BM - 1) / Traits::BM;
  *parts = resident_cout_parts(pixel_tiles, static_cast<int64_t>(sms) * per_sm, p.Cout, Traits::BN);
  kernel<<<dim3(static_cast<unsigned>(pixel_tiles), static_cast<unsigned>(*parts)), Traits::kThreads, bytes, stream>>>(
      p);
  return static_cast<int>(cudaGetLastError());
}

template <class Traits>
int launch_halo(const SepConvParams& p, cudaStream_t stream) {
  const size_t bytes = HaloFwdLayout<Traits>::bytes(p);
  const auto kernel = sepconv_fwd_halo_kernel<Traits>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  const int64_t tiles = halo_tile_count(p.N, p.Ho, p.Wo);
  kernel<<<static_cast<unsigned>(tiles), Traits::kThreads, bytes, stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

template <class Traits>
int launch_tiled(const SepConvParams& p, cudaStream_t stream) {
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const dim3 grid(static_cast<unsigned>((pixels + Traits::BM - 1) / Traits::BM),
                  static_cast<unsigned>((p.Cout + Traits::BN - 1) / Traits::BN));
  sepconv_fwd_kernel<Traits><<<grid, Traits::kThreads, 0, stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

// One memory format and kernel size (KH = KW = 0: any size) of the chosen kernel.
template <typename T, Math kMath, bool kChannelsLast, int KH, int KW>
int launch_forward_variant(const SepConvParams& p, cudaStream_t stream, FwdKernel which, int* parts) {
  if (which == FwdKernel::kResident) {
    if (resident_stages() == 3)
      return launch_resident<ResidentFwdTraits<T, kMath, kChannelsLast, KH, KW, kResidentPixels, 3>>(p, stream, parts);
    return launch_resident<ResidentFwdTraits<T, kMath, kChannelsLast, KH, KW, kResidentPixels>>(p, stream, parts);
  }
  if constexpr (kChannelsLast) {
    if (which == FwdKernel::kHalo)
      return launch_halo<ResidentFwdTraits<T, kMath, true, KH, KW, kHaloTile * kHaloTile>>(p, stream);
  }
  return launch_tiled<FwdTraits<T, kMath, kChannelsLast, KH, KW>>(p, stream);
}

template <typename T, Math kMath>
LaunchResult launch_sepconv_fwd(const SepConvParams& p, cudaStream_t stream, const char* dtype_name) {
  const bool k3x3 = p.kh == 3 && p.kw == 3;
  const FwdKernel which = choose_forward_kernel<T, kMath>(p);
  int error, parts = 1;
  if (p.channels_last) {
    error = k3x3 ? launch_forward_variant<T, kMath, true, 3, 3>(p, stream, which, &parts)
                 : launch_forward_variant<T, kMath, true, 0, 0>(p, stream, which, &parts);
  } else {
    error = k3x3 ? launch_forward_variant<T, kMath, false, 3, 3>(p, stream, which, &parts)
                 : launch_forward_variant<T, kMath, false, 0, 0>(p, stream, which, &parts);
  }
  static thread_local char name[128];
  const char* kernel = which == FwdKernel::kResident ? "resident" : which == FwdKernel::kHalo ? "halo" : "tiled";
  char detail[48] = "";
  if (which == FwdKernel::kResident)
    snprintf(detail, sizeof(detail), " (%d stages, cout split %d)", resident_stages(), parts);
  snprintf(name, sizeof(name), "forward %s %s %s %s %s%s", dtype_name,
           kMath == Math::kTensorCore ? (std::is_same_v<T, float> ? "tf32-mma" : "mma") : "ffma",
           p.channels_last ? "channels_last" : "nchw", k3x3 ? "3x3" : "general-kernel", kernel, detail);
  return {error, name};
}

}  // namespace xsep
