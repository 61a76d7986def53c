#include "sepconv_fwd.h"
#include "sepconv_fwd_launch.cuh"

namespace xsep {

LaunchResult sepconv_forward_fp16(const SepConvParams& p, cudaStream_t stream) {
  return launch_sepconv_fwd<__half, Math::kTensorCore>(p, stream, "float16");
}

}  // namespace xsep
