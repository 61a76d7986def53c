// The autotuner (XSEP_AUTOTUNE=1), in the spirit of cudnn.benchmark: on the first call of each
// problem (a forward's layer shape, or a backward's shape and the gradients it asks for), every kernel
// and build that could serve it is timed on that call's own tensors, and the fastest serves that
// problem from then on. The kernel choices' defaults (choose_forward_kernel, the backward's
// bwd_input_channels and resident_pw_max_pixels) are rules measured on one GPU (an H200) over the
// Xception layers; this measures the GPU and the shape at hand.
//
// Each candidate is a set of kernel knobs (kernel_knobs.h) put in force on this host thread only
// (ScopedKnobOverrides) for its launches. A knob asks and the launcher decides, so a candidate that
// does not apply to the shape is served by the default and is the same launch as another: the
// candidates are told apart by the variant each launch reports, and only distinct ones are timed.
// Every candidate computes the same op (the tests hold each one to the fp64 reference), and the
// outputs are written whole by each launch, so the last one's are the call's.
//
// Different candidates may round differently (another GEMM order, another split of a reduction), and
// which one wins can differ between processes, so the autotuner stands aside under
// torch.use_deterministic_algorithms(True): then the defaults serve, the same bits on every run.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <string>

#include "../kernels/kernel_knobs.h"
#include "../kernels/sepconv_params.h"

namespace xsep::cuda {

enum class TunedOp { kForward, kBackward };

// XSEP_AUTOTUNE=1, no knob that picks a kernel set (a measurement of one kernel times that kernel,
// not the autotuner's choice), and deterministic algorithms not asked for.
bool autotune_wanted();

// What makes two calls the same problem for the kernel choice: sizes, strides (x's and y's, or in the
// backward grad_y's), layout, dtype, math mode, activation, whether there is a bias, the 16-byte
// alignment of x, y and the bias, and the device. The backward adds the gradients it asks for.
std::string autotune_key(const SepConvParams& p, DType dtype, int device);

struct Autotuned {
  const KnobOverrides* knobs;  // the fastest candidate's (live for the process)
  std::string summary;         // for the dispatch log: how many distinct launches were timed, and the margin
};

// The choice for `key` among `op`'s candidates: cached, or found by timing each candidate's `launch`
// on `stream`; nullptr knobs where there is none (`stream` capturing a CUDA graph, where timing cannot
// synchronise, and nothing cached: the default serves, and the next call outside a capture times).
// `launch` launches the op with the knobs in force on this thread and returns its result; it must
// write every output whole.
Autotuned autotuned(TunedOp op, const std::string& key, cudaStream_t stream,
                    const std::function<LaunchResult()>& launch);

}  // namespace xsep::cuda
