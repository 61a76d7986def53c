#include "sepconv_fwd.h"
#include "sepconv_fwd_launch.cuh"

namespace xsep {

LaunchResult sepconv_forward_bf16(const SepConvParams& p, cudaStream_t stream) {
  return launch_sepconv_fwd<__nv_bfloat16, Math::kTensorCore>(p, stream, "bfloat16");
}

}  // namespace xsep
