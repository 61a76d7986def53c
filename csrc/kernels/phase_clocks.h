// Measurement only: where a CTA of the wgmma forward spends its time, phase by phase, read from the
// SM's cycle counter by the CTA itself (XSEP_FWD_CLOCKS=1; tools/forward_clocks.py prints them).
// Timings from outside (a kernel's duration, Nsight Compute's samples) say how long and where warps
// wait, not which of a CTA's phases (tap table, depthwise, GEMM, epilogue) the time belongs to; the
// CTA's own clock does, for every layer in one short run, with the output unchanged.
//
// This file: a CTA's record (its slots) and the host's copy of the last recorded launch. Plain C++
// (xsep.cpp hands the records to Python); the device side is phase_clocks.cuh.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace xsep {

// A CTA's record: kPhaseClockSlots 64-bit values, at blockIdx.y * gridDim.x + blockIdx.x. Raw
// stamps, not durations: a stamp is one store, with nothing kept in registers between stamps (the
// two-CTAs-per-SM builds have none to spare), and the reader (tools/forward_clocks.py) subtracts.
enum PhaseClockSlot : int {
  kClockSm,             // the SM it ran on (%smid)
  kClockStartNs,        // the global timer (ns, one clock for all SMs) at its start ...
  kClockEndNs,          // ... and at its end: which CTAs shared an SM, and when
  kClockStart,          // the SM's cycle counter (clock64) at its start,
  kClockTableDone,      // after the tap table (the ring's first copies start before it),
  kClockDepthwiseDone,  // after Z is in shared memory (a barrier: the slowest thread's),
  kClockEnd,            // at its end
  kClockTiles,          // its output-channel tiles; then for each of the first kClockMaxTiles:
  kClockTileStamps,     // the cycle counter after its K loop (wgmma included), then after its stores
};
constexpr int kClockMaxTiles = 16;  // 2048 output channels; later tiles show only in the end stamp
constexpr int kPhaseClockSlots = kClockTileStamps + 2 * kClockMaxTiles;

// The records of the last launch that kept them (the forward with XSEP_FWD_CLOCKS=1): the
// kernel's name and the CTAs' slots, record after record (only the CTAs that wrote one).
class PhaseClockLog {
 public:
  static PhaseClockLog& instance() {
    static PhaseClockLog log;
    return log;
  }
  void keep(std::string kernel, std::vector<uint64_t> slots) {
    std::lock_guard<std::mutex> lock(mutex_);
    kernel_ = std::move(kernel);
    slots_ = std::move(slots);
  }
  // The kept records, which are then dropped (kernel "" and no slots where none were kept since).
  std::pair<std::string, std::vector<uint64_t>> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::pair<std::string, std::vector<uint64_t>> kept{std::move(kernel_), std::move(slots_)};
    kernel_.clear();
    slots_.clear();
    return kept;
  }

 private:
  std::mutex mutex_;
  std::string kernel_;
  std::vector<uint64_t> slots_;
};

}  // namespace xsep
