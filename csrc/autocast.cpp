// Autocast for the forward op: cast every floating input to the autocast dtype of the device,
// then redispatch below the autocast key (autograd records the casts, so gradients flow back
// to the original dtypes). float64 inputs are left alone, as PyTorch's own conv does.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

namespace xsep {
namespace {

template <c10::DeviceType kDevice, c10::DispatchKey kAutocastKey>
at::Tensor separable_conv2d_autocast(
    const at::Tensor& x, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
    const std::optional<at::Tensor>& bias, c10::IntArrayRef stride, c10::IntArrayRef padding,
    c10::IntArrayRef dilation, c10::string_view intermediate_activation) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(kAutocastKey);
  const auto dtype = at::autocast::get_autocast_dtype(kDevice);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("xsep::separable_conv2d", "")
                       .typed<decltype(separable_conv2d_autocast<kDevice, kAutocastKey>)>();
  return op.call(
      at::autocast::cached_cast(dtype, x, kDevice), at::autocast::cached_cast(dtype, dw_weight, kDevice),
      at::autocast::cached_cast(dtype, pw_weight, kDevice), at::autocast::cached_cast(dtype, bias, kDevice),
      stride, padding, dilation, intermediate_activation);
}

}  // namespace

TORCH_LIBRARY_IMPL(xsep, AutocastCPU, m) {
  m.impl("separable_conv2d",
         separable_conv2d_autocast<c10::DeviceType::CPU, c10::DispatchKey::AutocastCPU>);
}

TORCH_LIBRARY_IMPL(xsep, AutocastCUDA, m) {
  m.impl("separable_conv2d",
         separable_conv2d_autocast<c10::DeviceType::CUDA, c10::DispatchKey::AutocastCUDA>);
}

}  // namespace xsep
