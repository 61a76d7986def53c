// The forward's autotuner (XSEP_AUTOTUNE=1), in the spirit of cudnn.benchmark: on the first call of
// each layer shape, every forward kernel and build that could serve it is timed on that call's own
// tensors, and the fastest serves that shape from then on. The kernel choice's default
// (choose_forward_kernel) is a rule measured on one GPU (an H200) over the Xception layers; this
// measures the GPU and the shape at hand.
//
// Each candidate is a set of kernel knobs (kernel_knobs.h) put in force on this host thread only
// (ScopedKnobOverrides) for its launches. A knob asks and the launcher decides, so a candidate that
// does not apply to the shape is served by the default and is the same launch as another: the
// candidates are told apart by the variant each launch reports, and only distinct ones are timed.
// Every candidate computes the same op (the tests hold each one to the fp64 reference), and the
// output is written whole by each launch, so the last one's is the call's.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <string>

#include "../kernels/kernel_knobs.h"
#include "../kernels/sepconv_params.h"

namespace xsep::cuda {

// XSEP_AUTOTUNE=1 and no knob that picks a kernel set (a measurement of one kernel times that
// kernel, not the autotuner's choice).
bool forward_autotune_wanted();

// What makes two calls the same problem for the kernel choice: sizes, strides, layout, dtype, math
// mode, activation, whether there is a bias, and the device.
std::string forward_autotune_key(const SepConvParams& p, DType dtype, int device);

struct AutotunedForward {
  const KnobOverrides* knobs;  // the fastest candidate's (live for the process)
  std::string summary;         // for the dispatch log: how many distinct launches were timed, and the margin
};

// The choice for `key`: cached, or found by timing each candidate's `launch` on `stream`; nullptr
// knobs where there is none (`stream` capturing a CUDA graph, where timing cannot synchronise, and
// nothing cached: the default serves, and the next call outside a capture times). `launch` launches
// the forward with the knobs in force on this thread and returns its result; it must write the
// whole output.
AutotunedForward autotuned_forward(const std::string& key, cudaStream_t stream,
                                   const std::function<LaunchResult()>& launch);

}  // namespace xsep::cuda
