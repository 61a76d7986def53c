// The device side of phase_clocks.h: a CTA stamps its phases (thread 0, on the SM's cycle counter),
// and the host launch that gives a kernel a buffer for the records and keeps them. Measurement
// only: without XSEP_PHASE_CLOCKS=1, p.phase_clocks is null and a stamp is one untaken branch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "kernel_knobs.h"
#include "phase_clocks.h"

#if defined(XSEP_HOST_EMULATION)
#include <chrono>
#endif

namespace xsep {

// The SM's cycle counter, the global timer (ns) and the SM's index; in the host emulation a steady
// clock's nanoseconds stand for both clocks, and every CTA runs on "SM 0".
__device__ __forceinline__ uint64_t sm_cycles() {
#if defined(XSEP_HOST_EMULATION)
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#else
  return static_cast<uint64_t>(clock64());
#endif
}
__device__ __forceinline__ uint64_t global_ns() {
#if defined(XSEP_HOST_EMULATION)
  return sm_cycles();
#else
  uint64_t ns;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(ns));
  return ns;
#endif
}
__device__ __forceinline__ uint32_t sm_index() {
#if defined(XSEP_HOST_EMULATION)
  return 0;
#else
  uint32_t sm;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
  return sm;
#endif
}

// Thread 0's stamps of its CTA's phases into its record (phase_clocks.h), each one store of the
// clock there and then; a no-op in other threads and where `records` (p.phase_clocks, a kernel
// parameter: nothing held in registers between stamps) is null.
__device__ __forceinline__ unsigned long long* phase_record(unsigned long long* records) {
  if (records == nullptr || threadIdx.x != 0) return nullptr;
  return records + (static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x) * static_cast<int64_t>(kPhaseClockSlots);
}
__device__ __forceinline__ void stamp_start(unsigned long long* records) {
  if (unsigned long long* r = phase_record(records)) {
    r[kClockSm] = sm_index();
    r[kClockStartNs] = global_ns();
    r[kClockStart] = sm_cycles();
  }
}
// The end of the kernel's phase `stamp` (its enum in phase_clocks.h; past kClockMaxStamps: none).
__device__ __forceinline__ void stamp(unsigned long long* records, int stamp) {
  unsigned long long* r = phase_record(records);
  if (r != nullptr && stamp < kClockMaxStamps) r[kClockStamps + stamp] = sm_cycles();
}
// The kernel's count of its repeated phases (kClockCount).
__device__ __forceinline__ void stamp_count(unsigned long long* records, int count) {
  if (unsigned long long* r = phase_record(records)) r[kClockCount] = count;
}
__device__ __forceinline__ void stamp_end(unsigned long long* records) {
  if (unsigned long long* r = phase_record(records)) {
    r[kClockEnd] = sm_cycles();
    r[kClockEndNs] = global_ns();
  }
}

// launch(records) (a kernel over at most max_ctas CTAs, given `records` as its p.phase_clocks;
// returns a cudaError_t as int): records is null unless XSEP_PHASE_CLOCKS=1; then it is a zeroed
// buffer for max_ctas records, after which the host waits for the kernel and keeps the records of
// the CTAs that wrote one (PhaseClockLog, under `kernel`). The wait and the copy cost the call its
// asynchrony: for measurement only.
template <class Launch>
int launch_keeping_phase_clocks(int64_t max_ctas, const char* kernel, cudaStream_t stream, Launch&& launch) {
  if (!kernel_knob_is(KernelKnob::kPhaseClocks, "1")) return launch(nullptr);
  const size_t bytes = static_cast<size_t>(max_ctas) * kPhaseClockSlots * sizeof(uint64_t);
  unsigned long long* records = nullptr;
  if (const cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&records), bytes, stream); e != cudaSuccess)
    return static_cast<int>(e);
  std::vector<uint64_t> host(static_cast<size_t>(max_ctas) * kPhaseClockSlots);
  int error = static_cast<int>(cudaMemsetAsync(records, 0, bytes, stream));
  if (error == cudaSuccess) error = launch(records);
  if (error == cudaSuccess)
    error = static_cast<int>(cudaMemcpyAsync(host.data(), records, bytes, cudaMemcpyDeviceToHost, stream));
  if (error == cudaSuccess) error = static_cast<int>(cudaStreamSynchronize(stream));
  cudaFreeAsync(records, stream);
  if (error != cudaSuccess) return error;
  std::vector<uint64_t> written;  // a CTA that ran wrote its end time (never 0)
  for (int64_t c = 0; c < max_ctas; ++c) {
    const uint64_t* r = host.data() + c * kPhaseClockSlots;
    if (r[kClockEndNs] != 0) written.insert(written.end(), r, r + kPhaseClockSlots);
  }
  PhaseClockLog::instance().keep(kernel, std::move(written));
  return cudaSuccess;
}

}  // namespace xsep
