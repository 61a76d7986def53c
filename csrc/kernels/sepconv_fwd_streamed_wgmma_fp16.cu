#include "sepconv_fwd_streamed_launch.cuh"

namespace xsep {

template bool streamed_forward_applies<__half>(const SepConvParams& p);
template size_t streamed_forward_workspace_bytes<__half>(const SepConvParams& p);
template int launch_streamed_forward<__half>(const SepConvParams& p, cudaStream_t stream, WgmmaLaunch* launch);

}  // namespace xsep
