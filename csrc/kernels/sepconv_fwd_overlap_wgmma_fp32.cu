#include "sepconv_fwd_overlap_launch.cuh"

namespace xsep {

template bool overlap_forward_applies<float>(const SepConvParams& p);
template size_t overlap_forward_workspace_bytes<float>(const SepConvParams& p);
template int launch_overlap_forward<float>(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch);

}  // namespace xsep
