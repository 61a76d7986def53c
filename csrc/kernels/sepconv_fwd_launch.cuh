// Which forward kernel runs, and its launch: the resident kernel (32 pixels and all output channels
// per CTA) where its shared memory fits, else the tiled kernel. Included by the per-dtype .cu files.
//
// 32 pixels rather than 64: on the H100 (benchmarks/results/gpu-forward-bf16-resident*.md) 32 was
// as fast or faster on every Xception layer at N=32 and 128 (up to 1.5x on 728-channel layers:
// three CTAs per SM instead of one), and it fits intermediates twice as wide.
//
// XSEP_FWD_KERNEL=resident | tiled forces a choice (resident only where it fits), for benchmarks
// and tests; unset or auto: resident where it fits.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "sepconv_fwd.h"
#include "sepconv_fwd_kernel.cuh"
#include "sepconv_fwd_resident_kernel.cuh"

namespace xsep {

enum class FwdKernel { kResident, kTiled };
constexpr int kResidentPixels = 32;

template <typename T, Math kMath>
FwdKernel choose_forward_kernel(const SepConvParams& p) {
  using Layout = ResidentFwdLayout<ResidentFwdTraits<T, kMath, true, 3, 3, kResidentPixels>>;
  int device = 0, smem_optin = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  const bool fits = Layout::bytes(p.Cmid) + sizeof(FwdPixelTable<kResidentPixels>) <= static_cast<size_t>(smem_optin);
  static const char* forced = std::getenv("XSEP_FWD_KERNEL");
  if (forced != nullptr && std::strcmp(forced, "tiled") == 0) return FwdKernel::kTiled;
  return fits ? FwdKernel::kResident : FwdKernel::kTiled;
}

template <class Traits>
int launch_resident(const SepConvParams& p, cudaStream_t stream) {
  const size_t bytes = ResidentFwdLayout<Traits>::bytes(p.Cmid);
  const auto kernel = sepconv_fwd_resident_kernel<Traits>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const dim3 grid(static_cast<unsigned>((pixels + Traits::BM - 1) / Traits::BM));
  kernel<<<grid, Traits::kThreads, bytes, stream>>>(p);
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
int launch_forward_variant(const SepConvParams& p, cudaStream_t stream, FwdKernel which) {
  if (which == FwdKernel::kResident)
    return launch_resident<ResidentFwdTraits<T, kMath, kChannelsLast, KH, KW, kResidentPixels>>(p, stream);
  return launch_tiled<FwdTraits<T, kMath, kChannelsLast, KH, KW>>(p, stream);
}

template <typename T, Math kMath>
LaunchResult launch_sepconv_fwd(const SepConvParams& p, cudaStream_t stream, const char* dtype_name) {
  const bool k3x3 = p.kh == 3 && p.kw == 3;
  const FwdKernel which = choose_forward_kernel<T, kMath>(p);
  int error;
  if (p.channels_last) {
    error = k3x3 ? launch_forward_variant<T, kMath, true, 3, 3>(p, stream, which)
                 : launch_forward_variant<T, kMath, true, 0, 0>(p, stream, which);
  } else {
    error = k3x3 ? launch_forward_variant<T, kMath, false, 3, 3>(p, stream, which)
                 : launch_forward_variant<T, kMath, false, 0, 0>(p, stream, which);
  }
  static thread_local char name[112];
  const char* kernel = which == FwdKernel::kResident ? "resident" : "tiled";
  snprintf(name, sizeof(name), "forward %s %s %s %s %s", dtype_name,
           kMath == Math::kTensorCore ? (std::is_same_v<T, float> ? "tf32-mma" : "mma") : "ffma",
           p.channels_last ? "channels_last" : "nchw", k3x3 ? "3x3" : "general-kernel", kernel);
  return {error, name};
}

}  // namespace xsep
