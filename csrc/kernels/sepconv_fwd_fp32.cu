#include "sepconv_fwd.h"
#include "sepconv_fwd_launch.cuh"

namespace xsep {

// TF32 tensor cores when allowed (PyTorch's torch.backends.cudnn.allow_tf32, the rule cuDNN
// follows for convolutions), exact FFMA otherwise.
LaunchResult sepconv_forward_fp32(const SepConvParams& p, cudaStream_t stream) {
  return p.allow_tf32 ? launch_sepconv_fwd<float, Math::kTensorCore>(p, stream, "float32")
                      : launch_sepconv_fwd<float, Math::kFFMA>(p, stream, "float32");
}

}  // namespace xsep
