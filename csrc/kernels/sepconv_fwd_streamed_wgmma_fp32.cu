#include "sepconv_fwd_streamed_launch.cuh"

namespace xsep {

// fp32 on TF32 tensor cores (the launcher asks only when TF32 is allowed).
template bool streamed_forward_applies<float>(const SepConvParams& p);
template size_t streamed_forward_workspace_bytes<float>(const SepConvParams& p);
template int launch_streamed_forward<float>(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch);

}  // namespace xsep
