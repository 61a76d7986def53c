#include "sepconv_fwd.h"
#include "sepconv_fwd_launch.cuh"

namespace xsep {

// TF32 tensor cores when allowed (PyTorch's torch.backends.cudnn.allow_tf32, the rule cuDNN
// follows for convolutions), exact FFMA otherwise.
LaunchResult sepconv_forward_fp32(const SepConvParams& p, cudaStream_t stream) {
  return p.allow_tf32 ? launch_sepconv_fwd<float, Math::kTensorCore>(p, stream, "float32")
                      : launch_sepconv_fwd<float, Math::kFFMA>(p, stream, "float32");
}

// Every dtype's workspace query lives here (one definition; the 16-bit launchers' templates are
// header-only).
size_t sepconv_forward_workspace_bytes(const SepConvParams& p, DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return forward_workspace_bytes<__half, Math::kTensorCore>(p);
    case DType::kBFloat16:
      return forward_workspace_bytes<__nv_bfloat16, Math::kTensorCore>(p);
    case DType::kFloat32:
      return p.allow_tf32 ? forward_workspace_bytes<float, Math::kTensorCore>(p) : 0;
  }
  return 0;
}

}  // namespace xsep
