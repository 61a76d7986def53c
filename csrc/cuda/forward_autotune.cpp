#include "forward_autotune.h"

#include "forward_autotune_pick.h"

#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace xsep::cuda {
namespace {

// The candidates: the default choice first (so a tie keeps it), then each forward kernel and build
// that `xsep bench --variants` measures (xsep/bench/variants.py). Those that do not apply to a
// shape fall back to a launch already timed, and are skipped.
std::vector<std::unique_ptr<KnobOverrides>> make_candidates() {
  using K = KernelKnob;
  const std::vector<std::vector<std::pair<K, const char*>>> sets = {
      {},
      {{K::kFwdKernel, "resident"}},
      {{K::kFwdKernel, "resident"}, {K::kFwdPixels, "64"}},
      {{K::kFwdKernel, "halo"}},
      {{K::kFwdKernel, "wgmma"}},
      {{K::kFwdKernel, "wgmma"}, {K::kFwdPixels, "64"}},
      {{K::kFwdKernel, "wgmma"}, {K::kFwdCtas, "1"}},
      {{K::kFwdKernel, "wgmma"}, {K::kFwdCtas, "2"}},
      {{K::kFwdKernel, "wgmma"}, {K::kFwdPrefetch, "1"}},
      {{K::kFwdKernel, "wgmma"}, {K::kFwdWarpgroups, "4"}},
      {{K::kFwdKernel, "wgmma"}, {K::kFwdStages, "8"}},
      {{K::kFwdKernel, "wgmma"}, {K::kFwdDw, "staged"}},
      {{K::kFwdKernel, "streamed"}},
      {{K::kFwdKernel, "overlap"}},
      {{K::kFwdKernel, "overlap"}, {K::kFwdPair, "weights"}},
      {{K::kFwdKernel, "overlap"}, {K::kFwdPair, "z"}},
  };
  std::vector<std::unique_ptr<KnobOverrides>> candidates;
  for (const auto& set : sets) {
    auto o = std::make_unique<KnobOverrides>();
    // Every kernel-picking knob in force, unset unless the candidate sets it: a candidate is the
    // same launch whatever the process's knobs say (the autotuner runs only where none is set).
    for (int i = 0; i < static_cast<int>(K::kCount); ++i) {
      if (static_cast<K>(i) == K::kAutotune) continue;
      o->set[i] = true;
    }
    for (const auto& [knob, value] : set) o->values[static_cast<int>(knob)] = value;
    candidates.push_back(std::move(o));
  }
  return candidates;
}

const std::vector<std::unique_ptr<KnobOverrides>>& candidates() {
  static const std::vector<std::unique_ptr<KnobOverrides>> all = make_candidates();
  return all;
}

// Launches per timing, after one untimed launch (a kernel's first launch loads its module and sets
// its shared-memory size; that launch also reports the variant that serves the candidate).
constexpr int kTimedLaunches = 3;

struct Choice {
  const KnobOverrides* knobs;
  std::string summary;
};

}  // namespace

bool forward_autotune_wanted() {
  return kernel_knob(KernelKnob::kAutotune) == "1" && !KernelKnobs::instance().any_kernel_knob_set();
}

std::string forward_autotune_key(const SepConvParams& p, DType dtype, int device) {
  char key[512];
  std::snprintf(key, sizeof(key),
                "d%d t%d n%d c%d h%d w%d m%d co%d k%dx%d s%dx%d p%dx%d dl%dx%d o%dx%d "
                "xs%lld,%lld,%lld,%lld ys%lld,%lld,%lld,%lld cl%d tf%d a%d b%d xa%d ba%d",
                device, static_cast<int>(dtype), p.N, p.C, p.H, p.W, p.M, p.Cout, p.kh, p.kw, p.sh, p.sw, p.pt, p.pl,
                p.dh, p.dw, p.Ho, p.Wo, static_cast<long long>(p.x_stride[0]), static_cast<long long>(p.x_stride[1]),
                static_cast<long long>(p.x_stride[2]), static_cast<long long>(p.x_stride[3]),
                static_cast<long long>(p.y_stride[0]), static_cast<long long>(p.y_stride[1]),
                static_cast<long long>(p.y_stride[2]), static_cast<long long>(p.y_stride[3]),
                static_cast<int>(p.channels_last), static_cast<int>(p.allow_tf32), static_cast<int>(p.activation),
                static_cast<int>(p.bias != nullptr),
                // the kernels' vector loads ask for aligned starts (a view's may not be)
                static_cast<int>(reinterpret_cast<uintptr_t>(p.x) % 16),
                static_cast<int>(reinterpret_cast<uintptr_t>(p.bias) % 16));
  return key;
}

AutotunedForward autotuned_forward(const std::string& key, cudaStream_t stream,
                                   const std::function<LaunchResult()>& launch) {
  static std::mutex mutex;
  static std::map<std::string, Choice> cache;
  // Held while timing: a second thread's first call of the same shape waits for the answer rather
  // than timing the candidates again beside it (which would skew both).
  std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = cache.find(key); it != cache.end()) return {it->second.knobs, it->second.summary};
  // Timing synchronises, which a stream capturing a CUDA graph may not: the default, uncached.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone) {
    cudaGetLastError();
    return {nullptr, ""};
  }

  cudaEvent_t start = nullptr, stop = nullptr;
  if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&stop) != cudaSuccess) {
    if (start != nullptr) cudaEventDestroy(start);
    cudaGetLastError();
    return {nullptr, ""};  // the default, untimed
  }
  const auto& all = candidates();
  // Each candidate's launches with its knobs in force on this thread. A launch that fails (none
  // should: a knob only asks) or throws (no memory for its workspace) makes it no choice.
  const auto first_launch = [&](int i) -> std::optional<std::string> {
    const ScopedKnobOverrides scope(*all[i]);
    try {
      const LaunchResult r = launch();
      if (r.error == cudaSuccess) return std::string(r.variant != nullptr ? r.variant : "");
    } catch (const std::exception&) {
    }
    cudaGetLastError();
    return std::nullopt;
  };
  const auto time = [&](int i) -> std::optional<float> {
    const ScopedKnobOverrides scope(*all[i]);
    float ms = 0.f;
    try {
      bool ok = cudaEventRecord(start, stream) == cudaSuccess;
      for (int k = 0; k < kTimedLaunches && ok; ++k) ok = launch().error == cudaSuccess;
      ok = ok && cudaEventRecord(stop, stream) == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess;
      if (ok && cudaEventElapsedTime(&ms, start, stop) == cudaSuccess) return ms / kTimedLaunches;
    } catch (const std::exception&) {
    }
    cudaGetLastError();
    return std::nullopt;
  };
  const AutotunePick pick = pick_fastest(static_cast<int>(all.size()), first_launch, time);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (pick.best < 0) return {nullptr, ""};
  char summary[160];
  std::snprintf(summary, sizeof(summary), "autotuned: fastest of %d launches timed, %.3f ms (the default %.3f ms)",
                pick.timed, pick.best_ms, pick.default_ms);
  const KnobOverrides* best = all[pick.best].get();
  cache[key] = Choice{best, summary};
  return {best, summary};
}

}  // namespace xsep::cuda
