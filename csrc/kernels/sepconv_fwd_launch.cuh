// Which forward kernel runs, and its launch: the resident kernel (BM = 64 or 32 pixels, all output
// channels per CTA) where its shared memory fits, else the tiled kernel. Included by the per-dtype
// .cu files.
//
// XSEP_FWD_KERNEL=resident64 | resident32 | tiled forces a choice (where it fits) for benchmarking;
// unset or auto: the rule in choose_forward_kernel.
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

enum class FwdKernel { kResident64, kResident32, kTiled };

inline FwdKernel forced_forward_kernel(bool& forced) {
  static const char* env = std::getenv("XSEP_FWD_KERNEL");
  forced = env != nullptr && std::strcmp(env, "auto") != 0 && env[0] != '\0';
  if (!forced) return FwdKernel::kResident64;
  if (std::strcmp(env, "resident32") == 0) return FwdKernel::kResident32;
  if (std::strcmp(env, "tiled") == 0) return FwdKernel::kTiled;
  return FwdKernel::kResident64;
}

// CTAs of `smem` dynamic bytes and `threads` threads that one SM holds at once.
inline int ctas_per_sm(size_t smem, int threads, int smem_per_sm) {
  const size_t per_cta = smem + 1024;  // the runtime reserves 1 KB per CTA
  const int by_smem = static_cast<int>(static_cast<size_t>(smem_per_sm) / per_cta);
  const int by_threads = 2048 / threads;
  return by_smem < by_threads ? by_smem : by_threads;
}

// BM = 64 where it fits at two or more CTAs per SM and fills the GPU (half the weight traffic per
// pixel of BM = 32); else BM = 32 (more CTAs per SM, more CTAs for small batches); else BM = 64 at
// one CTA per SM; else the tiled kernel.
template <typename T, Math kMath>
FwdKernel choose_forward_kernel(const SepConvParams& p) {
  using L64 = ResidentFwdLayout<ResidentFwdTraits<T, kMath, true, 3, 3, 64>>;
  using L32 = ResidentFwdLayout<ResidentFwdTraits<T, kMath, true, 3, 3, 32>>;
  int device = 0, sms = 0, smem_optin = 0, smem_per_sm = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  cudaDeviceGetAttribute(&smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  const size_t static64 = sizeof(FwdPixelTable<64>), static32 = sizeof(FwdPixelTable<32>);
  const size_t bytes64 = L64::bytes(p.Cmid), bytes32 = L32::bytes(p.Cmid);
  const bool fit64 = bytes64 + static64 <= static_cast<size_t>(smem_optin);
  const bool fit32 = bytes32 + static32 <= static_cast<size_t>(smem_optin);
  bool forced = false;
  const FwdKernel wanted = forced_forward_kernel(forced);
  if (forced) {
    if (wanted == FwdKernel::kResident64 && fit64) return wanted;
    if (wanted == FwdKernel::kResident32 && fit32) return wanted;
    if (wanted == FwdKernel::kTiled) return wanted;
  }
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int per_sm64 = ctas_per_sm(bytes64 + static64, 256, smem_per_sm);
  if (fit64 && per_sm64 >= 2 && (pixels + 63) / 64 >= static_cast<int64_t>(sms) * per_sm64) return FwdKernel::kResident64;
  if (fit32) return FwdKernel::kResident32;
  if (fit64) return FwdKernel::kResident64;
  return FwdKernel::kTiled;
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
  switch (which) {
    case FwdKernel::kResident64:
      return launch_resident<ResidentFwdTraits<T, kMath, kChannelsLast, KH, KW, 64>>(p, stream);
    case FwdKernel::kResident32:
      return launch_resident<ResidentFwdTraits<T, kMath, kChannelsLast, KH, KW, 32>>(p, stream);
    default:
      return launch_tiled<FwdTraits<T, kMath, kChannelsLast, KH, KW>>(p, stream);
  }
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
  const char* kernel = which == FwdKernel::kResident64 ? "resident-bm64"
                       : which == FwdKernel::kResident32 ? "resident-bm32"
                                                         : "tiled";
  snprintf(name, sizeof(name), "forward %s %s %s %s %s", dtype_name,
           kMath == Math::kTensorCore ? (std::is_same_v<T, float> ? "tf32-mma" : "mma") : "ffma",
           p.channels_last ? "channels_last" : "nchw", k3x3 ? "3x3" : "general-kernel", kernel);
  return {error, name};
}

}  // namespace xsep
