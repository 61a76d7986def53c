// Hopper's bulk copy (cp.async.bulk: the TMA unit without a tensor map) of a contiguous global
// buffer into shared memory, and the transaction barrier (mbarrier) that says when it landed, for
// the wgmma forward's weight ring (sepconv_fwd_wgmma_kernel.cuh). In the host emulation, stand-ins
// (tests/cpp/cuda_host_emulation.h).
//
// Why not cp.async: its writes go through the generic proxy, so wgmma (the async proxy) may read
// them only after a fence.proxy.async by each writing thread, and that fence waits for every copy
// the thread still has in flight: a ring fed by cp.async drains at every step. The bulk copy writes
// through the async proxy itself; no fence, and one thread moves a whole chunk.
//
// sm_90 only (XSEP_WGMMA_DEVICE_CODE); elsewhere these are never called (the stub kernels).
#pragma once

#include <cstdint>

#include "wgmma_common.cuh"

namespace xsep {

#if defined(XSEP_HOST_EMULATION)
void emulated_mbarrier_init(uint64_t* bar, int arrivals);
void emulated_mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes);
void emulated_mbarrier_arrive(uint64_t* bar);
void emulated_named_barrier_sync(int id, int threads);
void emulated_mbarrier_wait_parity(uint64_t* bar, uint32_t parity);
bool emulated_mbarrier_test_parity(uint64_t* bar, uint32_t parity);
void emulated_bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes, uint64_t* bar);
#endif

#if defined(XSEP_WGMMA_DEVICE_CODE) && defined(__CUDA_ARCH__)
__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
#endif

// A barrier whose phase completes after `arrivals` arrivals and the bytes they announced. Then a
// fence, so the async proxy (the bulk copies' completion) sees the initialised barrier.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, int arrivals) {
#if defined(XSEP_HOST_EMULATION)
  emulated_mbarrier_init(bar, arrivals);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(arrivals) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// One arrival that also announces `bytes` still to land in the current phase.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if defined(XSEP_HOST_EMULATION)
  emulated_mbarrier_arrive_expect_tx(bar, bytes);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
               : "memory");
#endif
}

// One arrival (release: this thread's prior writes are seen by whoever waits for the phase).
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#if defined(XSEP_HOST_EMULATION)
  emulated_mbarrier_arrive(bar);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
#endif
}

// A barrier among `threads` threads of the CTA (whole warps), numbered `id` (1..15; 0 is
// __syncthreads'): the warp-specialised kernels synchronise one role's warps with it.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
#if defined(XSEP_HOST_EMULATION)
  emulated_named_barrier_sync(id, threads);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
#endif
}

// Waits until the phase of parity `parity` has completed (the barrier's phases alternate 0, 1, ...).
__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, uint32_t parity) {
#if defined(XSEP_HOST_EMULATION)
  emulated_mbarrier_wait_parity(bar, parity);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(shared_address(bar)),
      "r"(parity)
      : "memory");
#endif
}

// Whether the phase of parity `parity` has completed, without waiting (mbarrier.test_wait).
__device__ __forceinline__ bool mbarrier_test_parity(uint64_t* bar, uint32_t parity) {
#if defined(XSEP_HOST_EMULATION)
  return emulated_mbarrier_test_parity(bar, parity);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  uint32_t done;
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "mbarrier.test_wait.parity.shared::cta.b64 done, [%1], %2;\n"
      "selp.u32 %0, 1, 0, done;\n"
      "}\n"
      : "=r"(done)
      : "r"(shared_address(bar)), "r"(parity)
      : "memory");
  return done != 0;
#else
  return true;
#endif
}

// `bytes` (a multiple of 16; both addresses 16-byte aligned) from global `src` to shared `dst`,
// counted against `bar`'s current phase when they land.
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if defined(XSEP_HOST_EMULATION)
  emulated_bulk_copy_to_shared(dst, src, bytes, bar);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   shared_address(dst)),
               "l"(src), "r"(bytes), "r"(shared_address(bar))
               : "memory");
#endif
}

}  // namespace xsep
