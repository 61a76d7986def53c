#include "sepconv_bwd.h"
#include "sepconv_bwd_launch.cuh"

namespace xsep {

// TF32 tensor cores when allowed (torch.backends.cudnn.allow_tf32, as for the forward), exact
// FFMA otherwise.
LaunchResult sepconv_backward_fp32(const SepConvBwdParams& p, cudaStream_t stream) {
  return p.fwd.allow_tf32 ? launch_sepconv_bwd<float, Math::kTensorCore>(p, stream, "float32")
                          : launch_sepconv_bwd<float, Math::kFFMA>(p, stream, "float32");
}

}  // namespace xsep
