#include "sepconv_fwd_overlap_launch.cuh"

namespace xsep {

template bool overlap_forward_applies<__nv_bfloat16>(const SepConvParams& p);
template size_t overlap_forward_workspace_bytes<__nv_bfloat16>(const SepConvParams& p);
template int launch_overlap_forward<__nv_bfloat16>(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch);

}  // namespace xsep
