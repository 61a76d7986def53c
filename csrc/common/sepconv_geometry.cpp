#include "sepconv_geometry.h"

#include <c10/util/Exception.h>

namespace xsep {
namespace {

void check_floating(const char* fn, const char* name, const at::Tensor& t) {
  TORCH_CHECK_TYPE(t.layout() == at::kStrided, fn, ": ", name, " must be a dense (strided) tensor; got layout ",
                   t.layout());
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()) && !t.is_quantized(), fn, ": ", name,
                   " must be float16, bfloat16, float32 or float64; got ", t.scalar_type());
}

}  // namespace

SepConvGeometry check_separable_conv2d_args(
    const char* fn, const at::Tensor& x, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
    const std::optional<at::Tensor>& bias, c10::IntArrayRef stride, c10::IntArrayRef padding,
    c10::IntArrayRef dilation) {
  check_floating(fn, "x", x);
  check_floating(fn, "dw_weight", dw_weight);
  check_floating(fn, "pw_weight", pw_weight);
  TORCH_CHECK_VALUE(x.dim() == 4, fn, ": x must have shape (N, C, H, W); got ", x.sizes());
  TORCH_CHECK_VALUE(dw_weight.dim() == 4 && dw_weight.size(1) == 1, fn,
                    ": dw_weight must have shape (C*M, 1, kh, kw); got ", dw_weight.sizes());
  TORCH_CHECK_VALUE(pw_weight.dim() == 4 && pw_weight.size(2) == 1 && pw_weight.size(3) == 1, fn,
                    ": pw_weight must have shape (Cout, C*M, 1, 1); got ", pw_weight.sizes());
  TORCH_CHECK_VALUE(stride.size() == 2 && padding.size() == 4 && dilation.size() == 2, fn,
                    ": expected stride of 2, padding of 4 (top, bottom, left, right) and dilation of 2 "
                    "values; got ", stride, ", ", padding, ", ", dilation);

  SepConvGeometry g{};
  g.N = x.size(0);
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.Cmid = dw_weight.size(0);
  g.kh = dw_weight.size(2);
  g.kw = dw_weight.size(3);
  g.Cout = pw_weight.size(0);
  TORCH_CHECK_VALUE(
      (g.C > 0 && g.Cmid > 0 && g.Cmid % g.C == 0) || (g.C == 0 && g.Cmid == 0), fn,
      ": dw_weight must have shape (C*M, 1, kh, kw) with C*M divisible by C=", g.C, "; got ",
      dw_weight.sizes());
  g.M = g.C > 0 ? g.Cmid / g.C : 1;
  TORCH_CHECK_VALUE(pw_weight.size(1) == g.Cmid, fn, ": pw_weight must have shape (Cout, C*M=", g.Cmid,
                    ", 1, 1); got ", pw_weight.sizes());
  TORCH_CHECK_VALUE(g.kh > 0 && g.kw > 0, fn, ": dw_weight's kernel must be at least 1x1; got ",
                    dw_weight.sizes());
  if (bias.has_value()) {
    check_floating(fn, "bias", *bias);
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == g.Cout, fn, ": bias must have shape (Cout=", g.Cout,
                      ",); got ", bias->sizes());
    TORCH_CHECK_TYPE(bias->scalar_type() == x.scalar_type(), fn, ": bias dtype ", bias->scalar_type(),
                     " differs from x dtype ", x.scalar_type());
    TORCH_CHECK_VALUE(bias->device() == x.device(), fn, ": bias is on ", bias->device(), " but x is on ",
                      x.device());
  }
  TORCH_CHECK_TYPE(dw_weight.scalar_type() == x.scalar_type() && pw_weight.scalar_type() == x.scalar_type(), fn,
                   ": x, dw_weight and pw_weight must share a dtype; got ", x.scalar_type(), ", ",
                   dw_weight.scalar_type(), ", ", pw_weight.scalar_type());
  TORCH_CHECK_VALUE(dw_weight.device() == x.device() && pw_weight.device() == x.device(), fn,
                    ": x, dw_weight and pw_weight must be on one device; got ", x.device(), ", ",
                    dw_weight.device(), ", ", pw_weight.device());

  g.sh = stride[0];
  g.sw = stride[1];
  g.pt = padding[0];
  g.pb = padding[1];
  g.pl = padding[2];
  g.pr = padding[3];
  g.dh = dilation[0];
  g.dw = dilation[1];
  TORCH_CHECK_VALUE(g.sh > 0 && g.sw > 0, fn, ": stride must be positive; got ", stride);
  TORCH_CHECK_VALUE(g.dh > 0 && g.dw > 0, fn, ": dilation must be positive; got ", dilation);
  TORCH_CHECK_VALUE(g.pt >= 0 && g.pb >= 0 && g.pl >= 0 && g.pr >= 0, fn,
                    ": padding must be non-negative; got ", padding);
  const int64_t span_h = (g.kh - 1) * g.dh + 1;
  const int64_t span_w = (g.kw - 1) * g.dw + 1;
  TORCH_CHECK_VALUE(g.H + g.pt + g.pb >= span_h && g.W + g.pl + g.pr >= span_w, fn,
                    ": the dilated kernel (", span_h, ", ", span_w, ") is larger than the padded input (",
                    g.H + g.pt + g.pb, ", ", g.W + g.pl + g.pr, ")");
  g.Ho = (g.H + g.pt + g.pb - span_h) / g.sh + 1;
  g.Wo = (g.W + g.pl + g.pr - span_w) / g.sw + 1;
  return g;
}

void check_grad_out(const char* fn, const SepConvGeometry& g, const at::Tensor& grad_out, const at::Tensor& x) {
  TORCH_CHECK_VALUE(grad_out.sizes() == at::IntArrayRef({g.N, g.Cout, g.Ho, g.Wo}), fn,
                    ": grad_out must have the output's shape (", g.N, ", ", g.Cout, ", ", g.Ho, ", ", g.Wo, "); got ",
                    grad_out.sizes());
  TORCH_CHECK_TYPE(grad_out.scalar_type() == x.scalar_type() && grad_out.device() == x.device(), fn,
                   ": grad_out must match x in dtype and device; got ", grad_out.scalar_type(), " on ",
                   grad_out.device(), " and ", x.scalar_type(), " on ", x.device());
}

Activation parse_activation(const char* fn, c10::string_view name) {
  if (name == "none") return Activation::kNone;
  if (name == "relu") return Activation::kRelu;
  if (name == "elu") return Activation::kElu;
  TORCH_CHECK_VALUE(false, fn, ": intermediate_activation must be 'none', 'relu' or 'elu'; got '", name, "'");
}

at::Tensor like_weight(const at::Tensor& grad, const at::Tensor& weight) {
  return grad.to(weight.scalar_type()).contiguous(weight.suggest_memory_format());
}

at::MemoryFormat output_memory_format(const at::Tensor& x) { return x.suggest_memory_format(); }

}  // namespace xsep
