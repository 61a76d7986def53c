// What the wgmma kernels share (sepconv_fwd_wgmma_kernel.cuh, sepconv_bwd_input_wgmma.cuh): CuTe,
// the macro that says whether warpgroup-MMA code is compiled, the element types, and the
// synchronisation around wgmma (through the host emulation's stand-ins there:
// tests/cpp/wgmma_emulation.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#if defined(XSEP_WITH_CUTE)
#include <cute/arch/mma_sm90_desc.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>
#endif

// wgmma exists only in code compiled for sm_90a (or in the host emulation).
#if defined(XSEP_WITH_CUTE) && \
    ((defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)) || defined(XSEP_HOST_EMULATION))
#define XSEP_WGMMA_DEVICE_CODE 1
#endif

namespace xsep {

#if defined(XSEP_WITH_CUTE)

// CuTe's name for a storage type.
template <typename T>
using CuteElement = std::conditional_t<std::is_same_v<T, __half>, cute::half_t, cute::bfloat16_t>;

#if defined(XSEP_HOST_EMULATION)
void emulated_wgmma_commit();
void emulated_wgmma_wait(int pending);
#endif

// Makes prior generic-proxy writes to shared memory (st.shared, cp.async) visible to the async
// proxy wgmma reads through. Each thread fences its own writes, then a barrier.
__device__ __forceinline__ void fence_shared_for_wgmma() {
#if defined(XSEP_WGMMA_DEVICE_CODE) && defined(__CUDA_ARCH__)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The warpgroup-MMA synchronisation, through the emulation's stand-ins on the host.
__device__ __forceinline__ void wgmma_arrive() {
#if defined(XSEP_WGMMA_DEVICE_CODE) && defined(__CUDA_ARCH__)
  cute::warpgroup_arrive();
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if defined(XSEP_HOST_EMULATION)
  emulated_wgmma_commit();
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  cute::warpgroup_commit_batch();
#endif
}
// Waits until at most kPending of this warpgroup's committed batches are in flight.
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
#if defined(XSEP_HOST_EMULATION)
  emulated_wgmma_wait(kPending);
#elif defined(XSEP_WGMMA_DEVICE_CODE)
  cute::warpgroup_wait<kPending>();
#endif
}

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
