// XSEP_HD: a function both the CUDA kernels and host (CPU) code call.
#pragma once

#if defined(__CUDACC__)
#define XSEP_HD __host__ __device__ __forceinline__
#else
#define XSEP_HD inline
#endif
