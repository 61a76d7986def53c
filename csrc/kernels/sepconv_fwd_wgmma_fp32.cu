#include "sepconv_fwd_wgmma_launch.cuh"

namespace xsep {

// fp32 on TF32 tensor cores (the launcher asks only when TF32 is allowed).
template bool wgmma_forward_applies<float>(const SepConvParams& p);
template size_t wgmma_forward_workspace_bytes<float>(const SepConvParams& p);
template int launch_wgmma_forward<float>(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch);

}  // namespace xsep
