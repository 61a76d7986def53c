// The fused backward: planning (host, plain C++) and the launchers, one per dtype (each in its
// own .cu). A launcher runs on `stream`, never synchronises, and returns the first launch error.
//
// Kernels (csrc/kernels/sepconv_bwd_kernel.cuh):
//   input-gradient kernel  per input tile: dZ = dY . W_pw over the tile's halo of outputs on tensor
//                          cores, kept in shared memory; grad_x gathered from it (written once);
//                          grad_dw partial sums of x * dZ per tile
//   pw-gradient kernel     grad_pw = dY^T . Z, Z recomputed from x, split-K over pixels into
//                          partial sums; grad_bias partial sums of dY on the side
//   reduce kernel          adds the partial sums in a fixed order (deterministic, no atomics)
// On Hopper the pw-gradient kernel with Z resident (sepconv_bwd_pw_resident_kernel.cuh) takes its
// place where it applies: its own split of the pixels (plan_resident_pw), Z computed once per pixel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "kernel_knobs.h"
#include "sepconv_bwd_plan.h"
#include "sepconv_params.h"

namespace xsep {

// Block tile sizes the plan must agree with (the kernels static_assert the same numbers).
inline constexpr int kBwdInputRows = 128;            // input-gradient GEMM M: output pixels of a tile's ext
inline constexpr int kBwdInputChannels = 64;         // input-gradient GEMM N: depthwise channels per CTA
inline constexpr int kBwdInputChannelsWide = 128;    // 16-bit Hopper's from 128 channels (bwd_input_channels)
inline constexpr int kBwdInputChannelsWidest = 256;  // the wgmma one's (XSEP_BWD_CHANNELS=256)
inline constexpr int kBwdPwPixels = 32;              // pw-gradient GEMM K chunk: pixels

// The input-gradient kernel's depthwise channels per CTA where XSEP_BWD_CHANNELS does not say (64
// or 128 forces one; 256 is the launcher's, else 128): 128 for 16-bit types on Hopper where the
// layer has 128 depthwise channels or more, else 64. On an H200 (3ac7082, gpu-compare-backward.md)
// 128 made the backward of every such Xception layer faster, bf16 at N=32 and 128 (0.26-0.39x of
// cuDNN against 0.22-0.33x), and the 64-channel layer slower (0.25x against 0.36x: half of each
// CTA's channels empty). fp32 on TF32 and other GPUs were not timed at 128.
inline int bwd_input_channels(int cmid, int element_bytes, int major) {
  const std::string knob = kernel_knob(KernelKnob::kBwdChannels);
  if (knob == "64") return kBwdInputChannels;
  if (knob == "128" || knob == "256") return kBwdInputChannelsWide;
  return element_bytes == 2 && major == 9 && cmid >= kBwdInputChannelsWide ? kBwdInputChannelsWide : kBwdInputChannels;
}

// Fills the plan fields of p from p.fwd. False when the fused kernels cannot take the shape (a
// depth multiplier above kBwdInputChannels, or a kernel/dilation whose halo exceeds a tile);
// the caller then takes the composite path and logs it.
inline bool plan_backward(SepConvBwdParams& p, int num_sms) {
  const SepConvParams& f = p.fwd;
  if (f.M > kBwdInputChannels) return false;
  const BwdGeometry g{f.N, f.H, f.W, f.Ho, f.Wo, f.kh, f.kw, f.sh, f.sw, f.pt, f.pl, f.dh, f.dw};
  p.tiles = plan_bwd_tiles(g, kBwdInputRows);
  if (!p.tiles.ok) return false;
  p.channels_per_cta = kBwdInputChannels / f.M;
  p.dw_partials = static_cast<int64_t>(f.N) * p.tiles.tiles_y * p.tiles.tiles_x;

  // Split-K of grad_pw: enough CTAs for ~two waves of two CTAs per SM, within 512 splits and
  // 64 Mi floats (256 MB) of partial sums.
  const int64_t pixels = static_cast<int64_t>(f.N) * f.Ho * f.Wo;
  const int64_t chunks = (pixels + kBwdPwPixels - 1) / kBwdPwPixels;
  const int64_t base = static_cast<int64_t>((f.Cmid + 63) / 64) * ((f.Cout + 127) / 128);
  const int64_t max_splits = (int64_t{64} << 20) / (static_cast<int64_t>(f.Cout) * f.Cmid + f.Cout);
  int64_t splits = (4 * static_cast<int64_t>(num_sms) + base - 1) / base;
  if (splits > 512) splits = 512;
  if (splits > max_splits) splits = max_splits;
  if (splits < 1) splits = 1;
  if (splits > chunks) splits = chunks > 0 ? chunks : 1;
  p.pw_pixels_per_split = ((chunks + splits - 1) / splits) * kBwdPwPixels;
  p.pw_splits = static_cast<int>(pixels > 0 ? (pixels + p.pw_pixels_per_split - 1) / p.pw_pixels_per_split : 1);
  // Grid limits: tiles on grid.x, channel chunks on grid.y, reduce groups on grid.y.
  const int64_t chunks_c = (f.C + p.channels_per_cta - 1) / p.channels_per_cta;
  return p.dw_partials <= 0x7fffffff && chunks_c <= 65535 && (p.dw_partials + 31) / 32 <= 65535;
}

// p with the input-gradient kernel's channel chunk set to `channels` Cmid channels per CTA (whole
// depthwise groups: channels / M input channels; plan_backward guarantees M <= 64).
inline SepConvBwdParams with_input_channels(const SepConvBwdParams& p, int channels) {
  SepConvBwdParams q = p;
  q.channels_per_cta = channels / p.fwd.M;
  return q;
}

// Host side: can the staged input-gradient kernel (sepconv_bwd_input_staged_kernel.cuh, or its wgmma
// form) take this call? kVec: elements per 16-byte vector of the dtype (the math mode is the
// launcher's check).
inline bool staged_input_applies(const SepConvBwdParams& p, int major, int kVec) {
  const SepConvParams& f = p.fwd;
  return major >= 8 && f.kh == 3 && f.kw == 3 && f.channels_last && f.y_stride[1] == 1 && f.y_stride[0] % kVec == 0 &&
         f.y_stride[2] % kVec == 0 && f.y_stride[3] % kVec == 0 && reinterpret_cast<uintptr_t>(p.grad_y) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(f.pw_weight) % 16 == 0 && f.Cout % kVec == 0 && f.Cmid % kVec == 0 &&
         (p.channels_per_cta * f.M) % kVec == 0;
}

// Host side: can the staged pw-gradient kernel (sepconv_bwd_pw_staged_kernel.cuh) take this call? kVec: elements per
// 16-byte vector of the dtype (the math mode is the launcher's check).
inline bool staged_pw_applies(const SepConvBwdParams& p, int major, int kVec) {
  const SepConvParams& f = p.fwd;
  auto aligned_pixels = [kVec](const int64_t* stride, const void* ptr) {
    return stride[1] == 1 && stride[0] % kVec == 0 && stride[2] % kVec == 0 && stride[3] % kVec == 0 &&
           reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
  };
  return major >= 8 && f.kh == 3 && f.kw == 3 && f.M == 1 && f.channels_last && f.C % kVec == 0 && f.Cout % kVec == 0 &&
         aligned_pixels(f.x_stride, f.x) && aligned_pixels(f.y_stride, p.grad_y);
}

// p as it would be with x and grad_y copied to dense channels_last tensors (fresh allocations:
// 16-byte aligned; the copies' pointers are the caller's to set).
inline SepConvBwdParams with_dense_channels_last(const SepConvBwdParams& p) {
  SepConvBwdParams q = p;
  SepConvParams& f = q.fwd;
  const int64_t x_row = static_cast<int64_t>(f.W) * f.C, y_row = static_cast<int64_t>(f.Wo) * f.Cout;
  const int64_t x_dense[4] = {f.H * x_row, 1, x_row, f.C}, y_dense[4] = {f.Ho * y_row, 1, y_row, f.Cout};
  for (int d = 0; d < 4; ++d) f.x_stride[d] = x_dense[d], f.y_stride[d] = y_dense[d];
  f.channels_last = true;
  f.x = nullptr;
  q.grad_y = nullptr;
  return q;
}

// Whether the backward should run on channels_last copies of x and grad_y (and write grad_x to a
// channels_last copy): where the staged kernels cannot read this call's layout (NCHW, a view,
// unaligned channels_last) but would read such copies. Elsewhere the first kernels run: on an H200
// the NCHW backward (first kernels) took 2.3-6.5x the channels_last one (staged kernels) on the
// Xception layers in bf16 (benchmarks/results/gpu-compare-backward.md, the same run); the copies
// add three passes over activation-sized tensors. tensor_cores: 16-bit, or fp32 with TF32 allowed (exact fp32 takes the
// first kernels in any layout). Not where XSEP_BWD_KERNEL=first asks for those.
inline bool backward_wants_channels_last_copies(const SepConvBwdParams& p, int major, int element_bytes,
                                                bool tensor_cores) {
  if (!tensor_cores || kernel_knob_is(KernelKnob::kBwdKernel, "first")) return false;
  const int kVec = 16 / element_bytes;
  const auto staged_applies = [&](const SepConvBwdParams& q) {
    const bool input = (q.grad_x != nullptr || q.grad_dw != nullptr) && staged_input_applies(q, major, kVec);
    const bool pw = (q.grad_pw != nullptr || q.grad_bias != nullptr) && staged_pw_applies(q, major, kVec);
    return input || pw;
  };
  return !staged_applies(p) && staged_applies(with_dense_channels_last(p));
}

// ---- the resident pw-gradient kernel's plan (sepconv_bwd_pw_resident_kernel.cuh) ----
inline constexpr int kPwResidentChannels = 64;                         // depthwise channels per CTA (the GEMM's M)
inline constexpr int kPwResidentMaxPixels = 1024;                      // pixels of Z a CTA keeps: 128 KB in 16 bits
inline constexpr int kPwResidentStagePixels = 64;                      // dY pixels a stage (a split is whole stages)
inline constexpr int64_t kPwResidentMaxPartials = int64_t{128} << 20;  // partial-sum floats (512 MB)
inline constexpr int kPwResidentTwoCtaPixels = 512;  // XSEP_BWD_PW_PIXELS=512: half the Z, two CTAs per SM

// The resident kernel's largest split for this call: kPwResidentTwoCtaPixels where the kernel with
// 64 output channels per warpgroup (Cout <= 128: 128 registers a thread) fits twice in an SM, so
// one CTA's Z phase runs beside the other's GEMM; else kPwResidentMaxPixels (one CTA per SM).
// XSEP_BWD_PW_PIXELS=1024 keeps one CTA per SM everywhere. On an H200 (3ac7082,
// gpu-compare-backward.md) the two CTAs made the backward of the two such Xception layers (64->128
// and 128->128 @147, bf16) 5-8% faster at N=32 and 128, for twice the partial sums.
inline int resident_pw_max_pixels(int cout) {
  return cout <= 128 && !kernel_knob_is(KernelKnob::kBwdPwPixels, "1024") ? kPwResidentTwoCtaPixels
                                                                          : kPwResidentMaxPixels;
}
inline constexpr int resident_pw_ctas_per_sm(int max_pixels) { return max_pixels <= kPwResidentTwoCtaPixels ? 2 : 1; }

// Whether this call wants the resident pw-gradient kernel on a device of compute capability `major`
// (XSEP_BWD_KERNEL unset or `resident`, Hopper, a 16-bit dtype, grad_pw asked for, and the layout it
// reads: the staged kernel's, with grad_y dense channels_last: pixel q's channels at q * Cout).
// Whether its code was built is the launcher's check.
inline bool resident_pw_wanted(const SepConvBwdParams& p, int major, int element_bytes) {
  const std::string knob = kernel_knob(KernelKnob::kBwdKernel);
  if (!(knob.empty() || knob == "resident") || major != 9 || element_bytes != 2 || p.grad_pw == nullptr) return false;
  const SepConvParams& f = p.fwd;
  const int64_t row = static_cast<int64_t>(f.Wo) * f.Cout;
  const bool dense_y =
      f.y_stride[3] == f.Cout && (f.Ho == 1 || f.y_stride[2] == row) && (f.N == 1 || f.y_stride[0] == f.Ho * row);
  return staged_pw_applies(p, major, 16 / element_bytes) && dense_y;
}

// Sets p.pw_resident_splits, p.pw_resident_pixels_per_split and p.pw_resident_max_pixels: splits
// of whole stages, at most max_pixels each (0: resident_pw_max_pixels), as many as fill the waves
// the fewest such splits need (resident_pw_ctas_per_sm CTAs per SM, a CTA per split and chunk of 64
// channels); none (0) where the partial sums would pass kPwResidentMaxPartials floats or the grid's
// 65535 splits.
inline void plan_resident_pw(SepConvBwdParams& p, int num_sms, int max_pixels = 0) {
  const SepConvParams& f = p.fwd;
  p.pw_resident_splits = 0;
  p.pw_resident_pixels_per_split = 0;
  p.pw_resident_max_pixels = 0;
  if (max_pixels <= 0) max_pixels = resident_pw_max_pixels(f.Cout);
  const int64_t pixels = static_cast<int64_t>(f.N) * f.Ho * f.Wo;
  if (pixels <= 0 || num_sms <= 0) return;
  const int64_t chunks = (f.Cmid + kPwResidentChannels - 1) / kPwResidentChannels;
  const int64_t slots = static_cast<int64_t>(num_sms) * resident_pw_ctas_per_sm(max_pixels);
  const int64_t fewest = (pixels + max_pixels - 1) / max_pixels;
  const int64_t waves = (fewest * chunks + slots - 1) / slots;
  const int64_t splits = fewest > waves * slots / chunks ? fewest : waves * slots / chunks;
  const int64_t per_split = ((pixels + splits - 1) / splits + kPwResidentStagePixels - 1) / kPwResidentStagePixels *
                            kPwResidentStagePixels;  // <= max_pixels, as splits >= fewest
  const int64_t used = (pixels + per_split - 1) / per_split;
  if (used > 65535 || used * f.Cout * f.Cmid > kPwResidentMaxPartials) return;
  p.pw_resident_splits = static_cast<int>(used);
  p.pw_resident_pixels_per_split = per_split;
  p.pw_resident_max_pixels = max_pixels;
}

// p with the resident kernel's split in the fields the pw-gradient kernels and their reduction read.
inline SepConvBwdParams with_resident_pw(const SepConvBwdParams& p) {
  SepConvBwdParams q = p;
  q.pw_splits = p.pw_resident_splits;
  q.pw_pixels_per_split = p.pw_resident_pixels_per_split;
  return q;
}

// The output channels per warpgroup of the resident kernel (its wgmma N): 64 where Cout <= 128
// (one slice of 128), else 128.
inline int resident_pw_half(int cout) { return cout <= 128 ? 64 : 128; }

// Scratch rows the fixed-order reduction of `count` partial sums needs (reduce_partials).
inline int64_t reduce_scratch_rows(int64_t count) { return count > 64 ? (count + 31) / 32 : 0; }

// fp32 elements of workspace: grad_dw partials, grad_pw partials, grad_bias partials, then the
// scratch the reductions share (they run one after the other on the stream). The pw rows are the
// larger of the two pw-gradient plans' splits: the launcher takes either.
inline int64_t backward_workspace_floats(const SepConvBwdParams& p) {
  const SepConvParams& f = p.fwd;
  const int64_t splits = p.pw_splits > p.pw_resident_splits ? p.pw_splits : p.pw_resident_splits;
  const int64_t dw_row = static_cast<int64_t>(f.Cmid) * f.kh * f.kw;
  const int64_t pw_row = static_cast<int64_t>(f.Cout) * f.Cmid;
  const int64_t dw_scratch = reduce_scratch_rows(p.dw_partials) * dw_row;
  const int64_t pw_scratch = reduce_scratch_rows(splits) * pw_row;
  return p.dw_partials * dw_row + splits * (pw_row + f.Cout) + (dw_scratch > pw_scratch ? dw_scratch : pw_scratch);
}

LaunchResult sepconv_backward_fp16(const SepConvBwdParams& p, cudaStream_t stream);
LaunchResult sepconv_backward_bf16(const SepConvBwdParams& p, cudaStream_t stream);
LaunchResult sepconv_backward_fp32(const SepConvBwdParams& p, cudaStream_t stream);

}  // namespace xsep
