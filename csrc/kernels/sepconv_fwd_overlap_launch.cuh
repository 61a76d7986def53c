// Choice and launch of the overlapped wgmma forward, included by sepconv_fwd_overlap_wgmma_*.cu.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <type_traits>

#include "kernel_knobs.h"
#include "phase_clocks.cuh"
#include "sepconv_fwd_overlap.h"
#include "sepconv_fwd_overlap_kernel.cuh"
#include "sepconv_fwd_wgmma_launch.cuh"  // grid_stride_blocks, the weights' pack kernel

namespace xsep {

#if defined(XSEP_WITH_CUTE)

// The builds the launcher starts: two Z buffers where they fit, else one; two-run quads by windows
// (ptxas: 162 registers of the 168 that 384 threads leave, no spills).
template <typename T>
using OverlapTwoBuffers = OverlapFwdTraits<T, /*kTwoRuns=*/true, 2>;
template <typename T>
using OverlapOneBuffer = OverlapFwdTraits<T, /*kTwoRuns=*/true, 1>;
// The pair builds (XSEP_FWD_PAIR=weights|z): clusters of two CTAs, each weight chunk read once for
// both, or each tile's Z computed half by each.
template <typename T, OverlapPair kPair>
using OverlapPairTwoBuffers = OverlapFwdTraits<T, /*kTwoRuns=*/true, 2, kPair>;
template <typename T, OverlapPair kPair>
using OverlapPairOneBuffer = OverlapFwdTraits<T, /*kTwoRuns=*/true, 1, kPair>;

// The kernel's static shared memory (the one-CTA build: OverlapShared; the pair build: the wgmma
// marker) as the driver counts it (driver_static_shared_bytes).
template <class Traits>
size_t overlap_static_bytes() {
  static std::atomic<int> known[64];
  const size_t declared = Traits::kCluster == 1 ? sizeof(OverlapShared<Traits>) : sizeof(int);
  return driver_static_shared_bytes(sepconv_fwd_overlap_kernel<Traits>, kernel_static_shared_bytes(declared), known);
}

// The most ring slots (up to kMaxStages) that fit beside the Z buffers; XSEP_FWD_STAGES=3..16
// asks for fewer (for measurement). 0: not even kMinStages fit.
template <class Traits>
int overlap_stages(int cmid, int smem_optin) {
  const size_t static_bytes = overlap_static_bytes<Traits>();
  auto fits = [&](int s) {
    return OverlapFwdLayout<Traits>::bytes(cmid, s) + static_bytes <= static_cast<size_t>(smem_optin);
  };
  if (!fits(Traits::kMinStages)) return 0;
  const int asked = std::atoi(kernel_knob(KernelKnob::kFwdStages).c_str());
  if (asked >= Traits::kMinStages && asked <= Traits::kMaxStages && fits(asked)) return asked;
  int stages = Traits::kMinStages;
  while (stages < Traits::kMaxStages && fits(stages + 1)) ++stages;
  return stages;
}

template <typename T>
bool overlap_forward_built() {
  static std::atomic<int8_t> cache[64];
  return once_per_device(cache, [] {
    return wgmma_body_built(sepconv_fwd_overlap_kernel<OverlapTwoBuffers<T>>) &&
           wgmma_body_built(sepconv_fwd_overlap_kernel<OverlapOneBuffer<T>>);
  });
}

// cudaLaunchKernelEx's configuration for `ctas` CTAs of a pair build in clusters of two along x,
// with `bytes` of dynamic shared memory each.
template <class Traits>
struct PairLaunchConfig {
  cudaLaunchAttribute cluster{};
  cudaLaunchConfig_t config{};
  PairLaunchConfig(unsigned ctas, size_t bytes, cudaStream_t stream) {
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = 2, cluster.val.clusterDim.y = 1, cluster.val.clusterDim.z = 1;
    config.gridDim = dim3(ctas);
    config.blockDim = dim3(Traits::kThreads);
    config.dynamicSmemBytes = bytes;
    config.stream = stream;
    config.attrs = &cluster;
    config.numAttrs = 1;
  }
  PairLaunchConfig(const PairLaunchConfig&) = delete;  // config points at cluster
  PairLaunchConfig& operator=(const PairLaunchConfig&) = delete;
};

// Clusters of two CTAs of this pair build that can be resident at once with `bytes` of dynamic
// shared memory each (the occupancy calculator's: SM pairs within a GPC; 0 where none fits), asked
// once per device and size (the first asking sets the kernel's shared-memory limit to `bytes`; a
// launch sets its own after).
template <class Traits>
int overlap_resident_pairs(size_t bytes) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  static std::mutex mutex;
  static std::map<std::pair<int, size_t>, int> known;
  std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = known.find({device, bytes}); it != known.end()) return it->second;
  const auto kernel = sepconv_fwd_overlap_kernel<Traits>;
  int clusters = 0;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)) ==
      cudaSuccess) {
    const PairLaunchConfig<Traits> pair(2, bytes, nullptr);
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &pair.config) != cudaSuccess) clusters = 0;
  }
  cudaGetLastError();  // a refusal here is not the caller's error: the pair build just does not apply
  known.emplace(std::make_pair(device, bytes), clusters);
  return clusters;
}

// Whether kPair's builds were built for this device and a cluster of two of them can be resident
// with all the shared memory a CTA may take (the launches fill it with ring slots).
template <typename T, OverlapPair kPair>
bool overlap_pairs_run() {
  static std::atomic<int8_t> cache[64];
  return once_per_device(cache, [] {
    using Traits = OverlapPairOneBuffer<T, kPair>;
    if (!wgmma_body_built(sepconv_fwd_overlap_kernel<OverlapPairTwoBuffers<T, kPair>>) ||
        !wgmma_body_built(sepconv_fwd_overlap_kernel<Traits>))
      return false;
    int device = 0, smem_optin = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    return overlap_resident_pairs<Traits>(static_cast<size_t>(smem_optin) - overlap_static_bytes<Traits>()) > 0;
  });
}

// XSEP_FWD_PAIR (for measurement): the pair build asked for, kNone where none is.
inline OverlapPair overlap_pair_asked() {
  if (kernel_knob_is(KernelKnob::kFwdPair, "weights")) return OverlapPair::kWeights;
  if (kernel_knob_is(KernelKnob::kFwdPair, "z")) return OverlapPair::kZ;
  return OverlapPair::kNone;
}

template <typename T>
bool overlap_forward_applies(const SepConvParams& p) {
  using Traits = OverlapOneBuffer<T>;  // the smaller shared memory of the two builds
  int device = 0, smem_optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  // Pixels below 2^31 (a pair's second tile past the last included): the kernel's tile and pixel
  // arithmetic is 32-bit (its offsets are not).
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  return p.channels_last && p.kh == 3 && p.kw == 3 && depthwise_vec_applies<Traits>(p) &&
         output_vec_applies<Traits>(p) && p.Cmid % Traits::kVec == 0 &&
         reinterpret_cast<uintptr_t>(p.pw_weight) % 16 == 0 && pixels <= INT32_MAX - 2 * Traits::BM &&
         overlap_stages<Traits>(p.Cmid, smem_optin) > 0 && overlap_forward_built<T>();
}

template <typename T>
size_t overlap_forward_workspace_bytes(const SepConvParams& p) {
  return wgmma_workspace_bytes<OverlapPackTraits<T>>(p.Cout, p.Cmid);
}

// The pack kernel (both weights, one launch), then the forward: persistent, one CTA per SM (its Z
// buffers take the SM's shared memory), at most one per work item; where the pixel tiles fill at
// most half the SMs, as many parts of the output channels as fill them (resident_cout_parts). The
// pair builds: launched in clusters of two, SMs counted in pairs; the weights pairs' pixel tiles in
// pairs too; the Z pairs' parts in halves (at most half as many parts as the output channels have
// 128-channel tiles, so every CTA has some).
template <class Traits>
int launch_overlap_traits(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch) {
  using T = typename Traits::T;
  constexpr int kCluster = Traits::kCluster;
  int device = 0, smem_optin = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  launch->pixels = Traits::BM;
  launch->warpgroups = Traits::kThreads / 128;
  launch->min_blocks = 1;
  launch->z_buffers = Traits::kZBuffers;
  launch->pair = static_cast<int>(Traits::kPair);
  launch->dw_lanes = Traits::kDwLanes;
  launch->dw_pass_channels = Traits::BK * Traits::kDwChunks;
  launch->stages = overlap_stages<Traits>(p.Cmid, smem_optin);
  if (p.workspace == nullptr || launch->stages == 0) return static_cast<int>(cudaErrorInvalidValue);
  static_assert(std::is_same_v<OverlapPackTraits<T>, WgmmaFwdTraits<T, 64>>, "the wgmma forward's pack");
  if (const int e = launch_wgmma_weights_pack<T, Traits::kDwLanes>(p, stream)) return e;
  const auto kernel = sepconv_fwd_overlap_kernel<Traits>;
  const size_t bytes = OverlapFwdLayout<Traits>::bytes(p.Cmid, launch->stages);
  // Pairs: as many at once as the GPU holds (not every SM pair need be in one GPC), at least one.
  const int resident_pairs = kCluster == 2 ? std::max(overlap_resident_pairs<Traits>(bytes), 1) : 0;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return static_cast<int>(err);
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int64_t pixel_tiles = (pixels + Traits::BM - 1) / Traits::BM;
  constexpr bool kShareWeights = Traits::kPair == OverlapPair::kWeights;
  const int64_t groups = kShareWeights ? (pixel_tiles + 1) / 2 : pixel_tiles;  // pixel tiles (pairs)
  const int64_t units = std::max(kCluster == 2 ? std::min(sms / 2, resident_pairs) : sms, 1);  // at once
  if constexpr (Traits::kPair == OverlapPair::kZ) {
    const int cout_tiles = (p.Cout + Traits::BN - 1) / Traits::BN;
    launch->parts = std::max(1, std::min(resident_cout_parts(groups, units, p.Cout, 2 * Traits::BN), cout_tiles / 2));
  } else {
    launch->parts = resident_cout_parts(groups, units, p.Cout, Traits::BN);
  }
  const int64_t ctas = std::min<int64_t>(groups * launch->parts, units) * kCluster;
  if (ctas == 0) return static_cast<int>(cudaSuccess);  // no pixels: nothing to write
  // With XSEP_PHASE_CLOCKS=1, each CTA's sums of its phases' cycles are kept (OverlapClockSum).
  return launch_keeping_phase_clocks(ctas, "overlapped forward", stream, [&](unsigned long long* records) {
    SepConvParams q = p;
    q.phase_clocks = records;
    if constexpr (kCluster == 1) {
      kernel<<<static_cast<unsigned>(ctas), Traits::kThreads, bytes, stream>>>(q, launch->stages, launch->parts);
      return static_cast<int>(cudaGetLastError());
    } else {
      const PairLaunchConfig<Traits> pair(static_cast<unsigned>(ctas), bytes, stream);
      return static_cast<int>(cudaLaunchKernelEx(&pair.config, kernel, q, launch->stages, launch->parts));
    }
  });
}

// kPair's builds, two Z buffers where they fit, else one; false where they do not take the call
// (not built, no cluster fits, no ring fits, or Z pairs for one tile of output channels).
template <typename T, OverlapPair kPair>
bool launch_overlap_pairs(const SepConvParams& p, int smem_optin, cudaStream_t stream, WgmmaLaunch* launch,
                          int* error) {
  if (kPair == OverlapPair::kZ && p.Cout <= OverlapPairOneBuffer<T, kPair>::BN) return false;
  if (!overlap_pairs_run<T, kPair>() || overlap_stages<OverlapPairOneBuffer<T, kPair>>(p.Cmid, smem_optin) == 0)
    return false;
  *error = overlap_stages<OverlapPairTwoBuffers<T, kPair>>(p.Cmid, smem_optin) > 0
               ? launch_overlap_traits<OverlapPairTwoBuffers<T, kPair>>(p, stream, launch)
               : launch_overlap_traits<OverlapPairOneBuffer<T, kPair>>(p, stream, launch);
  return true;
}

// Two Z buffers where they fit, else one; the pair build XSEP_FWD_PAIR asks for where it takes the
// call.
template <typename T>
int launch_overlap_forward(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch) {
  int device = 0, smem_optin = 0, error = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  const OverlapPair pair = overlap_pair_asked();
  if (pair == OverlapPair::kWeights &&
      launch_overlap_pairs<T, OverlapPair::kWeights>(p, smem_optin, stream, launch, &error))
    return error;
  if (pair == OverlapPair::kZ && launch_overlap_pairs<T, OverlapPair::kZ>(p, smem_optin, stream, launch, &error))
    return error;
  if (overlap_stages<OverlapTwoBuffers<T>>(p.Cmid, smem_optin) > 0)
    return launch_overlap_traits<OverlapTwoBuffers<T>>(p, stream, launch);
  return launch_overlap_traits<OverlapOneBuffer<T>>(p, stream, launch);
}

#else  // without CuTe there is no wgmma kernel: nothing applies

template <typename T>
bool overlap_forward_applies(const SepConvParams&) {
  return false;
}

template <typename T>
size_t overlap_forward_workspace_bytes(const SepConvParams&) {
  return 0;
}

template <typename T>
int launch_overlap_forward(const SepConvParams&, cudaStream_t, WgmmaLaunch*) {
  return static_cast<int>(cudaErrorNotSupported);
}

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
