// Fused CPU forward: per tile of output rows, the depthwise result goes into a cache-sized
// buffer and the pointwise part is one GEMM on it; tiles run in parallel. The intermediate is
// never materialised for the whole tensor.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../common/dispatch_log.h"
#include "sepconv_cpu_common.h"
#include "sepconv_cpu_tiles.h"

namespace xsep::cpu {
namespace {

template <typename scalar_t>
void forward_tiles(const at::Tensor& x, const AccWeights& w, const std::optional<at::Tensor>& bias,
                   const SepConvGeometry& g, bool nhwc, Activation act, at::Tensor& y) {
  using acc_t = acc_type<scalar_t>;
  // fp32/fp64 outputs take the GEMM result in place; 16-bit ones go through an fp32 buffer.
  constexpr bool kGemmIntoOutput = std::is_same_v<scalar_t, acc_t>;
  const auto acc_opts = x.options().dtype(scalar_type_of<acc_t>());
  const at::Tensor bias_acc = bias.has_value() ? bias->detach().to(scalar_type_of<acc_t>()) : at::Tensor();
  const int64_t row_bytes = g.Wo * (g.Cmid + (kGemmIntoOutput ? 0 : g.Cout)) * int64_t(sizeof(acc_t));
  const TilePlan plan = make_tile_plan(g, row_bytes, 1, /*across_images=*/nhwc, at::get_num_threads());
  if (dispatch_log_active()) {
    log_dispatch("separable_conv2d", std::string("forward cpu ") + dtype_name(x.scalar_type()) +
                                         (nhwc ? " channels_last (" : " nchw (") + plan.describe() + ")");
  }
  const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
  scalar_t* y_ptr = y.mutable_data_ptr<scalar_t>();
  const acc_t* dw = w.dw.const_data_ptr<acc_t>();
  const bool padded_planes = all_finite(w.dw);

  // Several images per tile: the GEMM's output goes through the buffer too (an image's block is then
  // copied to its place in y).
  const bool gemm_into_output = kGemmIntoOutput && plan.images == 1;
  at::parallel_for(0, plan.count, 1, [&](int64_t begin, int64_t end) {
    at::Tensor z_buf = at::empty({plan.max_pixels(g) * g.Cmid}, acc_opts);
    at::Tensor y_buf = gemm_into_output ? at::Tensor() : at::empty({plan.max_pixels(g) * g.Cout}, acc_opts);
    acc_t* z = z_buf.mutable_data_ptr<acc_t>();
    for (int64_t t = begin; t < end; ++t) {
      const Tile tile = plan.tile(t, g);
      const int64_t image_pixels = tile.rows * g.Wo, P = image_pixels * tile.images;
      at::Tensor out, y_tile;
      if (!nhwc) {
        // Y tile (Cout x P) = Wpw (Cout x Cmid) . Z (Cmid x P), Z with each image's block of pixels
        // side by side; output rows are Ho*Wo apart.
        const int64_t n = tile.row0 / g.Ho, r0 = tile.row0 % g.Ho;
        depthwise_tile_nchw(g, x_ptr + n * g.C * g.H * g.W, tile.images, dw, r0, tile.rows, z, P, padded_planes);
        round_like_input<scalar_t>(z, P * g.Cmid);
        activate_like_input<scalar_t>(act, z, P * g.Cmid);
        out = gemm_into_output ? matrix(y_ptr + n * g.Cout * g.Ho * g.Wo + r0 * g.Wo, g.Cout, P, g.Ho * g.Wo)
                               : matrix(y_buf.mutable_data_ptr<acc_t>(), g.Cout, P, P);
        const at::Tensor zm = matrix(z, g.Cmid, P, P);
        if (bias_acc.defined()) {
          at::addmm_out(out, bias_acc.view({g.Cout, 1}), w.pw, zm);
        } else {
          at::mm_out(out, w.pw, zm);
        }
        if (gemm_into_output) continue;
        for (int64_t i = 0; i < tile.images; ++i) {  // round once, from fp32
          matrix(y_ptr + (n + i) * g.Cout * g.Ho * g.Wo + r0 * g.Wo, g.Cout, image_pixels, g.Ho * g.Wo)
              .copy_(out.narrow(1, i * image_pixels, image_pixels));
        }
      } else {
        // Y tile (P x Cout) = Z (P x Cmid) . Wpw^T (Cmid x Cout); the tile is contiguous in y.
        depthwise_tile_nhwc(g, x_ptr, dw, tile.row0, tile.rows, z);
        round_like_input<scalar_t>(z, P * g.Cmid);
        activate_like_input<scalar_t>(act, z, P * g.Cmid);
        y_tile = matrix(y_ptr + tile.row0 * g.Wo * g.Cout, P, g.Cout, g.Cout);
        out = kGemmIntoOutput ? y_tile : matrix(y_buf.mutable_data_ptr<acc_t>(), P, g.Cout, g.Cout);
        const at::Tensor zm = matrix(z, P, g.Cmid, g.Cmid);
        if (bias_acc.defined()) {
          at::addmm_out(out, bias_acc.view({1, g.Cout}), zm, w.pw.t());
        } else {
          at::mm_out(out, zm, w.pw.t());
        }
        if (!kGemmIntoOutput) y_tile.copy_(out);  // round once, from fp32
      }
    }
  });
}

at::Tensor separable_conv2d_cpu(const at::Tensor& x_in, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
                                const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                                c10::IntArrayRef padding, c10::IntArrayRef dilation,
                                c10::string_view intermediate_activation) {
  const char* fn = "separable_conv2d";
  const Activation act = parse_activation(fn, intermediate_activation);
  const SepConvGeometry g =
      check_separable_conv2d_args(fn, x_in, dw_weight, pw_weight, bias, stride, padding, dilation);
  TORCH_CHECK_VALUE(x_in.device().is_cpu(), fn, ": the CPU kernel got x on ", x_in.device());
  const at::MemoryFormat fmt = output_memory_format(x_in);
  at::Tensor y = at::empty({g.N, g.Cout, g.Ho, g.Wo}, x_in.options().memory_format(fmt));
  if (y.numel() == 0) return y;
  if (g.C == 0) {  // no input channels: the convolutions sum nothing
    return bias.has_value() ? y.copy_(bias->view({1, g.Cout, 1, 1}).expand_as(y)) : y.zero_();
  }
  const bool nhwc = fmt == at::MemoryFormat::ChannelsLast;
  const at::Tensor x = x_in.contiguous(fmt);  // a no-op unless x is a strided view
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "separable_conv2d_cpu", [&] {
    const AccWeights w = to_acc_weights(dw_weight, pw_weight, g, nhwc, scalar_type_of<acc_type<scalar_t>>());
    forward_tiles<scalar_t>(x, w, bias, g, nhwc, act, y);
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(xsep, CPU, m) { m.impl("separable_conv2d", separable_conv2d_cpu); }

}  // namespace xsep::cpu
