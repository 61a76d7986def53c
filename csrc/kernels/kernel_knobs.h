// The measurement knobs of the kernel choice (XSEP_FWD_KERNEL, XSEP_FWD_PIXELS, XSEP_FWD_STAGES,
// XSEP_FWD_WARPGROUPS, XSEP_FWD_PREFETCH, XSEP_FWD_CTAS, XSEP_FWD_DW, XSEP_FWD_PAIR, XSEP_BWD_KERNEL, XSEP_BWD_CHANNELS,
// XSEP_BWD_PW_PIXELS), the autotuner (XSEP_AUTOTUNE) and
// of the kernels' phase clocks (XSEP_PHASE_CLOCKS, phase_clocks.h): the environment's
// value, unless the process has set its own. `xsep bench
// --variants` sets them between calls (through xsep._C), so one process times several kernels
// against one cuDNN baseline. Plain C++ (host side of the kernel library; no PyTorch).
#pragma once

#include <cstdlib>
#include <mutex>
#include <string>

namespace xsep {

enum class KernelKnob {
  kFwdKernel,
  kFwdPixels,
  kFwdStages,
  kFwdWarpgroups,
  kFwdPrefetch,
  kFwdCtas,
  kFwdDw,
  kFwdPair,
  kPhaseClocks,
  kBwdKernel,
  kBwdChannels,
  kBwdPwPixels,
  kAutotune,
  kCount
};

inline const char* kernel_knob_env_name(KernelKnob knob) {
  switch (knob) {
    case KernelKnob::kFwdKernel:
      return "XSEP_FWD_KERNEL";
    case KernelKnob::kFwdPixels:
      return "XSEP_FWD_PIXELS";
    case KernelKnob::kFwdStages:
      return "XSEP_FWD_STAGES";
    case KernelKnob::kFwdWarpgroups:
      return "XSEP_FWD_WARPGROUPS";
    case KernelKnob::kFwdPrefetch:
      return "XSEP_FWD_PREFETCH";
    case KernelKnob::kFwdCtas:
      return "XSEP_FWD_CTAS";
    case KernelKnob::kFwdDw:
      return "XSEP_FWD_DW";
    case KernelKnob::kFwdPair:
      return "XSEP_FWD_PAIR";
    case KernelKnob::kPhaseClocks:
      return "XSEP_PHASE_CLOCKS";
    case KernelKnob::kBwdKernel:
      return "XSEP_BWD_KERNEL";
    case KernelKnob::kBwdChannels:
      return "XSEP_BWD_CHANNELS";
    case KernelKnob::kBwdPwPixels:
      return "XSEP_BWD_PW_PIXELS";
    case KernelKnob::kAutotune:
      return "XSEP_AUTOTUNE";
    default:
      return "";
  }
}

// Values that win over the process's on one host thread while a ScopedKnobOverrides lives there:
// the autotuner (csrc/cuda/autotune.cpp) launches each candidate kernel this way,
// without touching what other threads' calls see.
struct KnobOverrides {
  bool set[static_cast<int>(KernelKnob::kCount)] = {};
  std::string values[static_cast<int>(KernelKnob::kCount)];
};
inline thread_local const KnobOverrides* thread_knob_overrides = nullptr;

class ScopedKnobOverrides {
 public:
  explicit ScopedKnobOverrides(const KnobOverrides& overrides) : previous_(thread_knob_overrides) {
    thread_knob_overrides = &overrides;
  }
  ~ScopedKnobOverrides() { thread_knob_overrides = previous_; }
  ScopedKnobOverrides(const ScopedKnobOverrides&) = delete;
  ScopedKnobOverrides& operator=(const ScopedKnobOverrides&) = delete;

 private:
  const KnobOverrides* previous_;
};

// The knobs' values: each read from the environment once, then replaced by set_kernel_knob.
class KernelKnobs {
 public:
  static KernelKnobs& instance() {
    static KernelKnobs knobs;
    return knobs;
  }
  // "" when unset. This thread's override, if any, first.
  std::string get(KernelKnob knob) {
    if (const KnobOverrides* o = thread_knob_overrides; o != nullptr && o->set[static_cast<int>(knob)])
      return o->values[static_cast<int>(knob)];
    std::lock_guard<std::mutex> lock(mutex_);
    return values_[static_cast<int>(knob)];
  }
  // Whether the process sets a knob that picks a kernel or a build, or the phase clocks (each such
  // launch synchronises): then the autotuner stands aside, so a measurement times what it asked for.
  bool any_kernel_knob_set() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int i = 0; i < static_cast<int>(KernelKnob::kCount); ++i) {
      const auto knob = static_cast<KernelKnob>(i);
      if (knob == KernelKnob::kAutotune || values_[i].empty()) continue;
      if (knob == KernelKnob::kPhaseClocks && values_[i] == "0") continue;
      return true;
    }
    return false;
  }
  void set(KernelKnob knob, const std::string& value) {
    std::lock_guard<std::mutex> lock(mutex_);
    values_[static_cast<int>(knob)] = value;
  }

 private:
  KernelKnobs() {
    for (int i = 0; i < static_cast<int>(KernelKnob::kCount); ++i) {
      const char* env = std::getenv(kernel_knob_env_name(static_cast<KernelKnob>(i)));
      values_[i] = env != nullptr ? env : "";
    }
  }
  std::mutex mutex_;
  std::string values_[static_cast<int>(KernelKnob::kCount)];
};

inline std::string kernel_knob(KernelKnob knob) { return KernelKnobs::instance().get(knob); }
inline bool kernel_knob_is(KernelKnob knob, const char* value) { return kernel_knob(knob) == value; }

// The knob an environment-variable name (the Python side's spelling) names; false for none.
inline bool kernel_knob_by_name(const std::string& env_name, KernelKnob* knob) {
  for (int i = 0; i < static_cast<int>(KernelKnob::kCount); ++i) {
    if (env_name == kernel_knob_env_name(static_cast<KernelKnob>(i))) {
      *knob = static_cast<KernelKnob>(i);
      return true;
    }
  }
  return false;
}

}  // namespace xsep
