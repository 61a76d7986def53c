#include "sepconv_bwd_wgmma_launch.cuh"

namespace xsep {

template bool wgmma_input_built<__half, 64>();
template bool wgmma_input_built<__half, 128>();
template bool wgmma_input_built<__half, 256>();
template cudaError_t launch_wgmma_input<__half, 64>(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream);
template cudaError_t launch_wgmma_input<__half, 128>(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream);
template cudaError_t launch_wgmma_input<__half, 256>(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream);
template bool wgmma_pw_built<__half>();
template cudaError_t launch_wgmma_pw<__half>(const SepConvBwdParams& p, dim3 grid, cudaStream_t stream);
template bool resident_pw_built<__half>(int half, int max_pixels);
template cudaError_t launch_resident_pw<__half>(const SepConvBwdParams& p, int half, dim3 grid, cudaStream_t stream);

}  // namespace xsep
