// Which forward kernel runs, and its launch: on Hopper (sm_90a builds with CuTe) the wgmma kernel
// (sepconv_fwd_wgmma_kernel.cuh) where it applies, but for 16-bit layers of at most 64 channels in
// and 128 out; elsewhere the resident kernel (32 pixels and all output channels per CTA) where its
// shared memory fits, else the tiled kernel. Included by the per-dtype .cu files.
//
// 32 pixels rather than 64 for the resident kernel: on the H100
// (benchmarks/results/gpu-forward-bf16-resident*.md) 32 was faster on most Xception layers at N=32
// and 128 (up to 1.5x on 728-channel layers: three CTAs per SM instead of one) and within 2% on the
// rest, and it fits intermediates twice as wide.
//
// XSEP_FWD_KERNEL=resident | tiled | halo | wgmma | streamed | overlap forces a choice where it
// applies, for benchmarks and tests (halo: the experimental halo kernel, sepconv_fwd_halo_kernel.cuh;
// streamed: the warp-specialised Hopper kernel that recomputes Z per output-channel tile,
// sepconv_fwd_streamed_kernel.cuh; overlap: the warp-specialised one that keeps each pixel tile's Z
// whole, in one or two buffers, sepconv_fwd_overlap_kernel.cuh). XSEP_FWD_STAGES and
// XSEP_FWD_PIXELS=64|128: ring depths and pixels per CTA, for measurement.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>

#include "kernel_knobs.h"
#include "launch_pixel_tiles.cuh"
#include "sepconv_fwd.h"
#include "sepconv_fwd_halo_kernel.cuh"
#include "sepconv_fwd_kernel.cuh"
#include "sepconv_fwd_overlap.h"
#include "sepconv_fwd_resident_kernel.cuh"
#include "sepconv_fwd_streamed.h"
#include "sepconv_fwd_wgmma.h"

namespace xsep {

enum class FwdKernel { kResident, kTiled, kHalo, kWgmma, kStreamed, kOverlap };
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
         HaloFwdLayout<Traits>::bytes(p) + kernel_static_shared_bytes(64 * sizeof(int64_t)) <=
             static_cast<size_t>(smem_optin);
}

// XSEP_FWD_STAGES=3: the resident kernel keeps three weight chunks in flight instead of two (for
// measurement: 50% more shared memory for the chunks, so fewer CTAs per SM on wide layers).
inline int resident_stages() { return kernel_knob_is(KernelKnob::kFwdStages, "3") ? 3 : 2; }

// XSEP_FWD_PIXELS=64 | 128: the resident kernel with 64 or 128 pixels per CTA (8 or 16 warps) for
// 16-bit channels_last 3x3 inputs, for measurement: every CTA streams the whole pointwise weight
// through shared memory, so BM pixels per CTA give the GEMM BM FLOPs per byte of that L2 traffic
// (at 32 pixels a 728-channel layer's weight traffic alone is about what cuDNN's whole forward
// takes), against fewer CTAs with more shared memory each. 32 by default and everywhere else.
inline int resident_pixels_asked() {
  const std::string forced = kernel_knob(KernelKnob::kFwdPixels);
  if (forced == "64") return 64;
  if (forced == "128") return 128;
  return kResidentPixels;
}

// The resident kernel's shape for one call: pixels per CTA and weight stages.
struct ResidentShape {
  int pixels = kResidentPixels;
  int stages = 2;
};

// Shared memory of the resident kernel in that shape.
template <typename T, Math kMath>
size_t resident_bytes(const SepConvParams& p, ResidentShape shape) {
  auto bytes = [&](auto bm, auto stages) {
    using Traits = ResidentFwdTraits<T, kMath, true, 3, 3, decltype(bm)::value, decltype(stages)::value>;
    return ResidentFwdLayout<Traits>::bytes(p.Cmid) + kernel_static_shared_bytes(sizeof(FwdPixelTable<Traits::BM>));
  };
  using S2 = std::integral_constant<int, 2>;
  if (shape.pixels == 64) return bytes(std::integral_constant<int, 64>{}, S2{});
  if (shape.pixels == 128) return bytes(std::integral_constant<int, 128>{}, S2{});
  return shape.stages == 3 ? bytes(std::integral_constant<int, kResidentPixels>{}, std::integral_constant<int, 3>{})
                           : bytes(std::integral_constant<int, kResidentPixels>{}, S2{});
}

// The shape asked for: XSEP_FWD_PIXELS for 16-bit channels_last 3x3 calls (halved while it does
// not fit in shared memory: deep layers), else 32 pixels with XSEP_FWD_STAGES stages.
template <typename T, Math kMath>
ResidentShape resident_shape(const SepConvParams& p, int smem_optin) {
  ResidentShape shape;
  if (sizeof(T) == 2 && p.channels_last && p.kh == 3 && p.kw == 3) {
    for (int bm = resident_pixels_asked(); bm > kResidentPixels; bm /= 2) {
      if (resident_bytes<T, kMath>(p, {bm, 2}) <= static_cast<size_t>(smem_optin)) return {bm, 2};
    }
  }
  shape.stages = resident_stages();
  return shape;
}

// The 16-bit layers where the resident kernel is the Hopper default (choose_forward_kernel).
inline constexpr int kResidentPreferredMaxCmid = 64;
inline constexpr int kResidentPreferredMaxCout = 128;

struct ForwardChoice {
  FwdKernel kernel;
  ResidentShape resident;  // when kernel is kResident
};

// with_workspace: whether the call can have the wgmma kernel's workspace (a caller that passes none,
// having not asked forward_workspace_bytes, gets the resident or tiled kernel).
template <typename T, Math kMath>
ForwardChoice choose_forward_kernel(const SepConvParams& p, bool with_workspace = true) {
  int device = 0, smem_optin = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  const ResidentShape shape = resident_shape<T, kMath>(p, smem_optin);
  const bool fits = resident_bytes<T, kMath>(p, shape) <= static_cast<size_t>(smem_optin);
  std::string forced = kernel_knob(KernelKnob::kFwdKernel);
  // XSEP_FWD_KERNEL=overlap: the depthwise phase and the GEMM on different warps, at once
  // (sepconv_fwd_overlap_kernel.cuh: 16-bit and TF32 layers whose Z of 64 pixels fits); elsewhere the
  // default choice, so a benchmark's overlap rows compare it with what would run instead.
  if (forced == "overlap") {
    if constexpr (kMath == Math::kTensorCore) {
      if (with_workspace && overlap_forward_applies<T>(p)) return {FwdKernel::kOverlap, shape};
    }
    forced.clear();
  }
  if (forced == "tiled") return {FwdKernel::kTiled, shape};
  if (forced == "halo" && halo_applies<T, kMath>(p, smem_optin, major)) return {FwdKernel::kHalo, shape};
  // The wgmma kernel where it applies (Hopper, sm_90a builds with CuTe): on an H200 it beat the
  // resident kernel on every Xception layer in bf16 and TF32 (benchmarks/results/gpu-checks.md).
  // XSEP_FWD_KERNEL=resident keeps the resident kernel.
  // XSEP_FWD_KERNEL=streamed: the warp-specialised Hopper kernel (sepconv_fwd_streamed_kernel.cuh).
  if constexpr (kMath == Math::kTensorCore) {  // 16-bit, or fp32 on TF32
    if (forced == "streamed" && with_workspace && streamed_forward_applies<T>(p)) return {FwdKernel::kStreamed, shape};
    // Except 16-bit layers with at most 64 depthwise channels and 128 output channels: there the
    // resident kernel beat the wgmma one on an H200 (64->128 @147 bf16: 0.52x of cuDNN against
    // 0.45x at N=32, 0.49x against 0.44x at N=128; 128->128 @147 was even and TF32 lost, 0.53x
    // against 0.77x; gpu-compare-forward.md, 3ac7082). The wgmma kernel's fixed cost per CTA (tap
    // table, weight ring, a 128-pixel epilogue) has the least work to hide behind there.
    if (forced.empty() && sizeof(T) == 2 && p.Cmid <= kResidentPreferredMaxCmid &&
        p.Cout <= kResidentPreferredMaxCout && fits)
      return {FwdKernel::kResident, shape};
    if ((forced.empty() || forced == "wgmma") && with_workspace && wgmma_forward_applies<T>(p))
      return {FwdKernel::kWgmma, shape};
    // Where the wgmma kernel's Z (64 pixels x every channel) does not fit (TF32 past ~800
    // channels: 728 fits, 1024 does not), the streamed kernel, which takes Z in chunks: on the
    // H200 it beat the resident kernel on every Xception layer the wgmma kernel cannot take (TF32
    // 1024->1536 @10: 0.29x of cuDNN against 0.22x at N=32, 0.23x against 0.15x at N=128;
    // 1536->2048 @10: 0.28x against 0.09x, 0.17x against 0.04x; gpu-compare-forward.md, 1e4eb8d).
    if (forced.empty() && with_workspace && streamed_forward_applies<T>(p)) return {FwdKernel::kStreamed, shape};
  }
  return {fits ? FwdKernel::kResident : FwdKernel::kTiled, shape};
}

// Launches the resident kernel; *parts says how many CTAs shared each pixel tile's output channels.
template <class Traits>
int launch_resident(const SepConvParams& p, cudaStream_t stream, int* parts) {
  return launch_pixel_tiles<Traits::BM, Traits::BN>(sepconv_fwd_resident_kernel<Traits>, Traits::kThreads,
                                                    ResidentFwdLayout<Traits>::bytes(p.Cmid), p, stream, parts);
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
int launch_forward_variant(const SepConvParams& p, cudaStream_t stream, ForwardChoice choice, int* parts) {
  if (choice.kernel == FwdKernel::kResident) {
    if constexpr (sizeof(T) == 2 && kChannelsLast && KH == 3 && KW == 3) {
      if (choice.resident.pixels == 64)
        return launch_resident<ResidentFwdTraits<T, kMath, true, 3, 3, 64>>(p, stream, parts);
      if (choice.resident.pixels == 128)
        return launch_resident<ResidentFwdTraits<T, kMath, true, 3, 3, 128>>(p, stream, parts);
    }
    if (choice.resident.stages == 3)
      return launch_resident<ResidentFwdTraits<T, kMath, kChannelsLast, KH, KW, kResidentPixels, 3>>(p, stream, parts);
    return launch_resident<ResidentFwdTraits<T, kMath, kChannelsLast, KH, KW, kResidentPixels>>(p, stream, parts);
  }
  if constexpr (kChannelsLast) {
    if (choice.kernel == FwdKernel::kHalo)
      return launch_halo<ResidentFwdTraits<T, kMath, true, KH, KW, kHaloTile * kHaloTile>>(p, stream);
  }
  return launch_tiled<FwdTraits<T, kMath, kChannelsLast, KH, KW>>(p, stream);
}

// The wgmma kernels run on tensor cores only (choose_forward_kernel never picks them for exact fp32).
template <typename T, Math kMath>
int launch_wgmma_if_tensor_cores(const SepConvParams& p, cudaStream_t stream, FwdKernel kernel, WgmmaLaunch* launch) {
  if constexpr (kMath == Math::kTensorCore) {
    if (kernel == FwdKernel::kOverlap) return launch_overlap_forward<T>(p, stream, launch);
    return kernel == FwdKernel::kStreamed ? launch_streamed_forward<T>(p, stream, launch)
                                          : launch_wgmma_forward<T>(p, stream, launch);
  } else {
    return static_cast<int>(cudaErrorNotSupported);
  }
}

// The workspace (SepConvParams::workspace) the call needs: the wgmma kernel's packed weight, else
// none.
template <typename T, Math kMath>
size_t forward_workspace_bytes(const SepConvParams& p) {
  if constexpr (kMath == Math::kTensorCore) {
    const FwdKernel kernel = choose_forward_kernel<T, kMath>(p).kernel;
    if (kernel == FwdKernel::kWgmma) return wgmma_forward_workspace_bytes<T>(p);
    if (kernel == FwdKernel::kStreamed) return streamed_forward_workspace_bytes<T>(p);
    if (kernel == FwdKernel::kOverlap) return overlap_forward_workspace_bytes<T>(p);
  }
  return 0;
}

template <typename T, Math kMath>
LaunchResult launch_sepconv_fwd(const SepConvParams& p, cudaStream_t stream, const char* dtype_name) {
  const bool k3x3 = p.kh == 3 && p.kw == 3;
  const ForwardChoice choice = choose_forward_kernel<T, kMath>(p, /*with_workspace=*/p.workspace != nullptr);
  int error, parts = 1;
  WgmmaLaunch wgmma;
  if (choice.kernel == FwdKernel::kWgmma || choice.kernel == FwdKernel::kStreamed ||
      choice.kernel == FwdKernel::kOverlap) {
    error = launch_wgmma_if_tensor_cores<T, kMath>(p, stream, choice.kernel, &wgmma);
  } else if (p.channels_last) {
    error = k3x3 ? launch_forward_variant<T, kMath, true, 3, 3>(p, stream, choice, &parts)
                 : launch_forward_variant<T, kMath, true, 0, 0>(p, stream, choice, &parts);
  } else {
    error = k3x3 ? launch_forward_variant<T, kMath, false, 3, 3>(p, stream, choice, &parts)
                 : launch_forward_variant<T, kMath, false, 0, 0>(p, stream, choice, &parts);
  }
  static thread_local char name[256];
  const FwdKernel which = choice.kernel;
  const char* kernel = which == FwdKernel::kResident   ? "resident"
                       : which == FwdKernel::kHalo     ? "halo"
                       : which == FwdKernel::kWgmma    ? "wgmma"
                       : which == FwdKernel::kStreamed ? "streamed"
                       : which == FwdKernel::kOverlap  ? "overlap"
                                                       : "tiled";
  char detail[192] = "";
  if (which == FwdKernel::kResident) {
    snprintf(detail, sizeof(detail), " (%d pixels, %d stages, cout split %d)", choice.resident.pixels,
             choice.resident.stages, parts);
  } else if (which == FwdKernel::kWgmma) {
    // The builds for one CTA per SM on one warpgroup per 64 pixels (not the 4-warpgroup one).
    const bool one_cta_build = wgmma.min_blocks == 1 && wgmma.warpgroups * 64 == wgmma.pixels;
    char one_cta[64] = "";
    if (one_cta_build) snprintf(one_cta, sizeof(one_cta), ", one CTA per SM, %d-channel items", wgmma.dw_lanes);
    char pass[48] = "";  // where a depthwise pass takes more than a Z chunk
    if (wgmma.dw_pass_channels * static_cast<int>(sizeof(T)) > 64)
      snprintf(pass, sizeof(pass), ", %d channels a depthwise pass", wgmma.dw_pass_channels);
    char band[48] = "";  // XSEP_FWD_DW=staged, where it applied
    if (wgmma.band_buffers > 0)
      snprintf(band, sizeof(band), ", x staged in %d band buffer%s", wgmma.band_buffers,
               wgmma.band_buffers > 1 ? "s" : "");
    snprintf(detail, sizeof(detail), " (%d pixels, %d stages, cout split %d%s%s%s%s%s)", wgmma.pixels, wgmma.stages,
             wgmma.parts, wgmma.warpgroups == 4 ? ", 4 warpgroups" : "", one_cta, pass,
             wgmma.prefetch ? ", prefetch" : "", band);
  } else if (which == FwdKernel::kOverlap) {
    snprintf(detail, sizeof(detail), " (%d pixels, %d stages, %s, cout split %d, %d-channel items%s)", wgmma.pixels,
             wgmma.stages, wgmma.z_buffers == 2 ? "two Z buffers" : "one Z buffer", wgmma.parts, wgmma.dw_lanes,
             wgmma.pair == 1   ? ", CTA pairs sharing each weight chunk"
             : wgmma.pair == 2 ? ", CTA pairs sharing each tile's Z"
                               : "");
  } else if (which == FwdKernel::kStreamed) {
    snprintf(detail, sizeof(detail), " (%d pixels, %d stages, %d-channel tiles)", wgmma.pixels, wgmma.stages,
             wgmma.tile_channels);
  }
  snprintf(name, sizeof(name), "forward %s %s %s %s %s%s", dtype_name,
           kMath == Math::kTensorCore ? (std::is_same_v<T, float> ? "tf32-mma" : "mma") : "ffma",
           p.channels_last ? "channels_last" : "nchw", k3x3 ? "3x3" : "general-kernel", kernel, detail);
  return {error, name};
}

}  // namespace xsep
