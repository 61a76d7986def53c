// Fused CPU backward. Per tile of output rows: Z is recomputed from x (never saved), dZ =
// (Wpw^T . dY) * act'(Z) is one GEMM (and, with an intermediate activation, its derivative), and
// both stay in cache-sized buffers:
//   grad_pw   += dY . act(Z)^T            (GEMM, per-group partial)
//   grad_dw   += sum_pixels x (.) dZ      (per-group partial)
//   grad_x    += depthwise-transpose(dZ)  (scattered into the rows the tile read)
// Determinism: tiles are split into one group per thread, each group sums its tiles in a fixed
// order, and the groups' partials are added in order: the same inputs and thread count give
// the same bits. grad_x: tiles run in two waves, even row-blocks then odd ones; a tile is at
// least (kh-1)*dh/sh rows tall, so two tiles of one wave never write the same grad_x row (NHWC
// tiles may span images: within an image the same holds, and images don't share rows; NCHW tiles
// of whole images share nothing).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common/dispatch_log.h"
#include "sepconv_cpu_common.h"
#include "sepconv_cpu_tiles.h"

namespace xsep::cpu {
namespace {

constexpr int64_t kPartialBytes = 64 << 20;  // cap on the grad_pw partials' memory

struct WantedGrads {
  bool x, dw, pw, bias;
};

template <typename scalar_t>
void backward_tiles(const at::Tensor& grad_out, const at::Tensor& x, const AccWeights& w, const SepConvGeometry& g,
                    bool nhwc, Activation act, WantedGrads want, at::Tensor& gx_acc, at::Tensor& gdw_acc,
                    at::Tensor& gpw_acc) {
  using acc_t = acc_type<scalar_t>;
  constexpr bool kDirectGrad = std::is_same_v<scalar_t, acc_t>;  // dY readable as acc_t in place
  const auto acc_opts = x.options().dtype(scalar_type_of<acc_t>());
  const bool want_dz = want.x || want.dw;
  // Z (pre-activation) is recomputed for grad_pw, and for dZ's activation derivative.
  const bool want_z = want.pw || (want_dz && act != Activation::kNone);
  const int64_t min_rows = want.x ? std::max<int64_t>(1, ((g.kh - 1) * g.dh) / g.sh) : 1;
  const int64_t row_bytes =
      g.Wo * (g.Cmid * (int64_t(want_z) + int64_t(want_dz)) + (kDirectGrad ? 0 : g.Cout)) * int64_t(sizeof(acc_t));
  // Two waves, each with a tile for every thread.
  const TilePlan plan = make_tile_plan(g, row_bytes, min_rows, /*across_images=*/nhwc, 2 * at::get_num_threads());
  if (dispatch_log_active()) {
    log_dispatch("separable_conv2d_backward", std::string("backward cpu ") + dtype_name(x.scalar_type()) +
                                                  (nhwc ? " channels_last (" : " nchw (") + plan.describe() + ")");
  }
  std::vector<int64_t> waves[2];
  for (int64_t t = 0; t < plan.count; ++t) waves[plan.tile(t, g).wave].push_back(t);

  const int64_t pw_bytes = g.Cout * g.Cmid * int64_t(sizeof(acc_t));
  const int64_t threads = at::get_num_threads();
  const int64_t groups = std::max<int64_t>(
      1, std::min({threads, int64_t(waves[0].size()),
                   want.pw ? std::max<int64_t>(1, kPartialBytes / pw_bytes) : threads}));
  at::Tensor gpw_parts = want.pw ? at::zeros({groups, g.Cout, g.Cmid}, acc_opts) : at::Tensor();
  at::Tensor gdw_parts = want.dw ? at::zeros({groups, g.Cmid * g.kh * g.kw}, acc_opts) : at::Tensor();

  const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
  const scalar_t* dy_ptr = grad_out.const_data_ptr<scalar_t>();
  const acc_t* dw = w.dw.const_data_ptr<acc_t>();
  const bool padded_planes = all_finite(w.dw);  // see depthwise_tile_nchw
  acc_t* gx_ptr = want.x ? gx_acc.mutable_data_ptr<acc_t>() : nullptr;
  // NCHW tiles of several images gather their dY blocks side by side into the buffer.
  const bool dy_in_place = kDirectGrad && plan.images == 1;

  for (const std::vector<int64_t>& wave : waves) {
    const int64_t wave_tiles = static_cast<int64_t>(wave.size());
    at::parallel_for(0, groups, 1, [&](int64_t group_begin, int64_t group_end) {
      const int64_t P_max = plan.max_pixels(g);
      at::Tensor z_buf = want_z ? at::empty({P_max * g.Cmid}, acc_opts) : at::Tensor();
      at::Tensor dz_buf = want_dz ? at::empty({P_max * g.Cmid}, acc_opts) : at::Tensor();
      at::Tensor dy_buf = dy_in_place ? at::Tensor() : at::empty({P_max * g.Cout}, acc_opts);
      for (int64_t group = group_begin; group < group_end; ++group) {
        at::Tensor gpw_part = want.pw ? gpw_parts[group] : at::Tensor();
        acc_t* gdw_part = want.dw ? gdw_parts[group].mutable_data_ptr<acc_t>() : nullptr;
        for (int64_t i = group * wave_tiles / groups; i < (group + 1) * wave_tiles / groups; ++i) {
          const Tile tile = plan.tile(wave[i], g);
          const int64_t image_pixels = tile.rows * g.Wo, P = image_pixels * tile.images;
          // NCHW tiles: rows of one image, or whole images (r0 = 0), each image's block of P.
          const int64_t n = tile.row0 / g.Ho, r0 = tile.row0 % g.Ho;
          // dY tile: NCHW (Cout x P), an image's rows Ho*Wo apart (blocks gathered side by side);
          // NHWC (P x Cout), contiguous.
          const auto dy_image = [&](int64_t j) {
            return matrix(dy_ptr + (n + j) * g.Cout * g.Ho * g.Wo + r0 * g.Wo, g.Cout, image_pixels, g.Ho * g.Wo);
          };
          at::Tensor dy = nhwc ? matrix(dy_ptr + tile.row0 * g.Wo * g.Cout, P, g.Cout, g.Cout) : dy_image(0);
          if (!dy_in_place) {
            at::Tensor converted = nhwc ? matrix(dy_buf.mutable_data_ptr<acc_t>(), P, g.Cout, g.Cout)
                                        : matrix(dy_buf.mutable_data_ptr<acc_t>(), g.Cout, P, P);
            if (nhwc) {
              converted.copy_(dy);
            } else {
              for (int64_t j = 0; j < tile.images; ++j)
                converted.narrow(1, j * image_pixels, image_pixels).copy_(dy_image(j));
            }
            dy = converted;
          }
          const auto x_image = [&](int64_t j) { return x_ptr + (n + j) * g.C * g.H * g.W; };
          const auto gx_image = [&](int64_t j) { return want.x ? gx_ptr + (n + j) * g.C * g.H * g.W : nullptr; };
          acc_t* z = want_z ? z_buf.mutable_data_ptr<acc_t>() : nullptr;
          if (want_z) {  // Z before the activation, rounded as the unfused op stores it
            if (nhwc) {
              depthwise_tile_nhwc(g, x_ptr, dw, tile.row0, tile.rows, z);
            } else {
              depthwise_tile_nchw(g, x_image(0), tile.images, dw, r0, tile.rows, z, P, padded_planes);
            }
            round_like_input<scalar_t>(z, P * g.Cmid);
          }
          // dZ (of the activation's input) before Z is overwritten by the activation below.
          acc_t* dz = want_dz ? dz_buf.mutable_data_ptr<acc_t>() : nullptr;
          if (want_dz) {
            if (nhwc) {
              at::Tensor dz_tile = matrix(dz, P, g.Cmid, g.Cmid);
              at::mm_out(dz_tile, dy, w.pw);
            } else {
              at::Tensor dz_tile = matrix(dz, g.Cmid, P, P);
              at::mm_out(dz_tile, w.pw.t(), dy);
            }
            round_like_input<scalar_t>(dz, P * g.Cmid);
            backprop_activation<scalar_t>(act, z, dz, P * g.Cmid);
          }
          if (want.pw) {  // grad_pw += dY . act(Z)^T
            activate_like_input<scalar_t>(act, z, P * g.Cmid);
            if (nhwc) {
              gpw_part.addmm_(dy.t(), matrix(z, P, g.Cmid, g.Cmid));
            } else {
              gpw_part.addmm_(dy, matrix(z, g.Cmid, P, P).t());
            }
          }
          if (!want_dz) continue;
          if (nhwc) {
            if (want.dw) depthwise_weight_grad_tile_nhwc(g, x_ptr, dz, tile.row0, tile.rows, gdw_part);
            if (want.x) depthwise_transpose_tile_nhwc(g, dz, dw, tile.row0, tile.rows, gx_ptr);
          } else {
            for (int64_t j = 0; j < tile.images; ++j) {
              const acc_t* dz_image = dz + j * image_pixels;
              if (g.sh == 1 && g.sw == 1 && padded_planes) {
                depthwise_backward_tile_nchw_stride1(g, x_image(j), dz_image, P, dw, r0, tile.rows, gdw_part,
                                                     gx_image(j));
              } else {
                if (want.dw) depthwise_weight_grad_tile_nchw(g, x_image(j), dz_image, P, r0, tile.rows, gdw_part);
                if (want.x) depthwise_transpose_tile_nchw(g, dz_image, P, dw, r0, tile.rows, gx_image(j));
              }
            }
          }
        }
      }
    });
  }
  // Fixed-order sums of the group partials.
  if (want.pw) {
    gpw_acc = gpw_parts[0].clone();
    for (int64_t group = 1; group < groups; ++group) gpw_acc.add_(gpw_parts[group]);
  }
  if (want.dw) {
    gdw_acc = gdw_parts[0].clone();
    for (int64_t group = 1; group < groups; ++group) gdw_acc.add_(gdw_parts[group]);
    gdw_acc = nhwc ? gdw_acc.view({g.kh * g.kw, g.Cmid}).t().contiguous() : gdw_acc;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> separable_conv2d_backward_cpu(
    const at::Tensor& grad_out_in, const at::Tensor& x_in, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
    c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
    c10::string_view intermediate_activation, std::array<bool, 4> output_mask) {
  const char* fn = "separable_conv2d_backward";
  const Activation act = parse_activation(fn, intermediate_activation);
  const SepConvGeometry g =
      check_separable_conv2d_args(fn, x_in, dw_weight, pw_weight, std::nullopt, stride, padding, dilation);
  TORCH_CHECK_VALUE(x_in.device().is_cpu(), fn, ": the CPU kernel got x on ", x_in.device());
  check_grad_out(fn, g, grad_out_in, x_in);
  const WantedGrads want{output_mask[0], output_mask[1], output_mask[2], output_mask[3]};
  const at::MemoryFormat fmt = output_memory_format(x_in);
  const bool nhwc = fmt == at::MemoryFormat::ChannelsLast;
  const auto not_wanted = [&] { return at::empty({0}, x_in.options()); };

  at::Tensor grad_x, grad_dw, grad_pw, grad_bias;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x_in.scalar_type(), "separable_conv2d_backward_cpu", [&] {
    const auto acc = scalar_type_of<acc_type<scalar_t>>();
    at::Tensor gx_acc, gdw_acc, gpw_acc;
    if (want.x) gx_acc = at::empty(x_in.sizes(), x_in.options().dtype(acc), fmt).zero_();
    if (grad_out_in.numel() > 0 && g.C > 0) {
      const at::Tensor x = x_in.contiguous(fmt);
      const at::Tensor grad_out = grad_out_in.contiguous(fmt);
      backward_tiles<scalar_t>(grad_out, x, to_acc_weights(dw_weight, pw_weight, g, nhwc, acc), g, nhwc, act, want,
                               gx_acc, gdw_acc, gpw_acc);
    }
    grad_x = want.x ? gx_acc.to(x_in.scalar_type()) : not_wanted();
    grad_dw = !want.dw ? not_wanted()
              : gdw_acc.defined() ? like_weight(gdw_acc.view({g.Cmid, 1, g.kh, g.kw}), dw_weight)
                                  : at::zeros_like(dw_weight);
    grad_pw = !want.pw ? not_wanted()
              : gpw_acc.defined() ? like_weight(gpw_acc.view({g.Cout, g.Cmid, 1, 1}), pw_weight)
                                  : at::zeros_like(pw_weight);
    grad_bias = want.bias ? grad_out_in.sum({0, 2, 3}, false, acc).to(x_in.scalar_type()) : not_wanted();
  });
  return {grad_x, grad_dw, grad_pw, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(xsep, CPU, m) { m.impl("separable_conv2d_backward", separable_conv2d_backward_cpu); }

}  // namespace xsep::cpu
