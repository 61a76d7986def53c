// What the wgmma kernels share (sepconv_fwd_wgmma_kernel.cuh, sepconv_bwd_input_wgmma.cuh): CuTe,
// the macro that says whether warpgroup-MMA code is compiled, the element types, and the
// synchronisation around wgmma (through the host emulation's stand-ins there:
// tests/cpp/wgmma_emulation.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(XSEP_WITH_CUTE)
#include <cute/arch/mma_sm90.hpp>
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

// CuTe's name for a storage type (fp32 operands: TF32).
template <typename T>
using CuteElement =
    std::conditional_t<std::is_same_v<T, __half>, cute::half_t,
                       std::conditional_t<std::is_same_v<T, float>, cute::tfloat32_t, cute::bfloat16_t>>;

// v rounded to TF32, to nearest (ties away), as cuDNN and the WMMA path round; wgmma itself would
// drop the low mantissa bits.
__device__ __forceinline__ float round_to_tf32(float v) {
#if defined(__CUDA_ARCH__)
  uint32_t bits;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(v));
  return __uint_as_float(bits);
#else
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7f800000u) != 0x7f800000u) bits += 0x1000u;  // finite: add half a unit, then drop
  bits &= ~0x1fffu;
  std::memcpy(&v, &bits, 4);
  return v;
#endif
}

// The 64 x N x 16 warpgroup MMA of T with fp32 accumulators, both operands in shared memory with
// the given majors (in the host emulation: its stand-in, tests/cpp/wgmma_emulation.h).
template <typename T, int N, cute::GMMA::Major kMajorA, cute::GMMA::Major kMajorB>
struct WgmmaAtom {
  using Hardware = decltype(cute::GMMA::ss_op_selector<CuteElement<T>, CuteElement<T>, float,
                                                       cute::Shape<cute::_64, cute::Int<N>, cute::_16>, kMajorA,
                                                       kMajorB>());
#if defined(XSEP_HOST_EMULATION)
  using type = EmulatedGmma<Hardware, CuteElement<T>, kMajorB == cute::GMMA::Major::MN,
                            kMajorA == cute::GMMA::Major::MN>;
#else
  using type = Hardware;
#endif
};

#if defined(XSEP_HOST_EMULATION)
void emulated_wgmma_commit();
void emulated_wgmma_wait(int pending);
#endif

// Makes prior generic-proxy writes to shared memory (st.shared, cp.async) visible to the async
// proxy wgmma reads through. Each thread fences its own writes, then a barrier.
__device__ __forceinline__ void fence_shared_for_wgmma() {
#if defined(XSEP_WGMMA_DEVICE_CODE) && defined(__CUDA_ARCH__)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#elif defined(XSEP_HOST_EMULATION)
  emulated_fence_proxy_async();
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

// The first kBoundary-byte boundary at or after p: wgmma's swizzled operands start on their
// pattern's (1024 bytes for the 128-byte swizzle, 512 for the 64-byte one; the descriptors CuTe
// builds say base offset 0).
template <int kBoundary = 1024>
__host__ __device__ __forceinline__ unsigned char* align_for_wgmma(unsigned char* p) {
  static_assert(kBoundary > 0 && (kBoundary & (kBoundary - 1)) == 0, "a power of two");
  return reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(p) + kBoundary - 1) / kBoundary * kBoundary);
}

// The byte offset of element row m, byte kb of its row, in a K-major operand of 64-byte rows in
// CuTe's 64-byte-swizzled GMMA layout (Layout_K_SW64_Atom<T> tiled along M: the Z chunks), from a
// start aligned to the 512-byte pattern: 16-byte column kb / 16 of row m lands in column
// (kb / 16) ^ ((m / 2) % 4), as CuTe swizzles the address bits of its pointer. In 32 bits, so that
// a store address is a 32-bit shared address plus this (tests/cpp/wgmma_fwd_emulation.cpp checks
// it against CuTe's pointers, and its GEMMs read what is stored through it).
__host__ __device__ constexpr uint32_t sw64_k_major_offset(int m, int kb) {
  const uint32_t off = static_cast<uint32_t>(m) * 64u + static_cast<uint32_t>(kb);
  return off ^ ((off & 0x180u) >> 3);
}

// Declares the marker the launchers look for in a kernel's static shared memory (its other shared
// memory is dynamic) to tell its sm_90a code from the code other architectures get
// (wgmma_body_built below). Volatile and written once, so the compiler keeps it.
// (Nothing in the host emulation, which runs a cluster's CTAs at once: their threads 0 would write
// the one static copy together.)
__device__ __forceinline__ void mark_wgmma_code() {
#if defined(XSEP_WGMMA_DEVICE_CODE) && !defined(XSEP_HOST_EMULATION)
  __shared__ volatile int wgmma_marker;
  if (threadIdx.x == 0) {
    wgmma_marker = 1;
    (void)wgmma_marker;
  }
#endif
}

#if !defined(XSEP_HOST_EMULATION)
// Host side: whether `kernel` has its wgmma body for the current device. Only its sm_90a code
// declares static shared memory (mark_wgmma_code, or the forward's pixel table); other
// architectures get a body without wgmma that the launchers never start. (cudaFuncGetAttributes is
// legal while a stream is being captured; a probe launch would not be.)
template <class Kernel>
bool wgmma_body_built(Kernel kernel) {
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, kernel) != cudaSuccess) {
    cudaGetLastError();  // no kernel image for this device: not the caller's error
    return false;
  }
  return attributes.sharedSizeBytes > 0;
}

// `check()` once per device, remembered in `cache` (one per caller: 0 unknown, 1 no, 2 yes), so a
// launch does not ask the driver again.
template <class Check>
bool once_per_device(std::atomic<int8_t> (&cache)[64], Check&& check) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return check();
  int8_t known = cache[device].load(std::memory_order_relaxed);
  if (known == 0) {
    known = check() ? 2 : 1;
    cache[device].store(known, std::memory_order_relaxed);
  }
  return known == 2;
}
#endif

#endif  // XSEP_WITH_CUTE

}  // namespace xsep
