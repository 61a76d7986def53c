// Hopper thread-block clusters (sm_90a) as the overlapped forward's pair builds use them
// (sepconv_fwd_overlap_kernel.cuh): a CTA's rank in its cluster, the cluster-wide barrier, an
// arrival on a peer CTA's transaction barrier, a bulk copy multicast into several CTAs' shared
// memory, and one from this CTA's shared memory into a peer's. In the host emulation, stand-ins (tests/cpp/cuda_host_emulation.h: a cluster's CTAs run
// at once, each with its own shared memory).
//
// sm_90 only (XSEP_WGMMA_DEVICE_CODE); elsewhere these are never called (the stub kernels).
#pragma once

#include <cstdint>

#include "bulk_copy.cuh"

namespace xsep {

#if defined(XSEP_HOST_EMULATION)
int emulated_cluster_rank();
void emulated_cluster_sync();
void emulated_mbarrier_arrive_remote(uint64_t* bar, int rank);
void emulated_bulk_copy_multicast(void* dst, const void* src, uint32_t bytes, uint64_t* bar, uint16_t mask);
void emulated_bulk_copy_to_peer(const void* at, uint32_t bytes, uint64_t* bar, int rank);
#endif

// This CTA's rank in its cluster (0 .. cluster size - 1).
__device__ __forceinline__ int cluster_rank() {
#if defined(XSEP_HOST_EMULATION)
  return emulated_cluster_rank();
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  uint32_t rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
  return static_cast<int>(rank);
#else
  return 0;
#endif
}

// Every thread of every CTA of the cluster (all threads of each warp: .aligned) arrives, then
// waits for all: release/acquire at cluster scope, so barriers initialised before it may be used
// by the peers after it, and no CTA leaves while a peer may still reach its shared memory.
__device__ __forceinline__ void cluster_sync() {
#if defined(XSEP_HOST_EMULATION)
  emulated_cluster_sync();
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}

// One arrival on the barrier that `bar` names in this CTA, in CTA `rank`'s shared memory instead
// (mapa). The arrive's default semantics (release, CTA scope), as CUTLASS's consumers release a
// multicast ring slot: what it orders is this thread's wgmma reads, already retired, before the
// peer's bulk copy into the slot. (.release.cluster would put a MEMBAR.ALL.GPU before it, which
// waits for every global store this thread has in flight: ptxas output, sm_90a.)
__device__ __forceinline__ void mbarrier_arrive_remote(uint64_t* bar, int rank) {
#if defined(XSEP_HOST_EMULATION)
  emulated_mbarrier_arrive_remote(bar, rank);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(shared_address(bar)), "r"(rank));
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(remote) : "memory");
#endif
}

// `bytes` (a multiple of 16; both addresses 16-byte aligned) from global `src` to `dst`'s offset in
// the shared memory of every CTA of the cluster in `mask` (bit r: rank r), each counted against the
// barrier at `bar`'s offset in that CTA when they land there.
__device__ __forceinline__ void bulk_copy_multicast(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                                    uint16_t mask) {
#if defined(XSEP_HOST_EMULATION)
  emulated_bulk_copy_multicast(dst, src, bytes, bar, mask);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], %2, [%3], "
      "%4;\n" ::"r"(shared_address(dst)),
      "l"(src), "r"(bytes), "r"(shared_address(bar)), "h"(mask)
      : "memory");
#endif
}

// `bytes` (a multiple of 16, 16-byte aligned) of this CTA's shared memory at `at` to the same offset
// in CTA `rank`'s, counted against the barrier at `bar`'s offset there when they land. The copy
// reads through the async proxy: the threads that wrote them fence (fence.proxy.async) first.
__device__ __forceinline__ void bulk_copy_to_peer(const void* at, uint32_t bytes, uint64_t* bar, int rank) {
#if defined(XSEP_HOST_EMULATION)
  emulated_bulk_copy_to_peer(at, bytes, bar, rank);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  uint32_t dst, remote_bar;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(dst) : "r"(shared_address(at)), "r"(rank));
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote_bar) : "r"(shared_address(bar)), "r"(rank));
  asm volatile("cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   dst),
               "r"(shared_address(at)), "r"(bytes), "r"(remote_bar)
               : "memory");
#endif
}

}  // namespace xsep
