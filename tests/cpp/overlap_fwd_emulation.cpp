// The overlapped wgmma forward (csrc/kernels/sepconv_fwd_overlap_kernel.cuh: producer warps compute
// each pixel tile's whole Z into one of two buffers while the consumer warpgroup multiplies the
// other, or with one buffer, the tile before) run on the host through tests/cpp/cuda_host_emulation.h
// and the warpgroup-MMA stand-in of tests/cpp/wgmma_emulation.h, against a direct fp64 forward of the
// same (rounded) inputs; the output is poisoned with NaN first, so an unwritten element fails. fp16,
// bf16 and fp32 on TF32; two Z buffers and one; rings of 3 to 16 weight slots, more chunks than slots and fewer;
// one CTA taking every pixel tile (each Z buffer reused several times: its barriers' phases turn
// over) and several CTAs; the pair build (clusters of two CTAs sharing each weight chunk); the output channels split in 2 and 3 parts (each recomputing its pixel
// tile's Z); partial pixel and channel tiles, an odd number of Z chunks (the last depthwise pass half
// past Cmid), Cout of one tile plus 8 and of three tiles, stride 2 with asymmetric padding, dilation,
// padding wider than the window, rows that end inside a quad (two windows), ELU between the
// convolutions, an infinite depthwise weight (its padding taps add nothing: the pack's finite word
// sends its group to the per-pixel path). Each thread of a CTA is a std::thread, so producers and
// consumers interleave as the scheduler lets them: a missing wait or release shows as a wrong result,
// a hang, or (under -fsanitize=thread) a race. Needs CuTe's headers. Prints one line per run; exits 0
// when all agree.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

// clang-format off: the order matters
#include "cuda_host_emulation.h"  // first: it redefines the CUDA built-ins the kernels use
#include "emulation_inputs.h"
#include "wgmma_emulation.h"  // before the kernel: CuTe's shared-memory addresses
#include "sepconv_fwd_overlap_kernel.cuh"
// clang-format on

using xsep::Activation;

namespace {

struct Case {
  const char* name;
  int N, C, H, W, Cout, stride, dil, pt, pb, pl, pr;
  Activation act;
  bool infinite_weight = false;  // channel 5's top-left tap +inf: its group takes the per-pixel path
};

template <typename T>
const char* mode_name() {
  return std::is_same_v<T, __half> ? "fp16" : std::is_same_v<T, float> ? "tf32" : "bf16";
}

// XSEP_PHASE_CLOCKS=1's records (phase_clocks.h): every CTA one, its work items counted (a pair's
// CTAs: the pair's), each role's sums of cycles within its span, the depthwise passes and the GEMM
// timed. "" when they are.
std::string phase_clock_trouble(const std::vector<unsigned long long>& records, unsigned ctas, int64_t items,
                                int cluster) {
  const unsigned units = ctas / cluster;
  for (unsigned cta = 0; cta < ctas; ++cta) {
    const unsigned long long* r = records.data() + cta * xsep::kPhaseClockSlots;
    const unsigned long long* sums = r + xsep::kClockStamps;
    const unsigned unit = cta / cluster;
    if (r[xsep::kClockEndNs] == 0) return "a CTA without a record";
    if (static_cast<int64_t>(r[xsep::kClockCount]) != (items - 1 - unit) / units + 1) return "a CTA's tiles miscounted";
    const unsigned long long span = r[xsep::kClockEnd] - r[xsep::kClockStart];
    if (sums[xsep::kOverlapDepthwise] == 0 || sums[xsep::kOverlapGemmStores] == 0) return "a role's work untimed";
    if (sums[xsep::kOverlapDepthwise] + sums[xsep::kOverlapBufferWait] > span ||
        sums[xsep::kOverlapGemmStores] + sums[xsep::kOverlapZWait] > span)
      return "a role's sums past the CTA's span";
    // The pair build's waits for the peer's slot release are part of the GEMM and stores; none
    // without a peer.
    if (sums[xsep::kOverlapPeerWait] > sums[xsep::kOverlapGemmStores] ||
        (cluster == 1 && sums[xsep::kOverlapPeerWait] != 0))
      return "the waits for the peer miscounted";
  }
  return "";
}

using xsep::OverlapPair;

// ctas: at most that many CTAs (the pair builds: pairs of CTAs).
template <typename T, bool kTwoRuns = true, int kZBuffers = 2, OverlapPair kPair = OverlapPair::kNone>
bool run_case(const Case& c, int stages, int ctas, std::mt19937& rng, double tol, bool clocks = false, int parts = 1) {
  using Traits = xsep::OverlapFwdTraits<T, kTwoRuns, kZBuffers, kPair>;
  constexpr int kCluster = Traits::kCluster;
  using PackTraits = xsep::OverlapPackTraits<T>;
  ForwardCall<T> call(c.N, c.C, c.H, c.W, /*M=*/1, c.Cout, /*K=*/3, c.stride, c.dil, c.pt, c.pb, c.pl, c.pr, c.act,
                      /*channels_last=*/true, rng);
  xsep::SepConvParams& p = call.p;
  p.allow_tf32 = true;  // fp32: the launcher's condition
  // Where that tap reads the padding (the first output row and column) y is finite; elsewhere not.
  if (c.infinite_weight) call.set_dw_weight(5, 0, INFINITY);
  if (!xsep::depthwise_vec_applies<Traits>(p) || !xsep::output_vec_applies<Traits>(p))
    xsep_emulation::die("a case the overlapped launcher would not take");

  // The workspace as the launcher fills it: the weights' pack kernel on a small grid (its stride loop).
  std::vector<uint4> workspace((xsep::wgmma_workspace_bytes<PackTraits>(p.Cout, p.Cmid) + 15) / 16);
  auto* bytes = reinterpret_cast<unsigned char*>(workspace.data());
  auto* dw = reinterpret_cast<float*>(bytes + xsep::wgmma_dw_offset_bytes<PackTraits>(p.Cout, p.Cmid));
  xsep_emulation::run_grid(dim3(3), 64, [&] {
    xsep::sepconv_fwd_wgmma_weights_pack_kernel<PackTraits, Traits::kDwLanes>(p, reinterpret_cast<T*>(bytes), dw);
  });
  p.workspace = workspace.data();
  // Persistent CTAs (pairs): `ctas` of them (at most one per work item) take the items in turn;
  // `parts` items per pixel tile (weights pairs: pair of pixel tiles), each with a share of the
  // output channels (every share at least one 128-channel tile; Z pairs: each half of it).
  const int64_t pixels = static_cast<int64_t>(p.N) * p.Ho * p.Wo;
  const int shares = kPair == OverlapPair::kZ ? 2 * parts : parts;
  if (shares != xsep::resident_cout_parts(1, shares, p.Cout, Traits::BN))
    xsep_emulation::die("more parts than the output channels have tiles");
  const int64_t pixel_tiles = (pixels + Traits::BM - 1) / Traits::BM;
  const int64_t groups = kPair == OverlapPair::kWeights ? (pixel_tiles + 1) / 2 : pixel_tiles;
  const int64_t tiles = groups * parts;  // work items
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(tiles, ctas) * kCluster);
  std::vector<unsigned long long> records;
  if (clocks) {
    records.assign(static_cast<size_t>(grid) * xsep::kPhaseClockSlots, 0);
    p.phase_clocks = records.data();
  }
  xsep_emulation::run_grid(
      dim3(grid), Traits::kThreads, [&] { xsep::sepconv_fwd_overlap_kernel<Traits>(p, stages, parts); },
      xsep::OverlapFwdLayout<Traits>::bytes(p.Cmid, stages), kCluster);

  bool unwritten = false;
  const double worst = call.error(&unwritten);
  const std::string clock_trouble = clocks ? phase_clock_trouble(records, grid, tiles, kCluster) : "";
  const bool ok = !unwritten && worst <= tol && clock_trouble.empty();
  std::printf("%s overlap%s%s%s split %d stages %2d ctas %d/%lld %-15s %s relative error %.2e%s%s%s\n",
              ok ? "ok    " : "FAILED",
              kPair == OverlapPair::kWeights ? "-pair-weights" : kPair == OverlapPair::kZ ? "-pair-z" : "",
              kTwoRuns ? "" : "-one-run",
              kZBuffers == 1 ? "-one-buffer" : "", parts, stages,
              grid, static_cast<long long>(tiles), c.name, mode_name<T>(), worst,
              unwritten ? "  (unwritten elements)" : "", clocks ? "  phase clocks " : "", clock_trouble.c_str());
  return ok;
}

}  // namespace

int main() {
  const Case cases[] = {
      {"partial", 2, 40, 7, 9, 24, 1, 1, 1, 1, 1, 1, Activation::kNone},           // 126 pixels, 40 channels: 2 chunks
      {"s2_asymmetric", 1, 16, 17, 23, 136, 2, 1, 0, 1, 0, 1, Activation::kNone},  // Cout one tile + 8
      {"d2_elu", 1, 24, 12, 13, 40, 1, 2, 2, 2, 2, 2, Activation::kElu},
      {"deep", 1, 200, 6, 7, 264, 1, 1, 1, 1, 1, 1, Activation::kNone},  // 7 chunks (4 passes), 3 Cout tiles
      // Padding of 3: the outer output rows and columns read nothing but padding (no tap bits).
      {"wide_padding", 1, 16, 5, 6, 24, 1, 1, 3, 2, 3, 3, Activation::kElu},
      // 5 pixel tiles of rows of 19 (quads an output row ends inside: two windows).
      {"rows_of_19", 1, 32, 17, 19, 40, 1, 1, 1, 1, 1, 1, Activation::kNone},
      {"many_tiles", 2, 24, 17, 17, 40, 1, 1, 1, 1, 1, 1, Activation::kNone},  // 10 pixel tiles
      // 5 pixel tiles of 3 Cout tiles each: a buffer is released only after its last Cout tile.
      {"deep_tiles", 1, 72, 17, 17, 264, 1, 1, 1, 1, 1, 1, Activation::kNone},
      {"infinite_weight", 1, 24, 9, 19, 40, 1, 1, 1, 1, 1, 1, Activation::kNone, true},
  };
  std::mt19937 rng(2718);
  int failed = 0, count = 0;
  for (const Case& c : cases) {
    if (!case_selected(c.name)) continue;  // XSEP_EMULATION_CASES
    // Tolerances: a few units of each type's rounding of Z and y; a wrong index is O(1).
    // CTAs: one (every tile in turn: both Z buffers reused), a few, or one per tile.
    failed += !run_case<__half>(c, 3, 1, rng, 5e-3);
    failed += !run_case<__nv_bfloat16>(c, 4, 1000, rng, 3e-2);
    failed += !run_case<__nv_bfloat16>(c, 16, 3, rng, 3e-2);
    failed += !run_case<__nv_bfloat16, false>(c, 5, 2, rng, 3e-2);     // the per-pixel path for row breaks
    failed += !run_case<__half>(c, 4, 2, rng, 5e-3, /*clocks=*/true);  // XSEP_PHASE_CLOCKS=1
    count += 5;
    // One Z buffer (the 1024+ channel layers): the depthwise phase waits for the tile before's GEMM.
    failed += !run_case<__nv_bfloat16, true, 1>(c, 3, 1, rng, 3e-2);
    failed += !run_case<__half, true, 1>(c, 6, 1000, rng, 5e-3, /*clocks=*/true);
    count += 2;
    // TF32 (channel pairs, 32 a pass), two Z buffers and one.
    failed += !run_case<float, true, 2>(c, 4, 2, rng, 5e-3);
    failed += !run_case<float, true, 1>(c, 3, 1, rng, 5e-3, /*clocks=*/true);
    count += 2;
    // Output channels split over CTAs where the Cout tiles allow (deep: 3 tiles over 2 and 3 parts;
    // s2_asymmetric: 2 tiles, the second of 8 channels), each part recomputing the pixel tile's Z.
    if ((c.Cout + 127) / 128 >= 2) {
      failed += !run_case<__nv_bfloat16>(c, 4, 3, rng, 3e-2, /*clocks=*/true, /*parts=*/2);
      failed += !run_case<__half, true, 1>(c, 5, 1, rng, 5e-3, /*clocks=*/false, /*parts=*/2);
      count += 2;
    }
    if ((c.Cout + 127) / 128 >= 3) {
      failed += !run_case<__nv_bfloat16, true, 1>(c, 3, 2, rng, 3e-2, /*clocks=*/false, /*parts=*/3);
      count += 1;
    }
    // The weights pair build (clusters of two: each weight chunk half by each CTA, multicast into
    // both rings): one pair taking every item (each slot reused, both CTAs' releases awaited), two
    // pairs, one pair per item; an odd number of pixel tiles leaves a pair's second tile empty
    // (d2_elu 3, deep 1, deep_tiles 5); TF32 with one Z buffer; the output channels in 2 parts.
    constexpr OverlapPair kWeights = OverlapPair::kWeights, kZ = OverlapPair::kZ;
    failed += !run_case<__nv_bfloat16, true, 2, kWeights>(c, 3, 1, rng, 3e-2, /*clocks=*/true);
    failed += !run_case<float, true, 1, kWeights>(c, 4, 2, rng, 5e-3);
    count += 2;
    if ((c.Cout + 127) / 128 >= 2) {
      failed += !run_case<__half, true, 2, kWeights>(c, 5, 1000, rng, 5e-3, /*clocks=*/false, /*parts=*/2);
      // The Z pair build (both CTAs on one pixel tile, each computing half its depthwise passes and
      // copying them into the other's buffer, each multiplying all of Z by half the output
      // channels): where the output channels have two tiles or more. One pair taking every tile
      // (both buffers reused: their barriers count both CTAs' consumers), a pair per tile, one Z
      // buffer, TF32, and (deep, deep_tiles: 3 tiles) parts whose halves are uneven. Cases of one
      // depthwise pass (deep_tiles' 72 channels in TF32: 3 passes; s2_asymmetric's 16: one) leave
      // rank 1 no passes to compute: it only receives.
      failed += !run_case<__nv_bfloat16, true, 2, kZ>(c, 3, 1, rng, 3e-2, /*clocks=*/true);
      failed += !run_case<__half, true, 1, kZ>(c, 4, 1000, rng, 5e-3);
      failed += !run_case<float, true, 2, kZ>(c, 5, 2, rng, 5e-3, /*clocks=*/true);
      failed += !run_case<float, true, 1, kZ>(c, 3, 1, rng, 5e-3);
      count += 5;
    }
  }
  // Z pairs with the output channels in 2 parts (4 halves of one 128-channel tile each, the last of
  // 72) and depthwise passes split unevenly (16-bit: 3 passes, 2 and 1; TF32: 5, 3 and 2).
  const Case z_parts{"z_parts", 1, 136, 13, 15, 456, 1, 1, 1, 1, 1, 1, Activation::kNone};
  if (case_selected(z_parts.name)) {
    failed += !run_case<__nv_bfloat16, true, 2, OverlapPair::kZ>(z_parts, 4, 3, rng, 3e-2, /*clocks=*/true, 2);
    failed += !run_case<float, true, 1, OverlapPair::kZ>(z_parts, 3, 1000, rng, 5e-3, /*clocks=*/false, 2);
    count += 2;
  }
  std::printf("%d runs, %d failed\n", count, failed);
  return failed == 0 ? 0 : 1;
}
