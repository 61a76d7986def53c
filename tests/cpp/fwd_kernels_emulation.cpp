// The forward kernels (csrc/kernels/sepconv_fwd_{resident,halo}_kernel.cuh, sepconv_fwd_kernel.cuh)
// run on the host through tests/cpp/cuda_host_emulation.h and compared with a direct fp64 forward
// of the same (rounded) inputs; the output is poisoned with NaN first, so an unwritten element
// fails. The resident and tiled kernels have passed on the H100, so they also check the emulation;
// the halo kernel had not run anywhere before. fp16, bf16, fp32 on TF32 tensor cores and exact
// fp32 (FFMA); 3x3 (the fixed-size path) and 5x5 (the run-time-size path), stride 2 with
// asymmetric padding, dilation, ELU between the convolutions, depth multiplier 2, channels not a
// multiple of 8, both memory formats. Prints one line per run; exits 0 when all agree.
#include <cmath>
#include <random>

#include "cuda_host_emulation.h"  // first: it redefines the CUDA built-ins the kernels use
#include "emulation_inputs.h"
#include "sepconv_fwd_halo_kernel.cuh"
#include "sepconv_fwd_kernel.cuh"

using xsep::Activation;
using xsep::Math;

namespace {

struct Case {
  const char* name;
  int N, C, H, W, Cout, M, k, stride, dil, pt, pb, pl, pr;
  Activation act;
};

// The resident kernel in its default form (two weight chunks in flight, one CTA per pixel tile),
// with three chunks (XSEP_FWD_STAGES=3), and with the output channels split over two CTAs (as
// resident_cout_parts chooses for small grids).
// (XSEP_FWD_PIXELS=64 | 128: 16-bit channels_last 3x3 only, as the launcher takes them.)
enum class Kernel { kResident, kResident3Stages, kResidentSplit, kResident64, kResident128, kHalo, kTiled };
const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kResident:
      return "resident";
    case Kernel::kResident3Stages:
      return "resident-3stage";
    case Kernel::kResidentSplit:
      return "resident-split";
    case Kernel::kResident64:
      return "resident-64px";
    case Kernel::kResident128:
      return "resident-128px";
    case Kernel::kHalo:
      return "halo";
    default:
      return "tiled";
  }
}

template <typename T, Math kMath>
const char* mode_name() {
  if constexpr (std::is_same_v<T, __half>) return "fp16";
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return "bf16";
  return kMath == Math::kTensorCore ? "fp32-tf32" : "fp32";
}

// The kernel variant the launcher would pick for this kernel size and layout.
template <typename T, Math kMath, bool kCL, int KH, int KW>
void launch(Kernel which, const xsep::SepConvParams& p) {
  using xsep_emulation::run_grid;
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const unsigned pixel_tiles = static_cast<unsigned>((pixels + 31) / 32);
  if (which == Kernel::kResident || which == Kernel::kResidentSplit) {
    using Traits = xsep::ResidentFwdTraits<T, kMath, kCL, KH, KW, 32>;
    const unsigned parts = which == Kernel::kResidentSplit ? 2 : 1;
    run_grid(
        dim3(pixel_tiles, parts), Traits::kThreads, [&] { xsep::sepconv_fwd_resident_kernel<Traits>(p); },
        xsep::ResidentFwdLayout<Traits>::bytes(p.Cmid));
  } else if (which == Kernel::kResident64 || which == Kernel::kResident128) {
    if constexpr (sizeof(T) == 2 && kCL && KH == 3) {
      auto run = [&](auto traits) {
        using Traits = decltype(traits);
        run_grid(
            dim3(static_cast<unsigned>((pixels + Traits::BM - 1) / Traits::BM)), Traits::kThreads,
            [&] { xsep::sepconv_fwd_resident_kernel<Traits>(p); }, xsep::ResidentFwdLayout<Traits>::bytes(p.Cmid));
      };
      if (which == Kernel::kResident64) {
        run(xsep::ResidentFwdTraits<T, kMath, true, 3, 3, 64>{});
      } else {
        run(xsep::ResidentFwdTraits<T, kMath, true, 3, 3, 128>{});
      }
    }
  } else if (which == Kernel::kResident3Stages) {
    using Traits = xsep::ResidentFwdTraits<T, kMath, kCL, KH, KW, 32, 3>;
    run_grid(
        dim3(pixel_tiles), Traits::kThreads, [&] { xsep::sepconv_fwd_resident_kernel<Traits>(p); },
        xsep::ResidentFwdLayout<Traits>::bytes(p.Cmid));
  } else if (which == Kernel::kHalo) {
    if constexpr (kCL) {
      using Traits = xsep::ResidentFwdTraits<T, kMath, true, KH, KW, xsep::kHaloTile * xsep::kHaloTile>;
      run_grid(
          dim3(static_cast<unsigned>(xsep::halo_tile_count(p.N, p.Ho, p.Wo))), Traits::kThreads,
          [&] { xsep::sepconv_fwd_halo_kernel<Traits>(p); }, xsep::HaloFwdLayout<Traits>::bytes(p));
    }
  } else {
    using Traits = xsep::FwdTraits<T, kMath, kCL, KH, KW>;
    run_grid(dim3(static_cast<unsigned>((pixels + Traits::BM - 1) / Traits::BM),
                  static_cast<unsigned>((p.Cout + Traits::BN - 1) / Traits::BN)),
             Traits::kThreads, [&] { xsep::sepconv_fwd_kernel<Traits>(p); });
  }
}

template <typename T, Math kMath>
bool run_case(const Case& c, Kernel which, bool channels_last, std::mt19937& rng, double tol) {
  const int K = c.k;
  ForwardCall<T> call(c.N, c.C, c.H, c.W, c.M, c.Cout, K, c.stride, c.dil, c.pt, c.pb, c.pl, c.pr, c.act, channels_last,
                      rng);
  xsep::SepConvParams& p = call.p;
  p.allow_tf32 = kMath == Math::kTensorCore;

  if (K == 3) {
    channels_last ? launch<T, kMath, true, 3, 3>(which, p) : launch<T, kMath, false, 3, 3>(which, p);
  } else {
    channels_last ? launch<T, kMath, true, 0, 0>(which, p) : launch<T, kMath, false, 0, 0>(which, p);
  }

  bool unwritten = false;
  const double worst = call.error(&unwritten);
  const bool ok = !unwritten && worst <= tol;
  std::printf("%s %-9s %-18s %-9s %-13s relative error %.2e%s\n", ok ? "ok    " : "FAILED", kernel_name(which), c.name,
              mode_name<T, kMath>(), channels_last ? "channels_last" : "nchw", worst,
              unwritten ? "  (unwritten elements)" : "");
  return ok;
}

}  // namespace

int main() {
  const Case cases[] = {
      {"partial_3x3", 2, 40, 13, 11, 136, 1, 3, 1, 1, 1, 1, 1, 1, Activation::kNone},
      {"deep_split", 1, 200, 5, 6, 300, 1, 3, 1, 1, 1, 1, 1, 1, Activation::kNone},  // 7 chunks, 3 Cout tiles
      {"s2_asymmetric_5x5", 1, 24, 17, 23, 40, 1, 5, 2, 1, 1, 2, 1, 2, Activation::kNone},
      {"d2_elu", 1, 16, 20, 21, 32, 1, 3, 1, 2, 2, 2, 2, 2, Activation::kElu},
      {"mult2_odd_channels", 2, 13, 9, 10, 20, 2, 3, 1, 1, 1, 1, 1, 1, Activation::kNone},
  };
  // The output-channel split: every tile in exactly one part, no part without a tile, and only
  // where the pixel tiles fill at most half a wave.
  for (int cout = 1; cout <= 2100; cout += 37)
    for (int64_t pixel_tiles : {1, 7, 50, 100, 132, 133, 400})
      for (int64_t wave : {132, 264, 396}) {
        const int parts = xsep::resident_cout_parts(pixel_tiles, wave, cout, 128);
        if (parts < 1 || (2 * pixel_tiles > wave && parts != 1) || pixel_tiles * parts > wave + pixel_tiles)
          return std::printf("FAILED: %d Cout parts for %lld pixel tiles, wave %lld\n", parts,
                             static_cast<long long>(pixel_tiles), static_cast<long long>(wave)),
                 1;
        int covered = 0;
        for (int part = 0; part < parts; ++part) {
          int begin = 0, end = 0;
          xsep::resident_cout_range<xsep::ResidentFwdTraits<__half, Math::kTensorCore, true, 3, 3, 32>>(
              cout, part, parts, &begin, &end);
          if (begin != covered || end <= begin || (end != cout && (end - begin) % 128 != 0))
            return std::printf("FAILED: Cout part %d of %d is [%d, %d) for Cout %d\n", part, parts, begin, end, cout),
                   1;
          covered = end;
        }
        if (covered != cout) return std::printf("FAILED: Cout parts cover %d of %d\n", covered, cout), 1;
      }
  std::printf("ok     output-channel split plans\n");

  std::mt19937 rng(4321);
  int failed = 0, count = 0;
  auto all_modes = [&](const Case& c, Kernel which, bool cl) {
    // Tolerances: a few units of each mode's rounding (16-bit output, TF32 operands); a wrong
    // index or an unwritten element is O(1).
    failed += !run_case<__half, Math::kTensorCore>(c, which, cl, rng, 5e-3);
    failed += !run_case<__nv_bfloat16, Math::kTensorCore>(c, which, cl, rng, 3e-2);
    failed += !run_case<float, Math::kTensorCore>(c, which, cl, rng, 5e-3);
    failed += !run_case<float, Math::kFFMA>(c, which, cl, rng, 1e-5);
    count += 4;
  };
  for (const Case& c : cases) {
    if (!case_selected(c.name)) continue;  // XSEP_EMULATION_CASES
    const bool halo_applies = c.M == 1 && c.C % 8 == 0;  // as sepconv_fwd_launch.cuh checks (16-bit and fp32)
    for (bool cl : {true, false}) {
      all_modes(c, Kernel::kResident, cl);
      all_modes(c, Kernel::kTiled, cl);
    }
    all_modes(c, Kernel::kResident3Stages, true);
    all_modes(c, Kernel::kResidentSplit, true);
    if (c.k == 3) {
      for (Kernel bm : {Kernel::kResident64, Kernel::kResident128}) {
        failed += !run_case<__half, Math::kTensorCore>(c, bm, true, rng, 5e-3);
        failed += !run_case<__nv_bfloat16, Math::kTensorCore>(c, bm, true, rng, 3e-2);
        count += 2;
      }
    }
    if (halo_applies) all_modes(c, Kernel::kHalo, true);
  }
  std::printf("%d runs, %d failed\n", count, failed);
  return failed == 0 ? 0 : 1;
}
