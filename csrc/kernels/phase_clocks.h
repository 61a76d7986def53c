// Measurement only: where a CTA of an instrumented kernel (the wgmma forward, the staged
// input-gradient kernel of the backward) spends its time, phase by phase, read from the SM's cycle
// counter by the CTA itself (XSEP_PHASE_CLOCKS=1; tools/phase_clocks.py prints them). Timings from
// outside (a kernel's duration, Nsight Compute's samples) say how long and where warps wait, not
// which of a CTA's phases (tap table, depthwise, GEMM, epilogue) the time belongs to; the CTA's own
// clock does, for every layer in one short run, with the output unchanged.
//
// This file: a CTA's record (its slots) and the host's copy of the recorded launches. Plain C++
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
// two-CTAs-per-SM builds have none to spare), and the reader subtracts.
enum PhaseClockSlot : int {
  kClockSm,       // the SM it ran on (%smid)
  kClockStartNs,  // the global timer (ns, one clock for all SMs) at its start ...
  kClockEndNs,    // ... and at its end: which CTAs shared an SM, and when
  kClockStart,    // the SM's cycle counter (clock64) at its start,
  kClockEnd,      // and at its end
  kClockCount,    // the kernel's: how many of its repeated phases ran (the forward: output-channel tiles)
  kClockStamps,   // the cycle counter at the end of each phase, in the kernel's order (below)
};
constexpr int kClockMaxStamps = 34;
constexpr int kPhaseClockSlots = kClockStamps + kClockMaxStamps;

// The wgmma forward's stamps: the tap table, Z in shared memory, then per output-channel tile its K
// loop and its stores (the first 16 tiles, 2048 channels, fill the stamps; later tiles show only in
// the end stamp).
enum FwdClockStamp : int { kFwdTableDone, kFwdDepthwiseDone, kFwdFirstTile };
// The staged input-gradient kernel's: tables and weights, dZ (the GEMM), dZ times the activation's
// derivative (none: at once), grad_x, grad_dw's partial sums.
enum BwdInputClockStamp : int { kBwdTablesDone, kBwdDzDone, kBwdActivationDone, kBwdGradXDone, kBwdGradDwDone };
// The overlapped forward's (sepconv_fwd_overlap_kernel.cuh) are not clock readings but sums of
// cycles over the CTA's tiles, by role: the producers' depthwise passes (their first thread's:
// after the wait for a free Z buffer to its stores fenced), their waits for a free buffer (with the
// tap table), the consumer warpgroup's GEMM and stores (its first thread's: after the wait for a
// full buffer to the tile's last stores), its waits for a full buffer; and, in the pair build, the
// part of the GEMM and stores that its first thread spent waiting for the peer CTA to release a ring
// slot (0 in the one-CTA build). Count: the CTA's work items (pixel tile, or pair of them, and
// output-channel part).
enum OverlapClockSum : int {
  kOverlapDepthwise,
  kOverlapBufferWait,
  kOverlapGemmStores,
  kOverlapZWait,
  kOverlapPeerWait,
};

// The records of the launches that kept them (XSEP_PHASE_CLOCKS=1) since the last take: for each,
// the kernel's name and its CTAs' slots, record after record (only the CTAs that wrote one).
class PhaseClockLog {
 public:
  static PhaseClockLog& instance() {
    static PhaseClockLog log;
    return log;
  }
  void keep(std::string kernel, std::vector<uint64_t> slots) {
    std::lock_guard<std::mutex> lock(mutex_);
    launches_.emplace_back(std::move(kernel), std::move(slots));
  }
  std::vector<std::pair<std::string, std::vector<uint64_t>>> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(launches_, {});
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::vector<uint64_t>>> launches_;
};

}  // namespace xsep
