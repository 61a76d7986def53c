// The backward kernels run on the host through tests/cpp/cuda_host_emulation.h, with the real
// launch plan (plan_backward) and the kernel choice the launcher makes, and compared with a direct
// fp64 backward of the same (rounded) inputs: grad_x (every element written), grad_dw, grad_pw,
// grad_bias. Both kernel sets: the first kernels (sepconv_bwd_kernel.cuh; they have passed on the
// H100, so they also check the emulation) and the staged ones (sepconv_bwd_*_staged_kernel.cuh,
// XSEP_BWD_KERNEL=staged; the staged pw-gradient kernel only where the multiplier is 1, as the
// launcher chooses). fp16, bf16 and fp32 on TF32 tensor cores; partial Cout chunks, a partial
// channel chunk, depth multiplier 2, stride 2, asymmetric and dilated padding, ELU and ReLU between
// the convolutions. Built with CuTe (-DXSEP_WITH_CUTE and its include path), also the input-gradient
// and pw-gradient kernels with their GEMMs on the warpgroup-MMA stand-in (XSEP_BWD_KERNEL=wgmma:
// fp16, bf16; the pw-gradient one where the multiplier is 1, the staged one elsewhere), and the
// input-gradient kernels with 128 channels per CTA (XSEP_BWD_CHANNELS=128), and the resident
// pw-gradient kernel (sepconv_bwd_pw_resident_kernel.cuh, fp16, bf16, where the multiplier is 1:
// its own split plan, one slice or several, 64 or 128 output channels per warpgroup, splits of
// several stages with a partial last one), and the wgmma input kernel with 256 channels per CTA
// (XSEP_BWD_CHANNELS=256, bf16). The 128-channel input kernels run with their phase clocks on
// (XSEP_PHASE_CLOCKS=1: every CTA's stamps checked). Prints one line per case and exits 0 when all
// agree.
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

// clang-format off: the order matters
#include "cuda_host_emulation.h"  // first: it redefines the CUDA built-ins the kernels use
#include "emulation_inputs.h"
#if defined(XSEP_WITH_CUTE)
#include "wgmma_emulation.h"  // before CuTe: its shared-memory addresses
#include "sepconv_bwd_input_wgmma.cuh"
#include "sepconv_bwd_pw_resident_kernel.cuh"
#include "sepconv_bwd_pw_wgmma.cuh"
#endif
#include "sepconv_bwd_input_staged_kernel.cuh"
#include "sepconv_bwd_kernel.cuh"
#include "sepconv_bwd_pw_staged_kernel.cuh"
// clang-format on

using xsep::Activation;

namespace {

struct Case {
  const char* name;
  int N, C, H, W, Cout, M, stride, dil, pt, pb, pl, pr;
  Activation act;
  bool newest_only = false;  // only the resident pw and 256-channel input kernels (what the case is for)
};

double act_fn(Activation a, double v) { return xsep::activate(a, v); }
double act_grad(Activation a, double v) { return xsep::activation_grad(a, v); }

// Largest |kernel - reference| over a tensor, relative to the reference's largest magnitude.
struct Compare {
  double worst = 0.0;
  bool unwritten = false;
  void add(double got, double want, double scale) {
    if (std::isnan(got)) unwritten = true;
    worst = std::max(worst, std::fabs(got - want) / scale);
  }
};

double max_abs(const std::vector<double>& v) {
  double m = 1e-30;
  for (double e : v) m = std::max(m, std::fabs(e));
  return m;
}

// The kernel sets: the first kernels, the staged ones, the staged ones with the wgmma dZ GEMM; and
// the last two with 128 depthwise channels per input-gradient CTA (XSEP_BWD_CHANNELS=128).
// And the wgmma input kernel with the resident pw-gradient kernel (kResident; the staged wgmma one
// where it does not apply).
// kWgmma256: the wgmma input kernel with 256 channels per CTA (XSEP_BWD_CHANNELS=256).
// kResident512: kResident with splits of at most 512 pixels, two CTAs per SM (XSEP_BWD_PW_PIXELS=512;
// Cout <= 128).
enum class Set { kFirst, kStaged, kWgmma, kStaged128, kWgmma128, kResident, kWgmma256, kResident512 };

// The staged input-gradient kernel with XSEP_PHASE_CLOCKS=1 (phase_clocks.cuh): every CTA a record,
// its stamps in the order of its phases. "" if so.
std::string phase_clock_trouble(const std::vector<unsigned long long>& records, size_t ctas) {
  for (size_t cta = 0; cta < ctas; ++cta) {
    const unsigned long long* r = records.data() + cta * xsep::kPhaseClockSlots;
    const unsigned long long* stamps = r + xsep::kClockStamps;
    if (r[xsep::kClockEndNs] == 0) return "a CTA without a record";
    const unsigned long long order[] = {r[xsep::kClockStart],           stamps[xsep::kBwdTablesDone],
                                        stamps[xsep::kBwdDzDone],       stamps[xsep::kBwdActivationDone],
                                        stamps[xsep::kBwdGradXDone],    stamps[xsep::kBwdGradDwDone],
                                        r[xsep::kClockEnd]};
    for (size_t i = 1; i < sizeof(order) / sizeof(order[0]); ++i)
      if (order[i] < order[i - 1] || order[i - 1] == 0) return "stamps out of their phases' order";
  }
  return "";
}

// The 128-channel input kernels (kStaged128, kWgmma128) run with their phase clocks on.
template <typename T>
bool run_case(const Case& c, Set set, std::mt19937& rng, double tol) {
  const bool staged = set != Set::kFirst;
  const int Cmid = c.C * c.M, K = 3;
  const int Ho = conv_out_extent(c.H, c.pt, c.pb, K, c.dil, c.stride);
  const int Wo = conv_out_extent(c.W, c.pl, c.pr, K, c.dil, c.stride);
  // Inputs rounded to T; the reference computes with exactly these values.
  const auto x = random_rounded<T>(static_cast<size_t>(c.N) * c.H * c.W * c.C, 1.0, rng);  // [n][h][w][c]
  const auto wdw = random_rounded<T>(static_cast<size_t>(Cmid) * 9, 1.0 / 3, rng);
  const auto wpw = random_rounded<T>(static_cast<size_t>(c.Cout) * Cmid, 1.0 / std::sqrt(Cmid), rng);
  const auto gy = random_rounded<T>(static_cast<size_t>(c.N) * Ho * Wo * c.Cout, 1.0, rng);  // channels_last
  const std::vector<double>&xr = x.ref, &wdwr = wdw.ref, &wpwr = wpw.ref, &gyr = gy.ref;
  auto X = [&](int n, int ch, int iy, int ix) {
    return xr[((static_cast<size_t>(n) * c.H + iy) * c.W + ix) * c.C + ch];
  };
  auto GY = [&](int n, int co, int oy, int ox) {
    return gyr[((static_cast<size_t>(n) * Ho + oy) * Wo + ox) * c.Cout + co];
  };

  // Reference: Z (pre-activation) and dZ per output pixel, then every gradient.
  std::vector<double> gx_ref(xr.size(), 0.0), gdw_ref(wdwr.size(), 0.0), gpw_ref(wpwr.size(), 0.0), gb_ref(c.Cout, 0.0);
  for (int n = 0; n < c.N; ++n)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox)
        for (int cm = 0; cm < Cmid; ++cm) {
          const int ch = cm / c.M;
          double z = 0.0;
          for (int t = 0; t < 9; ++t) {
            const int iy = oy * c.stride - c.pt + (t / 3) * c.dil, ix = ox * c.stride - c.pl + (t % 3) * c.dil;
            if (iy >= 0 && iy < c.H && ix >= 0 && ix < c.W) z += X(n, ch, iy, ix) * wdwr[cm * 9 + t];
          }
          double da = 0.0;
          for (int co = 0; co < c.Cout; ++co) {
            da += GY(n, co, oy, ox) * wpwr[static_cast<size_t>(co) * Cmid + cm];
            gpw_ref[static_cast<size_t>(co) * Cmid + cm] += GY(n, co, oy, ox) * act_fn(c.act, z);
          }
          const double dz = da * act_grad(c.act, z);
          for (int t = 0; t < 9; ++t) {
            const int iy = oy * c.stride - c.pt + (t / 3) * c.dil, ix = ox * c.stride - c.pl + (t % 3) * c.dil;
            if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
            gx_ref[((static_cast<size_t>(n) * c.H + iy) * c.W + ix) * c.C + ch] += wdwr[cm * 9 + t] * dz;
            gdw_ref[cm * 9 + t] += X(n, ch, iy, ix) * dz;
          }
        }
  for (int n = 0; n < c.N; ++n)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox)
        for (int co = 0; co < c.Cout; ++co) gb_ref[co] += GY(n, co, oy, ox);

  // The launch plan and parameters, as the CUDA glue builds them.
  xsep::SepConvBwdParams p{};
  xsep::SepConvParams& f = p.fwd;
  f.N = c.N, f.C = c.C, f.H = c.H, f.W = c.W, f.M = c.M, f.Cmid = Cmid, f.Cout = c.Cout;
  f.kh = f.kw = K, f.sh = f.sw = c.stride, f.pt = c.pt, f.pl = c.pl, f.dh = f.dw = c.dil, f.Ho = Ho, f.Wo = Wo;
  const int64_t xs[4] = {static_cast<int64_t>(c.H) * c.W * c.C, 1, static_cast<int64_t>(c.W) * c.C, c.C};
  const int64_t ys[4] = {static_cast<int64_t>(Ho) * Wo * c.Cout, 1, static_cast<int64_t>(Wo) * c.Cout, c.Cout};
  for (int d = 0; d < 4; ++d) f.x_stride[d] = xs[d], f.y_stride[d] = ys[d], p.gx_stride[d] = xs[d];
  f.x = x.dev.data(), f.dw_weight = wdw.dev.data(), f.pw_weight = wpw.dev.data(), f.bias = nullptr, f.y = nullptr;
  f.activation = c.act, f.channels_last = true, f.allow_tf32 = false;
  xsep::set_output_divisors(f);
  p.grad_y = gy.dev.data();
  std::vector<T> gx(xr.size(), static_cast<T>(NAN)), gdw(wdwr.size()), gpw(wpwr.size()), gb(c.Cout);
  p.grad_x = gx.data(), p.grad_dw = gdw.data(), p.grad_pw = gpw.data(), p.grad_bias = gb.data();
  if (!xsep::plan_backward(p, /*num_sms=*/4)) return std::printf("FAILED %s: no plan\n", c.name), false;
  const bool any_resident = set == Set::kResident || set == Set::kResident512;
  const bool resident = any_resident && xsep::resident_pw_wanted(p, 9, sizeof(T));
  if (any_resident && resident != (c.M == 1))
    return std::printf("FAILED %s: the resident pw kernel does not apply as expected\n", c.name), false;
  if (resident) {
    xsep::plan_resident_pw(p, /*num_sms=*/4,
                           set == Set::kResident512 ? xsep::kPwResidentTwoCtaPixels : xsep::kPwResidentMaxPixels);
    if (p.pw_resident_splits <= 0) return std::printf("FAILED %s: no resident pw plan\n", c.name), false;
  }
  std::vector<float> workspace(xsep::backward_workspace_floats(p), NAN);
  p.workspace = workspace.data();
  constexpr int kVec = 16 / sizeof(T);
  const bool wide = set == Set::kStaged128 || set == Set::kWgmma128;
  const bool wgmma = set == Set::kWgmma || set == Set::kWgmma128 || any_resident || set == Set::kWgmma256;
  // The input kernel's parameters, as the launcher sets them for its channel chunk.
  const int input_channels = set == Set::kWgmma256 ? 256 : wide ? 128 : xsep::kBwdInputChannels;
  xsep::SepConvBwdParams q = xsep::with_input_channels(p, input_channels);
  const bool pw_staged = staged && xsep::staged_pw_applies(p, 8, kVec);
  if (staged && (!xsep::staged_input_applies(q, 8, kVec) || pw_staged != (c.M == 1)))
    return std::printf("FAILED %s: the staged kernels do not apply as expected\n", c.name), false;

  using xsep_emulation::run_grid;
  using First = xsep::BwdKernelTraits<T, xsep::Math::kTensorCore, /*channels_last=*/true, 3, 3>;
  const dim3 input_grid(static_cast<unsigned>(q.dw_partials),
                        static_cast<unsigned>((c.C + q.channels_per_cta - 1) / q.channels_per_cta));
  const dim3 pw_grid(static_cast<unsigned>((Cmid + 63) / 64), static_cast<unsigned>((c.Cout + 127) / 128),
                     static_cast<unsigned>(p.pw_splits));
  const bool clocks = wide;
  std::vector<unsigned long long> records(
      clocks ? static_cast<size_t>(input_grid.x) * input_grid.y * xsep::kPhaseClockSlots : 0);
  q.fwd.phase_clocks = clocks ? records.data() : nullptr;
  auto run_input = [&](auto traits) {
    using Staged = decltype(traits);
    run_grid(
        input_grid, Staged::Tile::kThreads, [&] { xsep::sepconv_bwd_input_staged_kernel<Staged>(q); },
        sizeof(xsep::StagedInputShared<Staged>));
  };
  if (wgmma) {
#if defined(XSEP_WITH_CUTE)
    if constexpr (sizeof(T) == 2) {
      if (input_channels == 256)
        run_input(xsep::StagedInputTraits<T, true, 256>{});
      else
        wide ? run_input(xsep::StagedInputTraits<T, true, 128>{}) : run_input(xsep::StagedInputTraits<T, true>{});
    }
#endif
  } else if (staged) {
    wide ? run_input(xsep::StagedInputTraits<T, false, 128>{}) : run_input(xsep::StagedInputTraits<T>{});
  } else {
    run_grid(input_grid, First::InputTile::kThreads, [&] { xsep::sepconv_bwd_input_kernel<First>(p); });
  }
  const xsep::SepConvBwdParams pw = resident ? xsep::with_resident_pw(p) : p;
  if (resident) {
#if defined(XSEP_WITH_CUTE)
    if constexpr (sizeof(T) == 2) {
      auto run_resident = [&](auto traits) {
        using Traits = decltype(traits);
        const dim3 grid(static_cast<unsigned>((Cmid + 63) / 64), 1u, static_cast<unsigned>(pw.pw_splits));
        run_grid(
            grid, Traits::kThreads, [&] { xsep::sepconv_bwd_pw_resident_kernel<Traits>(pw); }, Traits::kSharedBytes);
      };
      if (set == Set::kResident512)
        run_resident(xsep::ResidentPwTraits<T, 64, xsep::kPwResidentTwoCtaPixels>{});
      else if (xsep::resident_pw_half(c.Cout) == 64)
        run_resident(xsep::ResidentPwTraits<T, 64>{});
      else
        run_resident(xsep::ResidentPwTraits<T, 128>{});
    }
#endif
  } else if (pw_staged && wgmma) {
#if defined(XSEP_WITH_CUTE)
    if constexpr (sizeof(T) == 2) {
      using Staged = xsep::StagedPwTraits<T, /*kWgmma=*/true>;
      run_grid(
          pw_grid, Staged::Tile::kThreads, [&] { xsep::sepconv_bwd_pw_staged_kernel<Staged>(p); },
          sizeof(xsep::StagedPwShared<Staged>));
    }
#endif
  } else if (pw_staged) {
    using Staged = xsep::StagedPwTraits<T>;
    run_grid(
        pw_grid, Staged::Tile::kThreads, [&] { xsep::sepconv_bwd_pw_staged_kernel<Staged>(p); },
        sizeof(xsep::StagedPwShared<Staged>));
  } else {
    run_grid(pw_grid, First::PwTile::kThreads, [&] { xsep::sepconv_bwd_pw_kernel<First>(p); });
  }

  // The partial sums, added in row order (the reduce kernel's grouping only regroups fp32 sums).
  const float* ws_dw = workspace.data();
  const float* ws_pw = ws_dw + p.dw_partials * Cmid * 9;
  const float* ws_b = ws_pw + static_cast<int64_t>(pw.pw_splits) * c.Cout * Cmid;
  auto sum_rows = [](const float* rows, int64_t count, size_t len, size_t j) {
    double s = 0.0;
    for (int64_t r = 0; r < count; ++r) s += rows[r * len + j];
    return s;
  };
  Compare cx, cdw, cpw, cb;
  const double sx = max_abs(gx_ref), sdw = max_abs(gdw_ref), spw = max_abs(gpw_ref), sb = max_abs(gb_ref);
  for (size_t i = 0; i < gx.size(); ++i) cx.add(static_cast<float>(gx[i]), gx_ref[i], sx);
  for (size_t i = 0; i < gdw_ref.size(); ++i)
    cdw.add(sum_rows(ws_dw, p.dw_partials, gdw_ref.size(), i), gdw_ref[i], sdw);
  for (size_t i = 0; i < gpw_ref.size(); ++i)
    cpw.add(sum_rows(ws_pw, pw.pw_splits, gpw_ref.size(), i), gpw_ref[i], spw);
  for (int i = 0; i < c.Cout; ++i) cb.add(sum_rows(ws_b, pw.pw_splits, c.Cout, i), gb_ref[i], sb);
  const std::string trouble =
      clocks ? phase_clock_trouble(records, static_cast<size_t>(input_grid.x) * input_grid.y) : "";
  const bool ok = !cx.unwritten && !cdw.unwritten && !cpw.unwritten && !cb.unwritten && cx.worst <= tol &&
                  cdw.worst <= tol && cpw.worst <= tol && cb.worst <= tol && trouble.empty();
  std::printf(
      "%s %-9s %-22s %s  relative errors: grad_x %.2e  grad_dw %.2e  grad_pw %.2e  grad_bias %.2e%s  (%lld tiles, %d "
      "pw splits)%s%s\n",
      ok ? "ok    " : "FAILED",
      set == Set::kResident512 ? "resident512"
      : set == Set::kResident  ? (resident ? "resident" : "resident-")
      : set == Set::kWgmma256  ? "wgmma256"
      : set == Set::kWgmma128  ? "wgmma128"
      : set == Set::kStaged128 ? "staged128"
      : wgmma                  ? "wgmma"
      : staged                 ? "staged"
                               : "first",
      c.name,
      std::is_same_v<T, __half>  ? "fp16"
      : std::is_same_v<T, float> ? "tf32"
                                 : "bf16",
      cx.worst, cdw.worst, cpw.worst, cb.worst, cx.unwritten ? "  grad_x has unwritten elements" : "",
      static_cast<long long>(p.dw_partials), pw.pw_splits, clocks ? "  phase clocks" : "",
      trouble.empty() ? "" : (": " + trouble).c_str());
  return ok;
}

// plan_resident_pw's promises, over Xception's layers at batch 1..128 and random shapes on 132 and
// 4 SMs, at most 1024 pixels a split (and 512, two CTAs per SM, where Cout <= 128): splits of whole
// 64-pixel stages of at most that many pixels covering the pixels exactly (no
// empty split), within the partial-sum cap; and no plan only where the fewest splits would pass it.
bool check_resident_plans() {
  std::mt19937 rng(99);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  struct Shape {
    int N, C, H, Cout;
  };
  std::vector<Shape> shapes;
  for (int n : {1, 7, 32, 128})
    for (Shape s : {Shape{n, 64, 147, 128}, Shape{n, 128, 147, 128}, Shape{n, 128, 74, 256}, Shape{n, 256, 74, 256},
                    Shape{n, 256, 37, 728}, Shape{n, 728, 37, 728}, Shape{n, 728, 19, 728}, Shape{n, 728, 19, 1024},
                    Shape{n, 1024, 10, 1536}, Shape{n, 1536, 10, 2048}})
      shapes.push_back(s);
  for (int i = 0; i < 300; ++i) shapes.push_back({pick(1, 300), 8 * pick(1, 300), pick(1, 200), 8 * pick(1, 300)});
  int checked = 0;
  for (const Shape& sh : shapes)
    for (int sms : {132, 4})
      for (int max_pixels : {xsep::kPwResidentMaxPixels, xsep::kPwResidentTwoCtaPixels}) {
        if (max_pixels == xsep::kPwResidentTwoCtaPixels && sh.Cout > 128) continue;  // (its kernel's limit)
        xsep::SepConvBwdParams p{};
        p.fwd.N = sh.N, p.fwd.C = p.fwd.Cmid = sh.C, p.fwd.M = 1, p.fwd.Cout = sh.Cout, p.fwd.Ho = p.fwd.Wo = sh.H;
        xsep::plan_resident_pw(p, sms, max_pixels);
        const int64_t pixels = static_cast<int64_t>(sh.N) * sh.H * sh.H, pps = p.pw_resident_pixels_per_split;
        const int64_t splits = p.pw_resident_splits, partials = splits * sh.Cout * sh.C;
        const int64_t fewest = (pixels + max_pixels - 1) / max_pixels;
        const bool ok = splits > 0
                            ? pps % xsep::kPwResidentStagePixels == 0 && pps > 0 && pps <= max_pixels &&
                                  (splits - 1) * pps < pixels && pixels <= splits * pps && splits <= 65535 &&
                                  partials <= xsep::kPwResidentMaxPartials && p.pw_resident_max_pixels == max_pixels
                            : fewest * sh.Cout * sh.C > xsep::kPwResidentMaxPartials || fewest > 65535;
        if (!ok) {
          std::printf(
              "FAILED resident pw plan: N=%d C=%d HW=%d Cout=%d on %d SMs, at most %d pixels: %lld splits of %lld "
              "pixels\n",
              sh.N, sh.C, sh.H, sh.Cout, sms, max_pixels, static_cast<long long>(splits), static_cast<long long>(pps));
          return false;
        }
        ++checked;
      }
  std::printf("ok     resident pw plans (%d)\n", checked);
  return true;
}

// backward_wants_channels_last_copies (the glue's choice to run a call on channels_last copies) on
// layouts and shapes, against what the staged kernels can read.
bool check_layout_copies() {
  struct Want {
    const char* what;
    bool x_nchw, y_nchw;
    int C, M, Cout, k, element_bytes;
    bool tensor_cores, expected;
  };
  const Want wants[] = {
      {"nchw bf16", true, true, 64, 1, 128, 3, 2, true, true},
      {"channels_last bf16 (read as it is)", false, false, 64, 1, 128, 3, 2, true, false},
      {"channels_last x, nchw grad_y", false, true, 64, 1, 128, 3, 2, true, true},
      {"nchw, 67 channels (no 16-byte vectors)", true, true, 67, 1, 128, 3, 2, true, false},
      {"nchw, 12 output channels", true, true, 64, 1, 12, 3, 2, true, false},
      {"nchw 5x5", true, true, 64, 1, 128, 5, 2, true, false},
      {"nchw exact fp32", true, true, 64, 1, 128, 3, 4, false, false},
      {"nchw fp32 on TF32", true, true, 12, 1, 20, 3, 4, true, true},
      {"nchw multiplier 2 (the input kernel)", true, true, 20, 2, 48, 3, 2, true, true},
  };
  alignas(16) static char memory[64];  // stand-in addresses, 16-byte aligned
  for (const Want& w : wants) {
    xsep::SepConvBwdParams p{};
    xsep::SepConvParams& f = p.fwd;
    f.N = 2, f.C = w.C, f.M = w.M, f.Cmid = w.C * w.M, f.Cout = w.Cout, f.H = f.W = f.Ho = f.Wo = 9;
    f.kh = f.kw = w.k, f.sh = f.sw = f.dh = f.dw = 1, f.pt = f.pl = w.k / 2;
    const int64_t plane = 81;
    const int64_t x_nchw[4] = {w.C * plane, plane, 9, 1}, x_last[4] = {w.C * plane, 1, 9 * w.C, w.C};
    const int64_t y_nchw[4] = {w.Cout * plane, plane, 9, 1}, y_last[4] = {w.Cout * plane, 1, 9 * w.Cout, w.Cout};
    for (int d = 0; d < 4; ++d) {
      f.x_stride[d] = w.x_nchw ? x_nchw[d] : x_last[d];
      f.y_stride[d] = w.y_nchw ? y_nchw[d] : y_last[d];
    }
    f.channels_last = !w.x_nchw;
    f.x = f.dw_weight = f.pw_weight = p.grad_y = memory;
    p.grad_x = p.grad_dw = p.grad_pw = p.grad_bias = memory;
    if (w.M > 1) p.grad_pw = p.grad_bias = nullptr;  // (what the staged pw kernel cannot take)
    if (!xsep::plan_backward(p, /*num_sms=*/132))
      return std::printf("FAILED layout copies %s: no plan\n", w.what), false;
    if (xsep::backward_wants_channels_last_copies(p, 9, w.element_bytes, w.tensor_cores) != w.expected) {
      std::printf("FAILED layout copies %s: expected %s\n", w.what, w.expected ? "copies" : "no copies");
      return false;
    }
  }
  std::printf("ok     channels_last copies (%zu layouts)\n", sizeof(wants) / sizeof(wants[0]));
  return true;
}

// The defaults the H200 runs chose where no knob asks (bwd_input_channels, resident_pw_max_pixels):
// 128 input-gradient channels per CTA for 16-bit types on Hopper from 128 depthwise channels, 64
// elsewhere; 512-pixel resident pw splits where Cout <= 128. Not checked under a knob that changes them.
bool check_default_choices() {
  if (std::getenv("XSEP_BWD_CHANNELS") != nullptr || std::getenv("XSEP_BWD_PW_PIXELS") != nullptr) {
    std::printf("skip   default choices (a knob is set)\n");
    return true;
  }
  struct Channels {
    int cmid, element_bytes, major, expected;
  };
  const Channels channels[] = {{728, 2, 9, 128}, {128, 2, 9, 128}, {64, 2, 9, 64},   {120, 2, 9, 64},
                               {728, 4, 9, 64},  {728, 2, 8, 64},  {2048, 2, 10, 64}};
  for (const Channels& c : channels)
    if (xsep::bwd_input_channels(c.cmid, c.element_bytes, c.major) != c.expected)
      return std::printf("FAILED default input channels: Cmid %d, %d-byte, sm_%d0: expected %d\n", c.cmid,
                         c.element_bytes, c.major, c.expected),
             false;
  if (xsep::resident_pw_max_pixels(128) != xsep::kPwResidentTwoCtaPixels ||
      xsep::resident_pw_max_pixels(136) != xsep::kPwResidentMaxPixels)
    return std::printf("FAILED default resident pw splits\n"), false;
  std::printf("ok     default choices (%zu channel counts, 2 splits)\n", sizeof(channels) / sizeof(channels[0]));
  return true;
}

}  // namespace

int main() {
  if (!check_resident_plans() || !check_layout_copies() || !check_default_choices()) return 1;
  const Case cases[] = {
      {"aligned_partial", 2, 40, 13, 11, 136, 1, 1, 1, 1, 1, 1, 1, Activation::kNone},
      {"mult2", 2, 16, 20, 19, 48, 2, 1, 1, 1, 1, 1, 1, Activation::kNone},
      {"s2_asymmetric_elu", 1, 72, 17, 23, 40, 1, 2, 1, 0, 1, 1, 0, Activation::kElu},
      {"d2_relu", 1, 24, 20, 21, 32, 1, 1, 2, 2, 2, 2, 2, Activation::kRelu},
      {"xception_like", 1, 64, 19, 19, 136, 1, 1, 1, 1, 1, 1, 1, Activation::kNone},
      {"long_splits", 2, 16, 40, 40, 16, 1, 1, 1, 1, 1, 1, 1, Activation::kNone},  // > 4 pixel chunks per split
      {"wide_136", 1, 136, 9, 10, 40, 1, 1, 1, 1, 1, 1, 1,
       Activation::kNone},  // 128 + 8 channels: a full and a partial chunk of 128
      // Cout 264: two slices of 256 for the resident pw kernel (the second mostly padding), splits of
      // five 64-pixel stages, the last split shorter.
      {"slices_264", 2, 16, 24, 23, 264, 1, 1, 1, 1, 1, 1, 1, Activation::kRelu, true},
  };
  std::mt19937 rng(1234);
  int failed = 0, count = 0;
  for (const Case& c : cases) {
    if (!case_selected(c.name)) continue;  // XSEP_EMULATION_CASES
    // Tolerances: a few units of the 16-bit rounding of dZ and of grad_x; a wrong index is O(1).
#if defined(XSEP_WITH_CUTE)
    if (c.newest_only) {
      failed += !run_case<__half>(c, Set::kResident, rng, 4e-3);
      failed += !run_case<__nv_bfloat16>(c, Set::kResident, rng, 3e-2);
      failed += !run_case<__nv_bfloat16>(c, Set::kWgmma256, rng, 3e-2);
      count += 3;
    }
#endif
    if (c.newest_only) continue;
    for (Set set : {Set::kFirst, Set::kStaged}) {
      failed += !run_case<__half>(c, set, rng, 4e-3);
      failed += !run_case<__nv_bfloat16>(c, set, rng, 3e-2);
      failed += !run_case<float>(c, set, rng, 5e-3);  // fp32 on TF32 tensor cores
      count += 3;
    }
    // 128 channels per input-gradient CTA: 16-bit and TF32 WMMA, fp16 wgmma (the GEMM's N is what changes).
    failed += !run_case<__nv_bfloat16>(c, Set::kStaged128, rng, 3e-2);
    failed += !run_case<float>(c, Set::kStaged128, rng, 5e-3);
    count += 2;
#if defined(XSEP_WITH_CUTE)
    failed += !run_case<__half>(c, Set::kWgmma, rng, 4e-3);
    failed += !run_case<__nv_bfloat16>(c, Set::kWgmma, rng, 3e-2);
    failed += !run_case<__half>(c, Set::kWgmma128, rng, 4e-3);
    failed += !run_case<__half>(c, Set::kResident, rng, 4e-3);
    failed += !run_case<__nv_bfloat16>(c, Set::kResident, rng, 3e-2);
    failed += !run_case<__nv_bfloat16>(c, Set::kWgmma256, rng, 3e-2);
    count += 6;
    if (c.M == 1 && c.Cout <= 128) {  // the two-CTA resident kernel's variant: 64 channels per warpgroup
      failed += !run_case<__half>(c, Set::kResident512, rng, 4e-3);
      failed += !run_case<__nv_bfloat16>(c, Set::kResident512, rng, 3e-2);
      count += 2;
    }
#endif
  }
  std::printf("%d cases, %d failed\n", count, failed);
  return failed == 0 ? 0 : 1;
}
