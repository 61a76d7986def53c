// The device side of phase_clocks.h: a CTA stamps its phases (thread 0, on the SM's cycle counter),
// and the host launch that gives a kernel a buffer for the records and keeps them. Measurement
// only: without XSEP_FWD_CLOCKS=1, p.phase_clocks is null and a stamp is one untaken branch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernel_knobs.h"
#include "phase_clocks.h"
#include "sepconv_params.h"

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
// clock there and then; a no-op in other threads and where p.phase_clocks is null (the pointer is a
// kernel parameter: nothing held in registers between stamps).
__device__ __forceinline__ unsigned long long* phase_record(const SepConvParams& p) {
  if (p.phase_clocks == nullptr || threadIdx.x != 0) return nullptr;
  return p.phase_clocks +
         (static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x) * static_cast<int64_t>(kPhaseClockSlots);
}
__device__ __forceinline__ void stamp_start(const SepConvParams& p) {
  if (unsigned long long* r = phase_record(p)) {
    r[kClockSm] = sm_index();
    r[kClockStartNs] = global_ns();
    r[kClockStart] = sm_cycles();
  }
}
// slot: kClockTableDone or kClockDepthwiseDone.
__device__ __forceinline__ void stamp(const SepConvParams& p, PhaseClockSlot slot) {
  if (unsigned long long* r = phase_record(p)) r[slot] = sm_cycles();
}
// Tile `tile`'s K loop done (stores = false) or its stores issued (true); tiles past the first
// kClockMaxTiles only count.
__device__ __forceinline__ void stamp_tile(const SepConvParams& p, int tile, bool stores) {
  unsigned long long* r = phase_record(p);
  if (r == nullptr) return;
  if (tile < kClockMaxTiles) r[kClockTileStamps + 2 * tile + (stores ? 1 : 0)] = sm_cycles();
  if (stores) r[kClockTiles] = tile + 1;
}
__device__ __forceinline__ void stamp_end(const SepConvParams& p) {
  if (unsigned long long* r = phase_record(p)) {
    r[kClockEnd] = sm_cycles();
    r[kClockEndNs] = global_ns();
  }
}
// Whether stamps are kept (the kernel then adds a barrier before the depthwise stamp, so that it
// times the slowest thread).
__device__ __forceinline__ bool stamping(const SepConvParams& p) { return p.phase_clocks != nullptr; }

// launch(p) (which returns a cudaError_t as int), as is unless XSEP_FWD_CLOCKS=1; then with
// p.phase_clocks pointing at a zeroed buffer for up to max_ctas records, after which the host waits
// for the kernel and keeps the records of the CTAs that wrote one (PhaseClockLog, under `kernel`).
// The wait and the copy cost the call its asynchrony: for measurement only.
template <class Launch>
int launch_keeping_phase_clocks(const SepConvParams& p, int64_t max_ctas, const char* kernel, cudaStream_t stream,
                                Launch&& launch) {
  if (!kernel_knob_is(KernelKnob::kFwdClocks, "1")) return launch(p);
  const size_t bytes = static_cast<size_t>(max_ctas) * kPhaseClockSlots * sizeof(uint64_t);
  unsigned long long* records = nullptr;
  if (const cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&records), bytes, stream); e != cudaSuccess)
    return static_cast<int>(e);
  SepConvParams with_records = p;
  with_records.phase_clocks = records;
  std::vector<uint64_t> host(static_cast<size_t>(max_ctas) * kPhaseClockSlots);
  int error = static_cast<int>(cudaMemsetAsync(records, 0, bytes, stream));
  if (error == cudaSuccess) error = launch(with_records);
  if (error == cudaSuccess) error = static_cast<int>(cudaMemcpyAsync(host.data(), records, bytes, cudaMemcpyDeviceToHost, stream));
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
