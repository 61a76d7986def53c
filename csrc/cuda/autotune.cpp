#include "autotune.h"

#include <ATen/Context.h>

#include "autotune_pick.h"

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

using KnobSet = std::vector<std::pair<KernelKnob, const char*>>;

// The forward's candidates: the default choice first (so a tie keeps it), then each forward kernel and
// build that `xsep bench --variants` measures (xsep/bench/variants.py). Those that do not apply to a
// shape fall back to a launch already timed, and are skipped.
std::vector<KnobSet> forward_sets() {
  using K = KernelKnob;
  return {
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
}

// The backward's: the default first, then the input-gradient kernel's channels per CTA (64, 128,
// 256) crossed with the resident pw-gradient kernel's split (512 pixels and two CTAs per SM, or
// 1024 and one), the two knobs whose defaults are rules from one GPU's measurements (sepconv_bwd.h),
// then the kernels before the resident pw one (wgmma, and staged without wgmma: the Ampere ones) at
// 64 and 128 channels. Not the first kernels (XSEP_BWD_KERNEL=first): 2-4x slower wherever the
// others apply, and where they do not the others fall back to them anyway.
std::vector<KnobSet> backward_sets() {
  using K = KernelKnob;
  std::vector<KnobSet> sets = {{}};
  for (const char* channels : {"", "64", "128", "256"})
    for (const char* pixels : {"", "512", "1024"}) {
      KnobSet set;
      if (*channels != '\0') set.push_back({K::kBwdChannels, channels});
      if (*pixels != '\0') set.push_back({K::kBwdPwPixels, pixels});
      if (!set.empty()) sets.push_back(set);
    }
  for (const char* kernel : {"wgmma", "staged"})
    for (const char* channels : {"64", "128"}) sets.push_back({{K::kBwdKernel, kernel}, {K::kBwdChannels, channels}});
  return sets;
}

std::vector<std::unique_ptr<KnobOverrides>> make_candidates(const std::vector<KnobSet>& sets) {
  std::vector<std::unique_ptr<KnobOverrides>> candidates;
  for (const auto& set : sets) {
    auto o = std::make_unique<KnobOverrides>();
    // Every kernel-picking knob in force, unset unless the candidate sets it: a candidate is the
    // same launch whatever the process's knobs say (the autotuner runs only where none is set).
    for (int i = 0; i < static_cast<int>(KernelKnob::kCount); ++i) {
      if (static_cast<KernelKnob>(i) == KernelKnob::kAutotune) continue;
      o->set[i] = true;
    }
    for (const auto& [knob, value] : set) o->values[static_cast<int>(knob)] = value;
    candidates.push_back(std::move(o));
  }
  return candidates;
}

const std::vector<std::unique_ptr<KnobOverrides>>& candidates(TunedOp op) {
  static const std::vector<std::unique_ptr<KnobOverrides>> forward = make_candidates(forward_sets());
  static const std::vector<std::unique_ptr<KnobOverrides>> backward = make_candidates(backward_sets());
  return op == TunedOp::kForward ? forward : backward;
}

// Launches per timing, after one untimed launch (a kernel's first launch loads its module and sets
// its shared-memory size; that launch also reports the variant that serves the candidate).
constexpr int kTimedLaunches = 3;

struct Choice {
  const KnobOverrides* knobs;
  std::string summary;
};

}  // namespace

bool autotune_wanted() {
  return kernel_knob(KernelKnob::kAutotune) == "1" && !KernelKnobs::instance().any_kernel_knob_set() &&
         !at::globalContext().deterministicAlgorithms();
}

std::string autotune_key(const SepConvParams& p, DType dtype, int device) {
  char key[512];
  std::snprintf(key, sizeof(key),
                "d%d t%d n%d c%d h%d w%d m%d co%d k%dx%d s%dx%d p%dx%d dl%dx%d o%dx%d "
                "xs%lld,%lld,%lld,%lld ys%lld,%lld,%lld,%lld cl%d tf%d a%d b%d xa%d ya%d ba%d",
                device, static_cast<int>(dtype), p.N, p.C, p.H, p.W, p.M, p.Cout, p.kh, p.kw, p.sh, p.sw, p.pt, p.pl,
                p.dh, p.dw, p.Ho, p.Wo, static_cast<long long>(p.x_stride[0]), static_cast<long long>(p.x_stride[1]),
                static_cast<long long>(p.x_stride[2]), static_cast<long long>(p.x_stride[3]),
                static_cast<long long>(p.y_stride[0]), static_cast<long long>(p.y_stride[1]),
                static_cast<long long>(p.y_stride[2]), static_cast<long long>(p.y_stride[3]),
                static_cast<int>(p.channels_last), static_cast<int>(p.allow_tf32), static_cast<int>(p.activation),
                static_cast<int>(p.bias != nullptr),
                // the kernels' vector loads ask for aligned starts (a view's may not be)
                static_cast<int>(reinterpret_cast<uintptr_t>(p.x) % 16),
                static_cast<int>(reinterpret_cast<uintptr_t>(p.y) % 16),
                static_cast<int>(reinterpret_cast<uintptr_t>(p.bias) % 16));
  return key;
}

Autotuned autotuned(TunedOp op, const std::string& key, cudaStream_t stream,
                    const std::function<LaunchResult()>& launch) {
  static std::mutex mutex;
  static std::map<std::string, Choice> cache[2];  // by op
  // Held while timing: another thread's first call (of this shape, or of any: the forward's and the
  // backward's, which autograd runs on a thread of its own) waits rather than timing beside it, which
  // would skew both.
  std::lock_guard<std::mutex> lock(mutex);
  auto& chosen = cache[op == TunedOp::kForward ? 0 : 1];
  if (const auto it = chosen.find(key); it != chosen.end()) return {it->second.knobs, it->second.summary};
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
  const auto& all = candidates(op);
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
  chosen[key] = Choice{best, summary};
  return {best, summary};
}

}  // namespace xsep::cuda
