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
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "sepconv_bwd_plan.h"
#include "sepconv_params.h"

namespace xsep {

// Block tile sizes the plan must agree with (the kernels static_assert the same numbers).
inline constexpr int kBwdInputRows = 128;          // input-gradient GEMM M: output pixels of a tile's ext
inline constexpr int kBwdInputChannels = 64;       // input-gradient GEMM N: depthwise channels per CTA
inline constexpr int kBwdInputChannelsWide = 128;  // the staged kernels' option (XSEP_BWD_CHANNELS=128)
inline constexpr int kBwdPwPixels = 32;            // pw-gradient GEMM K chunk: pixels

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

// Scratch rows the fixed-order reduction of `count` partial sums needs (reduce_partials).
inline int64_t reduce_scratch_rows(int64_t count) { return count > 64 ? (count + 31) / 32 : 0; }

// fp32 elements of workspace: grad_dw partials, grad_pw partials, grad_bias partials, then the
// scratch the reductions share (they run one after the other on the stream).
inline int64_t backward_workspace_floats(const SepConvBwdParams& p) {
  const SepConvParams& f = p.fwd;
  const int64_t dw_row = static_cast<int64_t>(f.Cmid) * f.kh * f.kw;
  const int64_t pw_row = static_cast<int64_t>(f.Cout) * f.Cmid;
  const int64_t dw_scratch = reduce_scratch_rows(p.dw_partials) * dw_row;
  const int64_t pw_scratch = reduce_scratch_rows(p.pw_splits) * pw_row;
  return p.dw_partials * dw_row + static_cast<int64_t>(p.pw_splits) * (pw_row + f.Cout) +
         (dw_scratch > pw_scratch ? dw_scratch : pw_scratch);
}

LaunchResult sepconv_backward_fp16(const SepConvBwdParams& p, cudaStream_t stream);
LaunchResult sepconv_backward_bf16(const SepConvBwdParams& p, cudaStream_t stream);
LaunchResult sepconv_backward_fp32(const SepConvBwdParams& p, cudaStream_t stream);

}  // namespace xsep
