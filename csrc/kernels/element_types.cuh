// Conversions between the storage types (fp16, bf16, fp32) and the fp32 every kernel computes in,
// and the choice of pointwise math, shared by the forward and backward kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace xsep {

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// v rounded to the storage type and back: an fp32 intermediate rounded as the unfused op stores
// it (a 16-bit intermediate overflows to inf where the unfused op's does). Identity for float.
template <typename T>
__device__ __forceinline__ float round_like_storage(float v) { return to_float(from_float<T>(v)); }

// 16 bytes as one load or store, or as its elements.
template <typename T>
union Vec16 {
  uint4 u;
  T v[16 / sizeof(T)];
  __device__ Vec16() {}
};

// Tensor cores (fp16 / bf16 WMMA, or TF32 for float32) or exact float32 FFMA on CUDA cores.
enum class Math { kTensorCore, kFFMA };

}  // namespace xsep
