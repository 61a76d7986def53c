// The wgmma forward (csrc/kernels/sepconv_fwd_wgmma_kernel.cuh) run on the host through
// tests/cpp/cuda_host_emulation.h and the warpgroup-MMA stand-in of tests/cpp/wgmma_emulation.h,
// compared with a direct fp64 forward of the same (rounded) inputs; the output is poisoned with
// NaN first, so an unwritten element fails. fp16 and bf16 with 128 pixels per CTA (two
// warpgroups) and 64 (one), fp32 on TF32 with 64; the output channels in one CTA or split over two; partial pixel tiles, a partial
// channel chunk, Cout below one tile and one tile plus 8, stride 2 with asymmetric padding,
// dilation, ELU between the convolutions. Needs CuTe's headers (-I of the nvidia-cutlass wheel's
// include directory). Prints one line per run; exits 0 when all agree.
#include <cmath>
#include <random>

#include "cuda_host_emulation.h"  // first: it redefines the CUDA built-ins the kernels use
#include "emulation_inputs.h"
#include "wgmma_emulation.h"      // before the kernel: CuTe's shared-memory addresses
#include "sepconv_fwd_wgmma_kernel.cuh"

using xsep::Activation;

namespace {

struct Case {
  const char* name;
  int N, C, H, W, Cout, stride, dil, pt, pb, pl, pr;
  Activation act;
};

template <typename T>
const char* mode_name() {
  return std::is_same_v<T, __half> ? "fp16" : std::is_same_v<T, float> ? "tf32" : "bf16";
}

template <typename T, int BM>
bool run_case(const Case& c, int parts, std::mt19937& rng, double tol) {
  using Traits = xsep::WgmmaFwdTraits<T, BM>;
  const int K = 3;
  const int Ho = conv_out_extent(c.H, c.pt, c.pb, K, c.dil, c.stride);
  const int Wo = conv_out_extent(c.W, c.pl, c.pr, K, c.dil, c.stride);
  const auto x = random_rounded<T>(static_cast<size_t>(c.N) * c.C * c.H * c.W, 1.0, rng);
  const auto wdw = random_rounded<T>(static_cast<size_t>(c.C) * K * K, 1.0 / K, rng);
  const auto wpw = random_rounded<T>(static_cast<size_t>(c.Cout) * c.C, 1.0 / std::sqrt(c.C), rng);
  const auto bias = random_rounded<T>(static_cast<size_t>(c.Cout), 1.0, rng);
  auto strides = [](int ch, int h, int w, int64_t* s) {  // channels_last
    s[0] = static_cast<int64_t>(h) * w * ch, s[1] = 1, s[2] = static_cast<int64_t>(w) * ch, s[3] = ch;
  };
  xsep::SepConvParams p{};
  p.N = c.N, p.C = c.C, p.H = c.H, p.W = c.W, p.M = 1, p.Cmid = c.C, p.Cout = c.Cout;
  p.kh = p.kw = K, p.sh = p.sw = c.stride, p.pt = c.pt, p.pl = c.pl, p.dh = p.dw = c.dil, p.Ho = Ho, p.Wo = Wo;
  strides(c.C, c.H, c.W, p.x_stride);
  strides(c.Cout, Ho, Wo, p.y_stride);
  std::vector<T> y(static_cast<size_t>(c.N) * c.Cout * Ho * Wo, static_cast<T>(NAN));
  p.x = x.dev.data(), p.dw_weight = wdw.dev.data(), p.pw_weight = wpw.dev.data(), p.bias = bias.dev.data();
  p.y = y.data();
  p.activation = c.act, p.channels_last = true, p.allow_tf32 = true;
  if (!xsep::depthwise_vec_applies<Traits>(p) || !xsep::output_vec_applies<Traits>(p))
    xsep_emulation::die("a case the wgmma launcher would not take");

  const int64_t pixels = static_cast<int64_t>(p.N) * Ho * Wo;
  xsep_emulation::run_grid(
      dim3(static_cast<unsigned>((pixels + BM - 1) / BM), static_cast<unsigned>(parts)), Traits::kThreads,
      [&] { xsep::sepconv_fwd_wgmma_kernel<Traits>(p); }, xsep::WgmmaFwdLayout<Traits>::bytes(p.Cmid));

  bool unwritten = false;
  const double worst = forward_error(p, x.ref, wdw.ref, wpw.ref, bias.ref, y, &unwritten);
  const bool ok = !unwritten && worst <= tol;
  std::printf("%s wgmma-%-3d split %d %-14s %s relative error %.2e%s\n", ok ? "ok    " : "FAILED", BM, parts, c.name,
              mode_name<T>(), worst, unwritten ? "  (unwritten elements)" : "");
  return ok;
}

}  // namespace

int main() {
  const Case cases[] = {
      {"partial", 2, 40, 7, 9, 24, 1, 1, 1, 1, 1, 1, Activation::kNone},          // 126 pixels, 40 of 64 channels
      {"s2_asymmetric", 1, 16, 17, 23, 136, 2, 1, 0, 1, 0, 1, Activation::kNone},  // Cout one tile + 8
      {"d2_elu", 1, 24, 12, 13, 40, 1, 2, 2, 2, 2, 2, Activation::kElu},
      {"deep", 1, 200, 6, 7, 264, 1, 1, 1, 1, 1, 1, Activation::kNone},  // 7 chunks, 3 Cout tiles
  };
  std::mt19937 rng(8765);
  int failed = 0, count = 0;
  for (const Case& c : cases) {
    for (int parts : {1, 2}) {
      // Tolerances: a few units of each type's rounding of Z and y; a wrong index is O(1).
      failed += !run_case<__half, 128>(c, parts, rng, 5e-3);
      failed += !run_case<__nv_bfloat16, 128>(c, parts, rng, 3e-2);
      count += 2;
    }
    failed += !run_case<__half, 64>(c, 1, rng, 5e-3);
    failed += !run_case<__nv_bfloat16, 64>(c, 1, rng, 3e-2);
    failed += !run_case<float, 64>(c, 1, rng, 5e-3);  // TF32 (64 pixels only)
    failed += !run_case<float, 64>(c, 2, rng, 5e-3);
    count += 4;
  }
  std::printf("%d runs, %d failed\n", count, failed);
  return failed == 0 ? 0 : 1;
}
