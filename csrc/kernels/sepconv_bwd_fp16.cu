#include "sepconv_bwd.h"
#include "sepconv_bwd_launch.cuh"

namespace xsep {

LaunchResult sepconv_backward_fp16(const SepConvBwdParams& p, cudaStream_t stream) {
  return launch_sepconv_bwd<__half, Math::kTensorCore>(p, stream, "float16");
}

}  // namespace xsep
