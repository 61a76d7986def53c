// The wgmma forward (csrc/kernels/sepconv_fwd_wgmma_kernel.cuh) run on the host through
// tests/cpp/cuda_host_emulation.h and the warpgroup-MMA stand-in of tests/cpp/wgmma_emulation.h,
// compared with a direct fp64 forward of the same (rounded) inputs; the output is poisoned with
// NaN first, so an unwritten element fails. fp16 and bf16 with 128 pixels per CTA (two
// warpgroups; four, two along the output channels) and 64 (one), fp32 on TF32 with 64; weight rings of 4 to 16 slots; the output
// channels in one CTA or split over two; partial pixel tiles, a partial channel chunk, Cout below
// one tile and one tile plus 8, fewer weight chunks than the ring copies ahead, stride 2 with
// asymmetric padding, dilation, padding wider than the window, ELU between the convolutions; and
// the shared-memory budget of the 728-channel layers. Needs CuTe's headers (-I of the nvidia-cutlass wheel's
// include directory). Prints one line per run; exits 0 when all agree.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

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

// With XSEP_PHASE_CLOCKS=1 the kernel stamps each CTA's phases (phase_clocks.cuh): every CTA a
// record, its stamps in the order of its phases, one pair per output-channel tile. "" if so.
std::string phase_clock_trouble(const std::vector<unsigned long long>& records, unsigned ctas, int cout, int parts) {
  for (unsigned cta = 0; cta < ctas; ++cta) {
    const unsigned long long* r = records.data() + static_cast<size_t>(cta) * xsep::kPhaseClockSlots;
    const unsigned long long* stamps = r + xsep::kClockStamps;
    const unsigned part = cta / (ctas / parts);
    int begin = 0, end = 0;
    xsep::resident_cout_range<xsep::WgmmaFwdTraits<__half, 64>>(cout, static_cast<int>(part), parts, &begin, &end);
    const unsigned long long tiles = static_cast<unsigned long long>((end - begin + 127) / 128);
    if (r[xsep::kClockEndNs] == 0) return "a CTA without a record";
    if (r[xsep::kClockCount] != tiles) return "a record's tile count is not its CTA's";
    std::vector<unsigned long long> order = {r[xsep::kClockStart], stamps[xsep::kFwdTableDone],
                                             stamps[xsep::kFwdDepthwiseDone]};
    for (unsigned long long t = 0; t < tiles; ++t)
      order.insert(order.end(), {stamps[xsep::kFwdFirstTile + 2 * t], stamps[xsep::kFwdFirstTile + 2 * t + 1]});
    order.push_back(r[xsep::kClockEnd]);
    for (size_t i = 1; i < order.size(); ++i)
      if (order[i] < order[i - 1] || order[i - 1] == 0) return "stamps out of their phases' order";
    if (r[xsep::kClockEndNs] < r[xsep::kClockStartNs]) return "an end before its start";
  }
  return "";
}

// What a run changes besides the case and the build (or-ed).
enum Extra {
  kPlain = 0,
  kClocks = 1,        // XSEP_PHASE_CLOCKS=1: every CTA stamps its phases
  kOddBias = 2,       // the bias one element past an aligned start (a view's): no paired loads
  kLongDivision = 4,  // no multiply-high divisors in the params: fwd_pixel_origin divides
  kBand = 8,          // XSEP_FWD_DW=staged: the depthwise phase from bands of x, as many as the ring holds
  kOneBand = 16,      // the same with one band buffer (no copies in flight during a pass's arithmetic)
  kInfinite = 32,     // channel 5's top-left depthwise weight +inf: its padding taps add nothing, so
                      // y is finite in the first output row and column (the pack's finite word sends
                      // the group to the per-pixel path) and not elsewhere
};

template <typename T, int BM, int kSplitN = 1, int kMinBlocks = (kSplitN == 1 ? 2 : 1),
          bool kPrefetch = (BM == 128 && kSplitN == 1 && kMinBlocks == 1)>
bool run_case(const Case& c, int parts, int stages, std::mt19937& rng, double tol, int extra = kPlain) {
  const bool clocks = extra & kClocks, odd_bias = extra & kOddBias, long_division = extra & kLongDivision;
  const bool infinite = extra & kInfinite;
  using Traits = xsep::WgmmaFwdTraits<T, BM, kSplitN, kMinBlocks, kPrefetch>;
  ForwardCall<T> call(c.N, c.C, c.H, c.W, /*M=*/1, c.Cout, /*K=*/3, c.stride, c.dil, c.pt, c.pb, c.pl, c.pr, c.act,
                      /*channels_last=*/true, rng);
  xsep::SepConvParams& p = call.p;
  p.allow_tf32 = true;
  // odd_bias: the epilogue cannot load a channel pair's bias as one word.
  std::vector<T> shifted_bias;
  if (odd_bias) {
    shifted_bias.assign(call.bias.dev.begin(), call.bias.dev.end());
    shifted_bias.insert(shifted_bias.begin(), T{});
    p.bias = shifted_bias.data() + 1;
  }
  if (long_division) p.out_hw = p.out_w = xsep::FastDivmod();
  if (infinite) call.set_dw_weight(5, 0, INFINITY);
  if (!xsep::depthwise_vec_applies<Traits>(p) || !xsep::output_vec_applies<Traits>(p))
    xsep_emulation::die("a case the wgmma launcher would not take");

  // The workspace first (the launcher's pack kernel, here on a small grid: its stride loops).
  std::vector<uint4> workspace((xsep::wgmma_workspace_bytes<Traits>(p.Cout, p.Cmid) + 15) / 16);
  auto* bytes = reinterpret_cast<unsigned char*>(workspace.data());
  auto* dw = reinterpret_cast<float*>(bytes + xsep::wgmma_dw_offset_bytes<Traits>(p.Cout, p.Cmid));
  xsep_emulation::run_grid(dim3(3), 64, [&] {
    xsep::sepconv_fwd_wgmma_weights_pack_kernel<Traits, xsep::wgmma_dw_lanes<Traits>()>(p, reinterpret_cast<T*>(bytes),
                                                                                        dw);
  });
  p.workspace = workspace.data();
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const unsigned ctas = static_cast<unsigned>((pixels + BM - 1) / BM) * parts;
  std::vector<unsigned long long> records(clocks ? static_cast<size_t>(ctas) * xsep::kPhaseClockSlots : 0);
  p.phase_clocks = clocks ? records.data() : nullptr;
  // The launcher's band count (XSEP_FWD_DW=staged), or one band; 0 where the build or the layer
  // has no band path (the kernel then ignores a count, which the d2 case checks by passing one).
  int bands = 0;
  if (extra & (kBand | kOneBand)) {
    if (!xsep::wgmma_band_build<Traits>()) xsep_emulation::die("a band case for a build without the band path");
    constexpr int kPassBytes = Traits::BK * xsep::wgmma_dw_chunks<Traits>() * static_cast<int>(sizeof(T));
    bands = xsep::band_buffer_count(p, BM, kPassBytes, static_cast<size_t>(stages) * Traits::kWSlotBytes);
    if (bands == 0 && !xsep::band_geometry_applies(p)) bands = 2;  // refused by the kernel itself
    if (extra & kOneBand) bands = std::min(bands, 1);
    if (bands == 0) xsep_emulation::die("a band case whose ring holds no band");
  }
  xsep_emulation::run_grid(
      dim3(static_cast<unsigned>((pixels + BM - 1) / BM), static_cast<unsigned>(parts)), Traits::kThreads,
      [&] { xsep::sepconv_fwd_wgmma_kernel<Traits>(p, stages, bands); },
      xsep::WgmmaFwdLayout<Traits>::bytes(p.Cmid, stages));

  bool unwritten = false;
  const double worst = call.error(&unwritten);
  const std::string trouble = clocks ? phase_clock_trouble(records, ctas, p.Cout, parts) : "";
  const bool ok = !unwritten && worst <= tol && trouble.empty();
  // "1-CTA": a build for one CTA per SM (128 pixels: channel quartets; 64: two Z chunks a depthwise
  // pass), "prefetch": the next depthwise chunk's loads in flight (XSEP_FWD_PREFETCH=1).
  const bool one_cta = kSplitN == 1 && kMinBlocks == 1;
  char band[24] = "";
  if (bands > 0) std::snprintf(band, sizeof(band), " band %d", bands);
  std::printf("%s wgmma-%-3d %d warpgroups%s%s%s%s%s%s%s split %d stages %2d %-14s %s relative error %.2e%s%s\n",
              ok ? "ok    " : "FAILED", BM, Traits::kWarpgroups, one_cta ? " 1-CTA" : "", kPrefetch ? " prefetch" : "", band,
              clocks ? " clocks" : "", odd_bias ? " odd-bias" : "", long_division ? " long-division" : "",
              infinite ? " infinite-weight" : "", parts, stages, c.name, mode_name<T>(), worst,
              unwritten ? "  (unwritten elements)" : "", trouble.empty() ? "" : ("  (phase clocks: " + trouble + ")").c_str());
  return ok;
}

// The Z store addresses (sw64_k_major_offset, in 32 bits) against the pointers CuTe builds for the
// same elements of a Z chunk: the same byte, for every element of BM pixels x BK channels.
template <typename T, int BM>
bool z_offsets_match_cute() {
  using Traits = xsep::WgmmaFwdTraits<T, BM>;
  using Cute = xsep::WgmmaFwdCute<Traits>;
  using Element = typename Cute::Element;
  alignas(1024) static unsigned char buffer[Traits::kZChunkBytes];
  Element* z = reinterpret_cast<Element*>(buffer);
  const auto chunk = cute::make_tensor(cute::make_smem_ptr(z), typename Cute::ZChunkLayout{});
  int wrong = 0;
  for (int m = 0; m < BM; ++m)
    for (int k = 0; k < Traits::BK; ++k) {
      const auto cute_offset = reinterpret_cast<unsigned char*>(&chunk(m, k)) - buffer;
      wrong += cute_offset != static_cast<long>(xsep::sw64_k_major_offset(m, k * static_cast<int>(sizeof(Element))));
    }
  // (No " tf32 " in the line: the test counts the GEMM runs' lines by it.)
  std::printf("%s Z store offsets against CuTe's (%d pixels, %s): %d of %d differ\n", wrong ? "FAILED" : "ok    ", BM,
              mode_name<T>(), wrong, BM * Traits::BK);
  return wrong == 0;
}

}  // namespace

int main() {
  const Case cases[] = {
      {"partial", 2, 40, 7, 9, 24, 1, 1, 1, 1, 1, 1, Activation::kNone},          // 126 pixels, 40 of 64 channels
      {"s2_asymmetric", 1, 16, 17, 23, 136, 2, 1, 0, 1, 0, 1, Activation::kNone},  // Cout one tile + 8
      {"d2_elu", 1, 24, 12, 13, 40, 1, 2, 2, 2, 2, 2, Activation::kElu},
      {"deep", 1, 200, 6, 7, 264, 1, 1, 1, 1, 1, 1, Activation::kNone},  // 7 chunks, 3 Cout tiles
      // Padding of 3: the outer output rows and columns read nothing but padding (no tap bits).
      {"wide_padding", 1, 16, 5, 6, 24, 1, 1, 3, 2, 3, 3, Activation::kElu},
  };
  std::mt19937 rng(8765);
  int failed = 0, count = 0;
  for (const Case& c : cases) {
    // Ring depths: 4 (the least), 5 (not a power of two), 7, 8, 11, 16 (the most).
    for (int parts : {1, 2}) {
      // Tolerances: a few units of each type's rounding of Z and y; a wrong index is O(1).
      failed += !run_case<__half, 128>(c, parts, parts == 1 ? 5 : 4, rng, 5e-3);
      failed += !run_case<__nv_bfloat16, 128>(c, parts, parts == 1 ? 4 : 8, rng, 3e-2);
      count += 2;
    }
    // Four warpgroups (two along the output channels) at 128 pixels.
    failed += !run_case<__half, 128, 2>(c, 1, 6, rng, 5e-3);
    failed += !run_case<__nv_bfloat16, 128, 2>(c, 2, 5, rng, 3e-2);
    count += 2;
    // XSEP_FWD_PREFETCH=1: the build for one CTA per SM at 128 pixels (channel quartets), and the
    // 64-pixel kernel, each with the next chunk's loads in flight.
    static_assert(xsep::wgmma_dw_lanes<xsep::WgmmaFwdTraits<__half, 128, 1, 1>>() == 4, "quartets");
    failed += !run_case<__half, 128, 1, 1>(c, 2, 7, rng, 5e-3);
    failed += !run_case<__nv_bfloat16, 128, 1, 1>(c, 1, 16, rng, 3e-2);
    // The one-CTA build without the prefetch: the 728-channel layers' default.
    failed += !run_case<__nv_bfloat16, 128, 1, 1, false>(c, 1, 5, rng, 3e-2);
    count += 1;
    failed += !run_case<__nv_bfloat16, 64, 1, 2, true>(c, 2, 5, rng, 3e-2);
    failed += !run_case<float, 64, 1, 2, true>(c, 1, 9, rng, 5e-3);
    count += 4;
    failed += !run_case<__half, 64>(c, 1, 16, rng, 5e-3);  // the deepest ring
    failed += !run_case<__nv_bfloat16, 64>(c, 1, 11, rng, 3e-2);
    failed += !run_case<float, 64>(c, 1, 4, rng, 5e-3);  // TF32 (64 pixels only)
    failed += !run_case<float, 64>(c, 2, 7, rng, 5e-3);
    count += 4;
    // The 64-pixel build for one CTA per SM (16-bit 1024+ channels, TF32 728+): two Z chunks a
    // depthwise pass (C=200: the last pass's second chunk is past Z), two-window quads.
    static_assert(xsep::wgmma_dw_chunks<xsep::WgmmaFwdTraits<float, 64, 1, 1, false>>() == 2, "two chunks a pass");
    failed += !run_case<__nv_bfloat16, 64, 1, 1, false>(c, 1, 6, rng, 3e-2);
    failed += !run_case<__half, 64, 1, 1, false>(c, 2, 4, rng, 5e-3);
    failed += !run_case<float, 64, 1, 1, false>(c, 2, 5, rng, 5e-3);
    count += 3;
  }
  // XSEP_FWD_DW=staged: the builds for one CTA per SM with the depthwise phase from bands of x (two
  // buffers where the ring holds them, one), each case's band over one to five images; stride 2
  // and dilation 2 (s2_asymmetric, d2_elu) are refused by the kernel and take the loads from x.
  for (const Case& c : cases) {
    failed += !run_case<__nv_bfloat16, 128, 1, 1, false>(c, 1, 5, rng, 3e-2, kBand);
    failed += !run_case<__half, 128, 1, 1, false>(c, 2, 4, rng, 5e-3, kOneBand);
    failed += !run_case<__nv_bfloat16, 64, 1, 1, false>(c, 1, 6, rng, 3e-2, kBand);
    failed += !run_case<float, 64, 1, 1, false>(c, 2, 5, rng, 5e-3, kBand);
    failed += !run_case<float, 64, 1, 1, false>(c, 1, 4, rng, 5e-3, kOneBand);
    count += 5;
  }
  failed += !z_offsets_match_cute<__half, 128>() + !z_offsets_match_cute<__nv_bfloat16, 64>() +
            !z_offsets_match_cute<float, 64>();
  // XSEP_PHASE_CLOCKS=1: the same output, and every CTA's stamps (three output-channel tiles, in one
  // CTA and split over two).
  failed += !run_case<__nv_bfloat16, 128>(cases[3], 2, 5, rng, 3e-2, kClocks);
  failed += !run_case<float, 64>(cases[3], 1, 6, rng, 5e-3, kClocks);
  count += 2;
  // Rows that quads break in, at their edges: one output row an image (every break crosses into
  // the next image; no vertical padding, so H is not Ho and the step between images is not the
  // step between rows), and rows of two (a quad would break twice: the per-pixel path).
  const Case rows[] = {
      {"one_row_images", 3, 16, 3, 5, 24, 1, 1, 0, 0, 1, 1, Activation::kNone},
      {"two_pixel_rows", 2, 24, 4, 2, 16, 1, 1, 1, 1, 1, 1, Activation::kNone},
  };
  for (const Case& c : rows) {
    failed += !run_case<__nv_bfloat16, 128>(c, 1, 4, rng, 3e-2);
    failed += !run_case<__half, 128, 1, 1>(c, 1, 5, rng, 5e-3);  // quartets, prefetched
    failed += !run_case<__nv_bfloat16, 128, 1, 1, false>(c, 1, 4, rng, 3e-2);  // quartets
    count += 1;
    failed += !run_case<float, 64>(c, 1, 4, rng, 5e-3);
    failed += !run_case<__nv_bfloat16, 64, 1, 1, false>(c, 1, 5, rng, 3e-2);  // two-window quads
    failed += !run_case<float, 64, 1, 1, false>(c, 1, 4, rng, 5e-3);
    failed += !run_case<__nv_bfloat16, 128, 1, 1, false>(c, 1, 5, rng, 3e-2, kBand);  // a band of images
    failed += !run_case<__half, 64, 1, 1, false>(c, 1, 4, rng, 5e-3, kOneBand);
    count += 7;
  }
  // The band path's phase stamps.
  failed += !run_case<__nv_bfloat16, 128, 1, 1, false>(cases[3], 2, 5, rng, 3e-2, kClocks | kBand);
  count += 1;
  // A bias that starts off the alignment of a channel pair (its loads one element at a time).
  failed += !run_case<__nv_bfloat16, 128>(cases[1], 1, 4, rng, 3e-2, kOddBias);
  failed += !run_case<float, 64>(cases[1], 1, 4, rng, 5e-3, kOddBias);
  // Pixel origins by long division (the params' multiply-high divisors unset, as past 2^31 pixels).
  failed += !run_case<__half, 128>(cases[0], 2, 6, rng, 5e-3, kLongDivision);
  count += 3;
  // An infinite depthwise weight (cases[0]: padding 1 all round): channel pairs, quartets with two-
  // window quads, the band path, TF32 with two chunks a pass.
  failed += !run_case<__nv_bfloat16, 128>(cases[0], 1, 4, rng, 3e-2, kInfinite);
  failed += !run_case<__half, 128, 1, 1, false>(cases[0], 2, 5, rng, 5e-3, kInfinite);
  failed += !run_case<__nv_bfloat16, 128, 1, 1, false>(cases[0], 1, 5, rng, 3e-2, kInfinite | kBand);
  failed += !run_case<float, 64, 1, 1, false>(cases[0], 1, 4, rng, 5e-3, kInfinite);
  count += 4;
  // The 728-channel layers at 128 pixels: a five-slot ring within the H100's per-block opt-in
  // limit (227 KB), with the static shared memory and the kilobyte ptxas adds.
  {
    using Traits = xsep::WgmmaFwdTraits<__nv_bfloat16, 128>;
    // Static: the pixel table and the ring's transaction barriers.
    const size_t bytes = xsep::WgmmaFwdLayout<Traits>::bytes(728, 5) +
                         xsep::kernel_static_shared_bytes(sizeof(xsep::WgmmaFwdPixelTable<Traits>) +
                                                          Traits::kMaxStages * sizeof(uint64_t));
    const bool fits = bytes <= 227 * 1024;
    std::printf("%s 728 channels, 128 pixels, 5 slots: %zu of %d bytes\n", fits ? "ok    " : "FAILED", bytes,
                227 * 1024);
    failed += !fits;
  }
  // The band path on the Xception layers it is for (the launcher's ring sizes on an H100/H200):
  // bf16 728 @19 (128 pixels, 5 slots) two buffers with slot 0 left for the first weight chunk;
  // TF32 728 @19 (64 pixels, 5 slots) one; bf16 1024 @10 (64 pixels, 12 slots) two. (No " tf32 "
  // in these lines: the test counts the GEMM runs by it.)
  {
    struct Layer {
      const char* name;
      int C, HW, bm, pass_bytes, slots, buffers;
      size_t least_offset;
    };
    const Layer layers[] = {{"bf16 728 @19", 728, 19, 128, 64, 5, 2, 8192},
                            {"TF32 728 @19", 728, 19, 64, 128, 5, 1, 8192},
                            {"bf16 1024 @10", 1024, 10, 64, 128, 12, 2, 8192}};
    for (const Layer& l : layers) {
      xsep::SepConvParams p{};
      p.N = 32, p.C = p.Cmid = p.Cout = l.C, p.H = p.W = p.Ho = p.Wo = l.HW, p.M = 1;
      p.kh = p.kw = 3, p.sh = p.sw = p.dh = p.dw = 1, p.pt = p.pl = 1;
      const size_t room = static_cast<size_t>(l.slots) * 8192;
      const int buffers = xsep::band_buffer_count(p, l.bm, l.pass_bytes, room);
      const int each = xsep::band_buffer_bytes(p, l.bm, l.pass_bytes);
      const size_t offset = buffers > 0 ? xsep::band_offset(room, buffers, each, l.pass_bytes) : 0;
      const bool ok = buffers == l.buffers && offset >= l.least_offset;
      std::printf("%s band for %s: %d buffers of %d bytes from byte %zu of the %zu-byte ring\n", ok ? "ok    " : "FAILED",
                  l.name, buffers, each, offset, room);
      failed += !ok;
    }
  }
  std::printf("%d runs, %d failed\n", count, failed);
  return failed == 0 ? 0 : 1;
}
