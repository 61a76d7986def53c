// Choice and launch of the wgmma forward, included by sepconv_fwd_wgmma_{bf16,fp16}.cu.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "kernel_knobs.h"
#include "launch_pixel_tiles.cuh"
#include "phase_clocks.cuh"
#include "sepconv_fwd_wgmma.h"
#include "sepconv_fwd_wgmma_kernel.cuh"

namespace xsep {

#if defined(XSEP_WITH_CUTE)

// A kernel's static shared memory as the driver counts it against the opt-in limit (static plus
// dynamic; see kernel_static_shared_bytes), from the driver: the Hopper forwards' rings take every
// byte left, so the launchers ask rather than assume. Asked once per device (`known`: the caller's
// cache for this kernel, bytes + 1, 0 not asked yet); `estimate` where the driver cannot say.
template <class Kernel>
size_t driver_static_shared_bytes(Kernel kernel, size_t estimate, std::atomic<int> (&known)[64]) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return estimate;
  int bytes = known[device].load(std::memory_order_relaxed) - 1;
  if (bytes < 0) {
    cudaFuncAttributes attributes{};
    if (cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess) {
      bytes = static_cast<int>(attributes.sharedSizeBytes);
    } else {
      cudaGetLastError();  // no image for this device: the kernel is not started anyway
      bytes = static_cast<int>(estimate);
    }
    known[device].store(bytes + 1, std::memory_order_relaxed);
  }
  return static_cast<size_t>(bytes);
}

template <class Traits>
size_t wgmma_static_bytes() {
  static std::atomic<int> known[64];
  return driver_static_shared_bytes(sepconv_fwd_wgmma_kernel<Traits>,
                                    kernel_static_shared_bytes(sizeof(WgmmaFwdPixelTable<Traits>)), known);
}

// 128 pixels per CTA where Z fits (with the smallest ring), else 64; 0: neither fits.
// XSEP_FWD_PIXELS=64 asks for 64 (for measurement: half the weight reuse, twice the CTAs). fp32: 64
// (two warpgroups of TF32 accumulators would not fit 128 registers a thread).
template <typename T>
int wgmma_pixels(const SepConvParams& p, int smem_optin) {
  auto fits = [&](auto traits) {
    using Traits = decltype(traits);
    return WgmmaFwdLayout<Traits>::bytes(p.Cmid, Traits::kMinStages) + wgmma_static_bytes<Traits>() <=
           static_cast<size_t>(smem_optin);
  };
  const bool ask_64 = kernel_knob_is(KernelKnob::kFwdPixels, "64");
  if constexpr (sizeof(T) == 2) {
    if (!ask_64 && fits(WgmmaFwdTraits<T, 128>{})) return 128;
  }
  if (fits(WgmmaFwdTraits<T, 64>{})) return 64;
  return 0;
}

// The most ring slots (up to kMaxStages) that keep as many CTAs per SM as kMinStages do, by the
// occupancy calculator.
template <class Traits>
int wgmma_stages_search(int cmid, int smem_optin) {
  auto kernel = sepconv_fwd_wgmma_kernel<Traits>;
  const size_t static_bytes = wgmma_static_bytes<Traits>();
  auto fits = [&](int s) {
    return WgmmaFwdLayout<Traits>::bytes(cmid, s) + static_bytes <= static_cast<size_t>(smem_optin);
  };
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem_optin - static_bytes)) != cudaSuccess) {
    cudaGetLastError();  // not this call's error: the launch sets the size it needs and reports
    return Traits::kMinStages;
  }
  auto per_sm = [&](int s) {
    int blocks = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, Traits::kThreads,
                                                      WgmmaFwdLayout<Traits>::bytes(cmid, s)) != cudaSuccess) {
      cudaGetLastError();
      return -1;
    }
    return blocks;
  };
  const int base = per_sm(Traits::kMinStages);
  int stages = Traits::kMinStages;
  for (int s = Traits::kMinStages + 1; s <= Traits::kMaxStages && fits(s) && per_sm(s) >= base; ++s) stages = s;
  return stages;
}

// Slots in the weight ring for this call: wgmma_stages_search's answer, found once per device and
// Cmid (a launch then costs one lookup, not five occupancy queries); XSEP_FWD_STAGES=4..16 forces a
// count where it fits (for measurement).
template <class Traits>
int wgmma_stages(const SepConvParams& p, int smem_optin) {
  const int asked = std::atoi(kernel_knob(KernelKnob::kFwdStages).c_str());
  if (asked >= Traits::kMinStages && asked <= Traits::kMaxStages &&
      WgmmaFwdLayout<Traits>::bytes(p.Cmid, asked) + wgmma_static_bytes<Traits>() <= static_cast<size_t>(smem_optin))
    return asked;
  int device = 0;
  cudaGetDevice(&device);
  static std::mutex mutex;
  static std::map<std::pair<int, int>, int> known;  // (device, Cmid) -> stages
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(device, p.Cmid);
  auto it = known.find(key);
  if (it == known.end()) it = known.emplace(key, wgmma_stages_search<Traits>(p.Cmid, smem_optin)).first;
  return it->second;
}

// Whether two CTAs of this kernel fit on an SM for p's Cmid with the smallest ring: the SM's shared
// memory against twice a CTA's (dynamic, static, and the driver's reserve per CTA).
template <class Traits>
bool two_ctas_per_sm(const SepConvParams& p) {
  int device = 0, per_sm = 0, reserved = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, device);
  const size_t cta = WgmmaFwdLayout<Traits>::bytes(p.Cmid, Traits::kMinStages) + wgmma_static_bytes<Traits>() +
                     static_cast<size_t>(reserved);
  return 2 * cta <= static_cast<size_t>(per_sm);
}

// Whether a call takes the build for one CTA per SM rather than TwoPerSm's: where only one CTA
// fits beside its Z, or XSEP_FWD_CTAS asks (1: always, 2: never).
template <class TwoPerSm>
bool wants_one_cta_build(const SepConvParams& p) {
  if (kernel_knob_is(KernelKnob::kFwdCtas, "1")) return true;
  return !kernel_knob_is(KernelKnob::kFwdCtas, "2") && !two_ctas_per_sm<TwoPerSm>(p);
}

// Whether this build has the kernels' wgmma code for the current device.
template <typename T>
bool wgmma_forward_built() {
  static std::atomic<int8_t> cache[64];
  return once_per_device(cache, [] {
    if constexpr (sizeof(T) == 2) {
      if (!wgmma_body_built(sepconv_fwd_wgmma_kernel<WgmmaFwdTraits<T, 128>>)) return false;
    }
    return wgmma_body_built(sepconv_fwd_wgmma_kernel<WgmmaFwdTraits<T, 64>>);
  });
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
         wgmma_pixels<T>(p, smem_optin) > 0 && wgmma_forward_built<T>();
}

// The workspace's bytes (p.workspace: the packed pointwise weight, then the depthwise weight in
// fp32 pairs): the same for 64 and 128 pixels per CTA (the ring slot's layout does not depend on
// them).
template <typename T>
size_t wgmma_forward_workspace_bytes(const SepConvParams& p) {
  return wgmma_workspace_bytes<WgmmaFwdTraits<T, 64>>(p.Cout, p.Cmid);
}

// The grid of a grid-stride loop over `items` (256 threads a CTA, at most 8 CTAs per SM).
inline unsigned grid_stride_blocks(int64_t items) {
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>((items + 255) / 256, static_cast<int64_t>(sms) * 8)));
}

// The pointwise weight packed as PackTraits' ring slots (BN x BK) into `packed`
// (wgmma_packed_weight_elements<PackTraits>), rows in order: the streamed kernel's (the wgmma
// forward packs both weights in one launch, sepconv_fwd_wgmma_weights_pack_kernel). Returns the
// launch's cudaError_t.
template <class PackTraits>
int launch_wgmma_weight_pack(const SepConvParams& p, typename PackTraits::T* packed, cudaStream_t stream) {
  const int64_t pieces = wgmma_packed_weight_elements<PackTraits>(p.Cout, p.Cmid) / PackTraits::kVec;
  sepconv_fwd_wgmma_pack_kernel<PackTraits><<<grid_stride_blocks(pieces), 256, 0, stream>>>(p, packed);
  return static_cast<int>(cudaGetLastError());
}

// Both weights packed into p.workspace (wgmma_workspace_bytes of WgmmaFwdTraits<T, 64>) in one
// launch, sepconv_fwd_wgmma_weights_pack_kernel: the pointwise weight as 128 x 64-byte ring slots
// (rows in permuted_column's order; the slot's layout depends on neither the pixels nor the
// warpgroups), then the depthwise weight in fp32 groups of kLanes with their finite words. The
// wgmma and overlapped forwards' pack. Returns the launch's cudaError_t.
template <typename T, int kLanes>
int launch_wgmma_weights_pack(const SepConvParams& p, cudaStream_t stream) {
  using PackTraits = WgmmaFwdTraits<T, 64>;
  unsigned char* workspace = static_cast<unsigned char*>(p.workspace);
  const int64_t pieces = wgmma_packed_weight_elements<PackTraits>(p.Cout, p.Cmid) / PackTraits::kVec;
  sepconv_fwd_wgmma_weights_pack_kernel<PackTraits, kLanes>
      <<<grid_stride_blocks(std::max<int64_t>(pieces, static_cast<int64_t>(p.Cmid) * 9)), 256, 0, stream>>>(
          p, reinterpret_cast<T*>(workspace),
          reinterpret_cast<float*>(workspace + wgmma_dw_offset_bytes<PackTraits>(p.Cout, p.Cmid)));
  return static_cast<int>(cudaGetLastError());
}

// The pack kernel, then the forward; p.workspace holds wgmma_forward_workspace_bytes.
template <class Traits>
int launch_wgmma_traits(const SepConvParams& p, int smem_optin, cudaStream_t stream, WgmmaLaunch* launch) {
  launch->pixels = Traits::BM;
  launch->warpgroups = Traits::kWarpgroups;
  launch->min_blocks = Traits::kMinBlocks;
  launch->prefetch = Traits::kPrefetch;
  launch->dw_lanes = wgmma_dw_lanes<Traits>();
  launch->dw_pass_channels = Traits::BK * wgmma_dw_chunks<Traits>();
  launch->stages = wgmma_stages<Traits>(p, smem_optin);
  // XSEP_FWD_DW=staged (for measurement): the depthwise phase from bands of x in the ring
  // (sepconv_fwd_band.cuh), where the build has that path and the layer's geometry and the ring
  // take a band; else the windows' loads from x.
  int band_buffers = 0;
  if constexpr (wgmma_band_build<Traits>()) {
    constexpr int kPassBytes = Traits::BK * wgmma_dw_chunks<Traits>() * static_cast<int>(sizeof(typename Traits::T));
    if (kernel_knob_is(KernelKnob::kFwdDw, "staged"))
      band_buffers =
          band_buffer_count(p, Traits::BM, kPassBytes, static_cast<size_t>(launch->stages) * Traits::kWSlotBytes);
  }
  launch->band_buffers = band_buffers;
  if (p.workspace == nullptr) return static_cast<int>(cudaErrorInvalidValue);
  using PackTraits = WgmmaFwdTraits<typename Traits::T, 64>;
  static_assert(PackTraits::BN == Traits::BN && PackTraits::BK == Traits::BK, "the same ring slots");
  if (const int e = launch_wgmma_weights_pack<typename Traits::T, wgmma_dw_lanes<Traits>()>(p, stream)) return e;
  // With XSEP_PHASE_CLOCKS=1, the CTAs' phase stamps are kept (a grid has at most a CTA per pixel
  // tile and output-channel tile).
  const int64_t most_ctas = (static_cast<int64_t>(p.N) * p.Ho * p.Wo + Traits::BM - 1) / Traits::BM *
                            ((p.Cout + Traits::BN - 1) / Traits::BN);
  return launch_keeping_phase_clocks(most_ctas, "wgmma forward", stream, [&](unsigned long long* records) {
    SepConvParams q = p;
    q.phase_clocks = records;
    return launch_pixel_tiles<Traits::BM, Traits::BN>(sepconv_fwd_wgmma_kernel<Traits>, Traits::kThreads,
                                                      WgmmaFwdLayout<Traits>::bytes(q.Cmid, launch->stages), q, stream,
                                                      &launch->parts, launch->stages, band_buffers);
  });
}

template <typename T>
int launch_wgmma_forward(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch) {
  int device = 0, smem_optin = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  const bool prefetch = kernel_knob_is(KernelKnob::kFwdPrefetch, "1");
  if constexpr (sizeof(T) == 2) {
    if (wgmma_pixels<T>(p, smem_optin) == 128) {
      // XSEP_FWD_WARPGROUPS=4 (for measurement): four warpgroups, two along the output channels.
      if (kernel_knob_is(KernelKnob::kFwdWarpgroups, "4"))
        return launch_wgmma_traits<WgmmaFwdTraits<T, 128, 2>>(p, smem_optin, stream, launch);
      // Where Z leaves room for one CTA per SM (Cmid above ~300: the 728 layers), the build for
      // one: up to 255 registers a thread instead of 128 at the same occupancy, so channel
      // quartets in the depthwise phase (~22 instructions a value by the SASS count, against ~27
      // with pairs) and two windows for quads an output row ends inside (kTwoRuns).
      // XSEP_FWD_CTAS (for measurement) asks for either build; XSEP_FWD_PREFETCH=1 adds the next
      // chunk's loads in flight during a chunk's arithmetic to the one-CTA build.
      using TwoPerSm = WgmmaFwdTraits<T, 128>;
      const bool one_per_sm = wants_one_cta_build<TwoPerSm>(p);
      if (one_per_sm && prefetch)
        return launch_wgmma_traits<WgmmaFwdTraits<T, 128, 1, 1, true>>(p, smem_optin, stream, launch);
      if (one_per_sm) return launch_wgmma_traits<WgmmaFwdTraits<T, 128, 1, 1, false>>(p, smem_optin, stream, launch);
      return launch_wgmma_traits<TwoPerSm>(p, smem_optin, stream, launch);
    }
  }
  // 64 pixels (TF32, and 16-bit Z of ~800+ channels). The prefetch build's registers (197-241,
  // against 120-149) allow two CTAs per SM, where the shallow TF32 layers' shared memory held more.
  if (prefetch) return launch_wgmma_traits<WgmmaFwdTraits<T, 64, 1, 2, true>>(p, smem_optin, stream, launch);
  // Where Z leaves room for one CTA per SM (16-bit 1024+ channels, TF32 728+), the build for one:
  // two chunks a depthwise pass (wgmma_dw_chunks), quartets and two-window quads, with the
  // registers that would have cost a place where two or more fit. XSEP_FWD_CTAS asks for either.
  using TwoPerSm = WgmmaFwdTraits<T, 64>;
  if (wants_one_cta_build<TwoPerSm>(p))
    return launch_wgmma_traits<WgmmaFwdTraits<T, 64, 1, 1, false>>(p, smem_optin, stream, launch);
  return launch_wgmma_traits<TwoPerSm>(p, smem_optin, stream, launch);
}

#else  // without CuTe there is no wgmma kernel: nothing applies

template <typename T>
bool wgmma_forward_applies(const SepConvParams&) {
  return false;
}

template <typename T>
size_t wgmma_forward_workspace_bytes(const SepConvParams&) {
  return 0;
}

template <typename T>
int launch_wgmma_forward(const SepConvParams&, cudaStream_t, WgmmaLaunch*) {
  return static_cast<int>(cudaErrorNotSupported);
}

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
