// Shared-memory plumbing: 16-byte asynchronous copies from global to shared memory (cp.async,
// sm_80+; the one place the kernels spell the PTX) and the dynamic shared memory declaration. Elsewhere: a synchronous
// copy (before sm_80), or, in the host emulation of the kernels (tests/cpp/cuda_host_emulation.h, XSEP_HOST_EMULATION),
// copies that land only at the wait, the latest moment the hardware may deliver them.
#pragma once

#include <vector_types.h>

#include <cstring>

// A kernel's dynamic shared memory as `unsigned char name[]`, 128-byte aligned (in the host
// emulation: the buffer it allocates per CTA).
#if defined(XSEP_HOST_EMULATION)
unsigned char* emulated_dynamic_shared();
#define XSEP_DYNAMIC_SHARED(name) unsigned char* name = ::xsep::emulated_dynamic_shared()
#else
#define XSEP_DYNAMIC_SHARED(name) extern __shared__ __align__(128) unsigned char name[]
#endif

namespace xsep {

#if defined(XSEP_HOST_EMULATION)
void emulated_cp_async_16(void* dst, const void* src, bool valid);
void emulated_cp_async_commit();
void emulated_cp_async_wait(int pending);
void emulated_generic_shared_write(const void* dst, int bytes);
void emulated_fence_proxy_async();
#endif

#if defined(__CUDA_ARCH__)
// st.shared of V (4, 8 or 16 bytes) at a 32-bit shared address.
template <typename V>
__device__ __forceinline__ void st_shared(unsigned at, V v) {
  static_assert(sizeof(V) == 4 || sizeof(V) == 8 || sizeof(V) == 16, "one store of 4, 8 or 16 bytes");
  unsigned w[sizeof(V) / 4];
  memcpy(w, &v, sizeof(V));
  if constexpr (sizeof(V) == 4) {
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(at), "r"(w[0]) : "memory");
  } else if constexpr (sizeof(V) == 8) {
    asm volatile("st.shared.v2.b32 [%0], {%1, %2};\n" ::"r"(at), "r"(w[0]), "r"(w[1]) : "memory");
  } else {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(at), "r"(w[0]), "r"(w[1]), "r"(w[2]), "r"(w[3])
                 : "memory");
  }
}
#endif

// A store of V (4, 8 or 16 bytes: uint32_t, uint2, float2, uint4) to shared memory that a wgmma may
// read. On the GPU an st.shared at the 32-bit shared address of dst: dst is a generic pointer the
// compiler cannot tell is shared (CuTe swizzles its address bits as an integer, and the wgmma
// buffers are aligned the same way), so a plain store through it was a generic ST with its 64-bit
// address built per store; a shared address is dst's low 32 bits. The host emulation records the
// store, as it records landed cp.async copies, as unseen by wgmma (the async proxy) until this
// thread's fence_shared_for_wgmma.
template <typename V>
__device__ __forceinline__ void store_shared(void* dst, V v) {
#if defined(__CUDA_ARCH__)
  st_shared(static_cast<unsigned>(__cvta_generic_to_shared(dst)), v);
#else
  *static_cast<V*>(dst) = v;
#if defined(XSEP_HOST_EMULATION)
  emulated_generic_shared_write(dst, static_cast<int>(sizeof(V)));
#endif
#endif
}

// store_shared at byte `offset` of shared buffer `base`, the address formed in 32 bits on the GPU
// (base's shared address, found once a thread, plus the offset).
template <typename V>
__device__ __forceinline__ void store_shared_at(unsigned char* base, unsigned offset, V v) {
#if defined(__CUDA_ARCH__)
  st_shared(static_cast<unsigned>(__cvta_generic_to_shared(base)) + offset, v);
#else
  store_shared(base + offset, v);
#endif
}

#if defined(__CUDA_ARCH__)
template <typename V>
__device__ __forceinline__ V ld_shared(unsigned at) {
  static_assert(sizeof(V) == 4 || sizeof(V) == 8 || sizeof(V) == 16, "one load of 4, 8 or 16 bytes");
  unsigned w[sizeof(V) / 4];
  if constexpr (sizeof(V) == 4) {
    asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(w[0]) : "r"(at) : "memory");
  } else if constexpr (sizeof(V) == 8) {
    asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];\n" : "=r"(w[0]), "=r"(w[1]) : "r"(at) : "memory");
  } else {
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(w[0]), "=r"(w[1]), "=r"(w[2]), "=r"(w[3])
                 : "r"(at)
                 : "memory");
  }
  V v;
  memcpy(&v, w, sizeof(V));
  return v;
}
#endif

// A load of base + offset in shared memory, as an LDS: the compiler cannot see that a pointer is
// into shared memory once it has been through an integer (align_for_wgmma), and would emit a
// generic load, whose address the LSU translates first.
template <typename V>
__device__ __forceinline__ V load_shared_at(const unsigned char* base, unsigned offset) {
#if defined(__CUDA_ARCH__)
  return ld_shared<V>(static_cast<unsigned>(__cvta_generic_to_shared(base)) + offset);
#else
  V v;
  memcpy(&v, base + offset, sizeof(V));
  return v;
#endif
}

// 16 bytes from src to dst (shared memory) when `valid`; else nothing is read (src may be any
// valid address) and the 16 bytes are zero-filled.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
#elif defined(XSEP_HOST_EMULATION)
  emulated_cp_async_16(dst, src, valid);
#else
  *static_cast<uint4*>(dst) = valid ? *static_cast<const uint4*>(src) : make_uint4(0, 0, 0, 0);
#endif
}

// Closes the group of this thread's copies issued since the last commit (possibly empty).
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#elif defined(XSEP_HOST_EMULATION)
  emulated_cp_async_commit();
#endif
}

// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#elif defined(XSEP_HOST_EMULATION)
  emulated_cp_async_wait(kPending);
#endif
}

// cp_async_wait for a count known only at run time (the instruction takes an immediate): above 7
// it waits for 7, below 0 for 0 (more waiting than asked is never wrong).
__device__ __forceinline__ void cp_async_wait_pending(int pending) {
  switch (pending) {
    case 0:
      cp_async_wait<0>();
      break;
    case 1:
      cp_async_wait<1>();
      break;
    case 2:
      cp_async_wait<2>();
      break;
    case 3:
      cp_async_wait<3>();
      break;
    case 4:
      cp_async_wait<4>();
      break;
    case 5:
      cp_async_wait<5>();
      break;
    case 6:
      cp_async_wait<6>();
      break;
    default:
      if (pending < 0) {
        cp_async_wait<0>();
      } else {
        cp_async_wait<7>();
      }
      break;
  }
}

}  // namespace xsep
