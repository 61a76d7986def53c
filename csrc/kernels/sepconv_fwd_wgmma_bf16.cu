#include "sepconv_fwd_wgmma_launch.cuh"

namespace xsep {

template bool wgmma_forward_applies<__nv_bfloat16>(const SepConvParams& p);
template size_t wgmma_forward_workspace_bytes<__nv_bfloat16>(const SepConvParams& p);
template int launch_wgmma_forward<__nv_bfloat16>(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch);

}  // namespace xsep
