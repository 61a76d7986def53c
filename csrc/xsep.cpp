// The xsep operator library: every schema lives here; each backend registers its kernels
// with TORCH_LIBRARY_IMPL in its own folder (cpu/, cuda/), autocast in autocast.cpp.
#include <Python.h>
#include <torch/library.h>

// `import xsep._C` loads this shared object, which runs the static registrations below.
// The module itself exports nothing: the ops are reached through torch.ops.xsep.*.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(xsep, m) {
  // y = conv2d(act(conv2d(x, dw_weight, stride, padding, dilation, groups=C)), pw_weight, bias)
  // with act = intermediate_activation: "none" (Xception's choice, the default), "relu" or "elu".
  // padding is explicit and possibly asymmetric: (top, bottom, left, right); the Python
  // wrapper resolves "same"/"valid"/int/tuple into it.
  m.def(
      "separable_conv2d(Tensor x, Tensor dw_weight, Tensor pw_weight, Tensor? bias, "
      "int[2] stride, int[4] padding, int[2] dilation, str intermediate_activation=\"none\") -> Tensor");
  // Gradients of separable_conv2d. output_mask = (x, dw_weight, pw_weight, bias): an entry that
  // is false is not computed and comes back as an empty tensor of shape (0,).
  m.def(
      "separable_conv2d_backward(Tensor grad_out, Tensor x, Tensor dw_weight, Tensor pw_weight, "
      "int[2] stride, int[4] padding, int[2] dilation, str intermediate_activation, bool[4] output_mask) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}
