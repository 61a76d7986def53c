// The streamed wgmma forward (csrc/kernels/sepconv_fwd_streamed_kernel.cuh: producer warps compute
// the depthwise chunks into a ring while consumer warpgroups multiply them) run on the host through
// tests/cpp/cuda_host_emulation.h and the warpgroup-MMA stand-in of tests/cpp/wgmma_emulation.h,
// against a direct fp64 forward of the same (rounded) inputs; the output is poisoned with NaN first,
// so an unwritten element fails. fp16, bf16 and fp32 on TF32, 128 and 192 output channels per CTA; rings of 2 (every chunk waits for its
// slot to be freed) to 8 slots, more chunks than slots and fewer; partial pixel and channel tiles,
// Cout of one tile plus 8, stride 2 with asymmetric padding, dilation, padding wider than the window,
// ELU between the convolutions. Each thread of a CTA is a std::thread, so producers and consumers
// interleave as the scheduler lets them: a missing wait or release shows as a wrong result, a hang,
// or (under -fsanitize=thread) a race. Needs CuTe's headers. Prints one line per run; exits 0 when
// all agree.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cuda_host_emulation.h"  // first: it redefines the CUDA built-ins the kernels use
#include "emulation_inputs.h"
#include "wgmma_emulation.h"      // before the kernel: CuTe's shared-memory addresses
#include "sepconv_fwd_streamed_kernel.cuh"

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

template <typename T, int BN = 128>
bool run_case(const Case& c, int stages, int ctas, std::mt19937& rng, double tol) {
  using Traits = xsep::StreamedFwdTraits<T, BN>;
  ForwardCall<T> call(c.N, c.C, c.H, c.W, /*M=*/1, c.Cout, /*K=*/3, c.stride, c.dil, c.pt, c.pb, c.pl, c.pr, c.act,
                      /*channels_last=*/true, rng);
  xsep::SepConvParams& p = call.p;
  p.allow_tf32 = true;
  if (!xsep::depthwise_vec_applies<Traits>(p) || !xsep::output_vec_applies<Traits>(p))
    xsep_emulation::die("a case the streamed launcher would not take");

  // The workspace as the launcher fills it: both pack kernels, on small grids (their stride loops).
  std::vector<uint4> workspace((xsep::streamed_workspace_bytes<Traits>(p.Cout, p.Cmid) + 15) / 16);
  auto* bytes = reinterpret_cast<unsigned char*>(workspace.data());
  xsep_emulation::run_grid(dim3(3), 64,
                           [&] { xsep::sepconv_fwd_wgmma_pack_kernel<Traits>(p, reinterpret_cast<T*>(bytes)); });
  auto* dw = reinterpret_cast<float*>(bytes + xsep::streamed_dw_offset_bytes<Traits>(p.Cout, p.Cmid));
  xsep_emulation::run_grid(dim3(2), 32, [&] { xsep::sepconv_fwd_dw_pack_kernel<T, xsep::streamed_dw_lanes<Traits>()>(p, dw); });
  p.workspace = workspace.data();
  // Persistent CTAs: `ctas` of them (at most one per tile) take the tiles in turn.
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int64_t tiles = (pixels + Traits::BM - 1) / Traits::BM * ((p.Cout + Traits::BN - 1) / Traits::BN);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(tiles, ctas));
  xsep_emulation::run_grid(
      dim3(grid), Traits::kThreads, [&] { xsep::sepconv_fwd_streamed_kernel<Traits>(p, stages); },
      xsep::StreamedFwdLayout<Traits>::bytes(stages));

  bool unwritten = false;
  const double worst = call.error(&unwritten);
  const bool ok = !unwritten && worst <= tol;
  std::printf("%s streamed-%d stages %d ctas %d/%lld %-14s %s relative error %.2e%s\n", ok ? "ok    " : "FAILED", BN,
              stages, grid, static_cast<long long>(tiles), c.name, mode_name<T>(), worst,
              unwritten ? "  (unwritten elements)" : "");
  return ok;
}

}  // namespace

int main() {
  const Case cases[] = {
      {"partial", 2, 40, 7, 9, 24, 1, 1, 1, 1, 1, 1, Activation::kNone},          // 126 pixels, 40 of 64 channels
      {"s2_asymmetric", 1, 16, 17, 23, 136, 2, 1, 0, 1, 0, 1, Activation::kNone},  // Cout one tile + 8
      {"d2_elu", 1, 24, 12, 13, 40, 1, 2, 2, 2, 2, 2, Activation::kElu},
      {"deep", 1, 200, 6, 7, 264, 1, 1, 1, 1, 1, 1, Activation::kNone},  // 7 chunks, 3 (2) Cout tiles
      // Padding of 3: the outer output rows and columns read nothing but padding (no tap bits).
      {"wide_padding", 1, 16, 5, 6, 24, 1, 1, 3, 2, 3, 3, Activation::kElu},
      {"two_tiles", 1, 72, 13, 11, 32, 1, 1, 1, 1, 1, 1, Activation::kNone},  // 143 pixels: a second, partial tile
      {"many_tiles", 2, 24, 17, 17, 40, 1, 1, 1, 1, 1, 1, Activation::kNone},  // 5 pixel tiles: CTAs take 2-3
  };
  std::mt19937 rng(4321);
  int failed = 0, count = 0;
  for (const Case& c : cases) {
    // Tolerances: a few units of each type's rounding of Z and y; a wrong index is O(1).
    // CTAs: one per tile, or fewer (each then takes several tiles, the ring running on).
    failed += !run_case<__half>(c, 2, 1, rng, 5e-3);
    failed += !run_case<__nv_bfloat16>(c, 3, 1000, rng, 3e-2);
    failed += !run_case<__nv_bfloat16>(c, 8, 2, rng, 3e-2);
    failed += !run_case<float>(c, 5, 2, rng, 5e-3);  // TF32
    // 192 output channels per CTA: Cout below one tile, one tile + 8 past 128, two tiles.
    failed += !run_case<__nv_bfloat16, 192>(c, 4, 1, rng, 3e-2);
    failed += !run_case<float, 192>(c, 2, 1000, rng, 5e-3);
    count += 6;
  }
  std::printf("%d runs, %d failed\n", count, failed);
  return failed == 0 ? 0 : 1;
}
