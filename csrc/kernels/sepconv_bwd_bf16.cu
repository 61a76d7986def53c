#include "sepconv_bwd.h"
#include "sepconv_bwd_launch.cuh"

namespace xsep {

LaunchResult sepconv_backward_bf16(const SepConvBwdParams& p, cudaStream_t stream) {
  return launch_sepconv_bwd<__nv_bfloat16, Math::kTensorCore>(p, stream, "bfloat16");
}

}  // namespace xsep
