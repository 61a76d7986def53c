// The plain description of one separable convolution that every kernel receives: sizes,
// element strides, pointers, flags. No PyTorch types, so the kernels compile with nvcc alone.
#pragma once

#include <cstdint>

namespace xsep {

struct SepConvParams {
  // Sizes. Each fits in 32 bits (the host checks); products of them are formed in 64 bits.
  int N, C, H, W;
  int M;         // depth multiplier: depthwise channel cm = c * M + m reads input channel c
  int Cmid;      // C * M
  int Cout;
  int kh, kw;    // depthwise kernel
  int sh, sw;    // stride
  int pt, pl;    // padding at the top and left (bottom/right padding is implied by Ho, Wo)
  int dh, dw;    // dilation
  int Ho, Wo;
  // Element strides (n, c, h, w) of x and y: both memory formats, and views, are just strides.
  int64_t x_stride[4];
  int64_t y_stride[4];
  const void* x;          // (N, C, H, W)
  const void* dw_weight;  // (Cmid, kh * kw), contiguous
  const void* pw_weight;  // (Cout, Cmid), contiguous
  const void* bias;       // (Cout,) or nullptr; same dtype as x
  void* y;                // (N, Cout, Ho, Wo)
  bool channels_last;     // which coalescing pattern to use (the strides say where things are)
  bool allow_tf32;        // float32 only: TF32 tensor cores (true) or exact FFMA (false)
};

enum class DType { kFloat16, kBFloat16, kFloat32 };

// What a launcher did: the CUDA error of the launch (cudaSuccess or not) and which kernel variant
// ran, for the dispatch log.
struct LaunchResult {
  int error;  // a cudaError_t
  const char* variant;
};

}  // namespace xsep
