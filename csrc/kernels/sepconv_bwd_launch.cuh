// Which backward kernels run, and their launch (the partial sums' reduction included). Included by
// the per-dtype .cu files; the kernels themselves include only CUDA headers, so the host emulation
// (tests/cpp/cuda_host_emulation.h) runs them without this file.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>

#include "kernel_knobs.h"
#include "sepconv_bwd.h"
#include "sepconv_bwd_input_staged_kernel.cuh"
#include "sepconv_bwd_kernel.cuh"
#include "sepconv_bwd_pw_staged_kernel.cuh"
#include "sepconv_bwd_wgmma.h"

namespace xsep {

// Sums `count` rows of `len` floats into out (len elements of T): while more than kDirect rows
// are left, in groups of kGroup rows into `scratch` and back (`parts` is reused on the way: its
// rows are no longer needed), then once into out. scratch holds reduce_scratch_rows(count) rows
// of len (sepconv_bwd.h).
inline constexpr int64_t kReduceDirect = 64;  // reduce_scratch_rows in sepconv_bwd.h agrees
inline constexpr int64_t kReduceGroup = 32;

template <typename T>
cudaError_t reduce_partials(float* parts, int64_t count, int64_t len, float* scratch, T* out, cudaStream_t stream) {
  constexpr int64_t kGroup = kReduceGroup;
  const unsigned blocks = static_cast<unsigned>((len + 255) / 256);
  float* src = parts;
  float* dst = scratch;
  while (count > kReduceDirect) {
    const int64_t groups = (count + kGroup - 1) / kGroup;
    sepconv_bwd_reduce_kernel<float>
        <<<dim3(blocks, static_cast<unsigned>(groups)), 256, 0, stream>>>(src, count, len, kGroup, dst);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    count = groups;
    float* tmp = src;
    src = dst;
    dst = tmp;
  }
  sepconv_bwd_reduce_kernel<T><<<dim3(blocks, 1), 256, 0, stream>>>(src, count, len, count, out);
  return cudaGetLastError();
}

// ---- launch --------------------------------------------------------------------------------------

// XSEP_BWD_KERNEL=staged: the staged kernels (sepconv_bwd_input_staged_kernel.cuh,
// sepconv_bwd_pw_staged_kernel.cuh), each where it applies; XSEP_BWD_KERNEL=wgmma, or unset: the
// same with their GEMMs on wgmma where built (sepconv_bwd_{input,pw}_wgmma.cuh: 16-bit types, sm_90a
// builds with CuTe); `first`: the first kernels (also wherever the staged ones do not apply). The staged
// (or wgmma) input kernel's depthwise channels per CTA: bwd_input_channels (64 or 128; XSEP_BWD_CHANNELS=64
// or 128 forces one); XSEP_BWD_CHANNELS=256: the wgmma input kernel with 256 (where it runs; else 128).
struct StagedChoice {
  bool input = false, pw = false;
  bool pw_resident = false;                    // the resident pw-gradient kernel (pw false then)
  bool input_wgmma = false, pw_wgmma = false;  // the wgmma ones (input / pw true too)
  int input_channels = kBwdInputChannels;      // the input kernel's channels per CTA (Cmid units)
};

// f(std::integral_constant<int, channels>{}) for the input kernel's two channel counts.
template <class F>
auto with_channel_count(int channels, F&& f) {
  return channels == kBwdInputChannelsWide ? f(std::integral_constant<int, kBwdInputChannelsWide>{})
                                           : f(std::integral_constant<int, kBwdInputChannels>{});
}

template <typename T, Math kMath>
StagedChoice choose_staged_kernels(const SepConvBwdParams& p) {
  StagedChoice choice;
  if constexpr (kMath == Math::kTensorCore) {  // 16-bit types, or fp32 on TF32 (exact fp32: the first kernels)
    // Unset: the wgmma kernels where built (sm_90a), else the staged ones where they apply; on an
    // H200 both beat the first kernels 2-3.7x on every Xception layer (gpu-checks.md). And for the
    // pw gradient, before those, the resident kernel where the plan made room for it
    // (plan_resident_pw, after resident_pw_wanted) and its code is built (XSEP_BWD_KERNEL=resident
    // asks for that alone; =wgmma keeps the staged pw kernel on wgmma). XSEP_BWD_KERNEL=first keeps
    // the first kernels, =staged the staged ones without wgmma.
    const std::string forced = kernel_knob(KernelKnob::kBwdKernel);
    const bool wgmma = forced.empty() || forced == "wgmma" || forced == "resident";
    if constexpr (sizeof(T) == 2) {
      choice.pw_resident = p.pw_resident_splits > 0 && (forced.empty() || forced == "resident") &&
                           p.grad_pw != nullptr &&
                           resident_pw_built<T>(resident_pw_half(p.fwd.Cout), p.pw_resident_max_pixels);
    }
    if (forced == "staged" || wgmma) {
      int device = 0, major = 0;
      cudaGetDevice(&device);
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
      constexpr int kVec = 16 / sizeof(T);
      choice.input_channels = bwd_input_channels(p.fwd.Cmid, sizeof(T), major);
      // 256 channels: the wgmma input kernel alone (else 128).
      const bool widest = kernel_knob_is(KernelKnob::kBwdChannels, "256");
      choice.input = (p.grad_x != nullptr || p.grad_dw != nullptr) &&
                     staged_input_applies(with_input_channels(p, choice.input_channels), major, kVec);
      choice.pw =
          !choice.pw_resident && (p.grad_pw != nullptr || p.grad_bias != nullptr) && staged_pw_applies(p, major, kVec);
      if constexpr (sizeof(T) == 2) {
        choice.input_wgmma = wgmma && choice.input && with_channel_count(choice.input_channels, [](auto channels) {
                               return wgmma_input_built<T, decltype(channels)::value>();
                             });
        choice.pw_wgmma = wgmma && choice.pw && wgmma_pw_built<T>();
        if (widest && wgmma && (p.grad_x != nullptr || p.grad_dw != nullptr) &&
            staged_input_applies(with_input_channels(p, kBwdInputChannelsWidest), major, kVec) &&
            wgmma_input_built<T, kBwdInputChannelsWidest>()) {
          choice.input = choice.input_wgmma = true;
          choice.input_channels = kBwdInputChannelsWidest;
        }
      }
      if (!choice.input) choice.input_channels = kBwdInputChannels;  // the first kernel: 64
    }
  }
  return choice;
}

// A staged kernel with its dynamic shared memory (`Shared`, more than 48 KB for fp32).
template <class Shared, class Kernel>
cudaError_t launch_staged(Kernel kernel, dim3 grid, int threads, const SepConvBwdParams& p, cudaStream_t stream) {
  const int bytes = static_cast<int>(sizeof(Shared));
  if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
      e != cudaSuccess)
    return e;
  kernel<<<grid, threads, bytes, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, Math kMath>
LaunchResult launch_sepconv_bwd(const SepConvBwdParams& p, cudaStream_t stream, const char* dtype_name) {
  const SepConvParams& f = p.fwd;
  const bool k3x3 = f.kh == 3 && f.kw == 3;
  const int64_t taps = static_cast<int64_t>(f.kh) * f.kw;
  const StagedChoice staged = choose_staged_kernels<T, kMath>(p);
  // The pw-gradient kernels' split: the resident kernel's own, or the plan's. The workspace holds
  // the larger (backward_workspace_floats); the offsets follow the split that runs.
  const SepConvBwdParams pw = staged.pw_resident ? with_resident_pw(p) : p;
  float* ws_dw = p.workspace;
  float* ws_pw = ws_dw + p.dw_partials * f.Cmid * taps;
  float* ws_bias = ws_pw + static_cast<int64_t>(pw.pw_splits) * f.Cout * f.Cmid;
  float* scratch = ws_bias + static_cast<int64_t>(pw.pw_splits) * f.Cout;

  auto run = [&](auto traits) -> cudaError_t {
    using Traits = decltype(traits);
    if (p.grad_pw != nullptr || p.grad_bias != nullptr) {
      const dim3 grid(p.grad_pw != nullptr ? static_cast<unsigned>((f.Cmid + 63) / 64) : 1u,
                      static_cast<unsigned>((f.Cout + 127) / 128), static_cast<unsigned>(p.pw_splits));
      const cudaError_t launched = [&] {
        if constexpr (kMath == Math::kTensorCore) {  // the staged kernels have no FFMA variant
          if constexpr (sizeof(T) == 2) {
            if (staged.pw_resident) {
              const dim3 resident_grid(static_cast<unsigned>((f.Cmid + kPwResidentChannels - 1) / kPwResidentChannels),
                                       1u, static_cast<unsigned>(pw.pw_splits));
              return launch_resident_pw<T>(pw, resident_pw_half(f.Cout), resident_grid, stream);
            }
            if (staged.pw_wgmma) return launch_wgmma_pw<T>(p, grid, stream);
          }
          if (staged.pw) {
            using Staged = StagedPwTraits<T>;
            return launch_staged<StagedPwShared<Staged>>(sepconv_bwd_pw_staged_kernel<StagedPwTraits<T>>, grid,
                                                         Staged::Tile::kThreads, p, stream);
          }
        }
        sepconv_bwd_pw_kernel<Traits><<<grid, Traits::PwTile::kThreads, 0, stream>>>(p);
        return cudaGetLastError();
      }();
      if (launched != cudaSuccess) return launched;
      if (p.grad_pw != nullptr) {
        const cudaError_t e = reduce_partials(ws_pw, pw.pw_splits, static_cast<int64_t>(f.Cout) * f.Cmid, scratch,
                                              static_cast<T*>(p.grad_pw), stream);
        if (e != cudaSuccess) return e;
      }
      if (p.grad_bias != nullptr) {
        const cudaError_t e =
            reduce_partials(ws_bias, pw.pw_splits, f.Cout, scratch, static_cast<T*>(p.grad_bias), stream);
        if (e != cudaSuccess) return e;
      }
    }
    if (p.grad_x != nullptr || p.grad_dw != nullptr) {
      const SepConvBwdParams q = with_input_channels(p, staged.input_channels);
      const dim3 grid(static_cast<unsigned>(q.dw_partials),
                      static_cast<unsigned>((f.C + q.channels_per_cta - 1) / q.channels_per_cta));
      const cudaError_t launched = [&] {
        if constexpr (kMath == Math::kTensorCore) {
          if (staged.input) {
            // With XSEP_PHASE_CLOCKS=1 its CTAs' phase stamps are kept (phase_clocks.cuh).
            auto launch = [&](unsigned long long* records) -> int {
              SepConvBwdParams r = q;
              r.fwd.phase_clocks = records;
              if constexpr (sizeof(T) == 2) {
                if (staged.input_channels == kBwdInputChannelsWidest)
                  return launch_wgmma_input<T, kBwdInputChannelsWidest>(r, grid, stream);
              }
              return with_channel_count(staged.input_channels, [&](auto channels) {
                constexpr int kChannels = decltype(channels)::value;
                if constexpr (sizeof(T) == 2) {
                  if (staged.input_wgmma) return launch_wgmma_input<T, kChannels>(r, grid, stream);
                }
                using Staged = StagedInputTraits<T, false, kChannels>;
                return launch_staged<StagedInputShared<Staged>>(sepconv_bwd_input_staged_kernel<Staged>, grid,
                                                                Staged::Tile::kThreads, r, stream);
              });
            };
            return static_cast<cudaError_t>(launch_keeping_phase_clocks(
                static_cast<int64_t>(grid.x) * grid.y, "staged input-gradient", stream, launch));
          }
        }
        sepconv_bwd_input_kernel<Traits><<<grid, Traits::InputTile::kThreads, 0, stream>>>(q);
        return cudaGetLastError();
      }();
      if (launched != cudaSuccess) return launched;
      if (p.grad_dw != nullptr) {
        return reduce_partials(ws_dw, p.dw_partials, f.Cmid * taps, scratch, static_cast<T*>(p.grad_dw), stream);
      }
    }
    return cudaSuccess;
  };
  cudaError_t e;
  if (f.channels_last) {
    e = k3x3 ? run(BwdKernelTraits<T, kMath, true, 3, 3>{}) : run(BwdKernelTraits<T, kMath, true, 0, 0>{});
  } else {
    e = k3x3 ? run(BwdKernelTraits<T, kMath, false, 3, 3>{}) : run(BwdKernelTraits<T, kMath, false, 0, 0>{});
  }
  static thread_local char name[192];
  snprintf(name, sizeof(name), "backward %s %s %s %s (tiles %dx%d, pw splits %d)%s%s%s", dtype_name,
           kMath == Math::kTensorCore ? (std::is_same_v<T, float> ? "tf32-mma" : "mma") : "ffma",
           f.channels_last ? "channels_last" : "nchw", k3x3 ? "3x3" : "general-kernel", p.tiles.tih, p.tiles.tiw,
           pw.pw_splits,
           staged.input_wgmma ? " wgmma-input"
           : staged.input     ? " staged-input"
                              : "",
           staged.pw_resident && pw.pw_resident_max_pixels == kPwResidentTwoCtaPixels
               ? " resident-pw (512 pixels, 2 CTAs/SM)"
           : staged.pw_resident ? " resident-pw"
           : staged.pw_wgmma    ? " wgmma-pw"
           : staged.pw          ? " staged-pw"
                                : "",
           staged.input_channels == kBwdInputChannelsWidest ? " (input: 256 channels per CTA)"
           : staged.input_channels == kBwdInputChannelsWide ? " (input: 128 channels per CTA)"
                                                            : "");
  return {static_cast<int>(e), name};
}

}  // namespace xsep
