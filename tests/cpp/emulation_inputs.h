// Inputs for the kernel emulations (tests/cpp/*_emulation.cpp): random values rounded to the
// kernel's storage type, beside the exact values the fp64 reference computes with.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "sepconv_params.h"

template <typename T>
struct RoundedInput {
  std::vector<T> dev;       // what the kernel reads
  std::vector<double> ref;  // the same values, for the reference
};

template <typename T>
RoundedInput<T> random_rounded(size_t n, double scale, std::mt19937& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  RoundedInput<T> in{std::vector<T>(n), std::vector<double>(n)};
  for (size_t i = 0; i < n; ++i) {
    in.dev[i] = static_cast<T>(static_cast<float>(normal(rng) * scale));
    in.ref[i] = static_cast<float>(in.dev[i]);
  }
  return in;
}

// XSEP_EMULATION_CASES=a,b,...: whether to run the case `name` (unset: every case). For running one
// case while debugging, and for the backward program's ThreadSanitizer run in CI, which takes four
// (the races are in the kernels' code, which a few shapes cover, and each case costs many times
// what it does under AddressSanitizer, which takes them all).
inline bool case_selected(const char* name) {
  const char* only = std::getenv("XSEP_EMULATION_CASES");
  if (only == nullptr) return true;
  const std::string selected = "," + std::string(only) + ",";
  return selected.find("," + std::string(name) + ",") != std::string::npos;
}

// Output extent of a convolution along one axis.
inline int conv_out_extent(int in, int pad_before, int pad_after, int k, int dilation, int stride) {
  return (in + pad_before + pad_after - dilation * (k - 1) - 1) / stride + 1;
}

// How far a forward kernel's output y (the layout p.y_stride says) is from the fp64 forward of the
// same rounded inputs (the intermediate is not rounded: the tolerance covers the kernels' rounding
// of it): the largest |y - reference| relative to the reference's largest finite magnitude;
// *unwritten: some element of y is still NaN where the reference is finite (the emulations poison y
// first), or finite where it is not (a non-finite weight, whose padding taps add nothing: cuDNN's
// rule and the kernels').
template <typename T>
double forward_error(const xsep::SepConvParams& p, const std::vector<double>& x, const std::vector<double>& wdw,
                     const std::vector<double>& wpw, const std::vector<double>& bias, const std::vector<T>& y,
                     bool* unwritten) {
  const int K = p.kh;  // square kernels
  std::vector<double> ref(y.size());
  double scale = 1e-30, worst = 0.0;
  std::vector<double> z(p.Cmid);
  for (int n = 0; n < p.N; ++n)
    for (int oy = 0; oy < p.Ho; ++oy)
      for (int ox = 0; ox < p.Wo; ++ox) {
        for (int cm = 0; cm < p.Cmid; ++cm) {
          z[cm] = 0.0;
          for (int t = 0; t < K * K; ++t) {
            const int iy = oy * p.sh - p.pt + (t / K) * p.dh, ix = ox * p.sw - p.pl + (t % K) * p.dw;
            if (iy < 0 || iy >= p.H || ix < 0 || ix >= p.W) continue;
            z[cm] += x[n * p.x_stride[0] + (cm / p.M) * p.x_stride[1] + iy * p.x_stride[2] + ix * p.x_stride[3]] *
                     wdw[cm * K * K + t];
          }
          z[cm] = xsep::activate(p.activation, z[cm]);
        }
        for (int co = 0; co < p.Cout; ++co) {
          double v = bias[co];
          for (int cm = 0; cm < p.Cmid; ++cm) v += wpw[static_cast<size_t>(co) * p.Cmid + cm] * z[cm];
          ref[n * p.y_stride[0] + co * p.y_stride[1] + oy * p.y_stride[2] + ox * p.y_stride[3]] = v;
          if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
        }
      }
  *unwritten = false;
  for (size_t i = 0; i < y.size(); ++i) {
    const double got = static_cast<float>(y[i]);
    if (!std::isfinite(ref[i])) {
      if (std::isfinite(got)) *unwritten = true;
      continue;
    }
    if (std::isnan(got)) *unwritten = true;
    worst = std::max(worst, std::fabs(got - ref[i]) / scale);
  }
  return worst;
}

// One forward call's inputs, rounded to T, with its params (x and y in channels_last or NCHW), y
// poisoned with NaN so an element a kernel does not write shows. Square kernels, multiplier M.
template <typename T>
struct ForwardCall {
  RoundedInput<T> x, wdw, wpw, bias;
  std::vector<T> y;
  xsep::SepConvParams p{};

  ForwardCall(int N, int C, int H, int W, int M, int Cout, int K, int stride, int dil, int pt, int pb, int pl, int pr,
              xsep::Activation act, bool channels_last, std::mt19937& rng) {
    const int Cmid = C * M;
    const int Ho = conv_out_extent(H, pt, pb, K, dil, stride), Wo = conv_out_extent(W, pl, pr, K, dil, stride);
    x = random_rounded<T>(static_cast<size_t>(N) * C * H * W, 1.0, rng);
    wdw = random_rounded<T>(static_cast<size_t>(Cmid) * K * K, 1.0 / K, rng);
    wpw = random_rounded<T>(static_cast<size_t>(Cout) * Cmid, 1.0 / std::sqrt(Cmid), rng);
    bias = random_rounded<T>(static_cast<size_t>(Cout), 1.0, rng);
    y.assign(static_cast<size_t>(N) * Cout * Ho * Wo, static_cast<T>(NAN));
    // Element strides (n, c, h, w) in the layout.
    auto strides = [&](int ch, int h, int w, int64_t* s) {
      if (channels_last) {
        s[0] = static_cast<int64_t>(h) * w * ch, s[1] = 1, s[2] = static_cast<int64_t>(w) * ch, s[3] = ch;
      } else {
        s[0] = static_cast<int64_t>(ch) * h * w, s[1] = static_cast<int64_t>(h) * w, s[2] = w, s[3] = 1;
      }
    };
    p.N = N, p.C = C, p.H = H, p.W = W, p.M = M, p.Cmid = Cmid, p.Cout = Cout;
    p.kh = p.kw = K, p.sh = p.sw = stride, p.pt = pt, p.pl = pl, p.dh = p.dw = dil, p.Ho = Ho, p.Wo = Wo;
    strides(C, H, W, p.x_stride);
    strides(Cout, Ho, Wo, p.y_stride);
    p.x = x.dev.data(), p.dw_weight = wdw.dev.data(), p.pw_weight = wpw.dev.data(), p.bias = bias.dev.data();
    p.y = y.data();
    p.activation = act, p.channels_last = channels_last;
    xsep::set_output_divisors(p);  // as the CUDA glue's make_params
  }

  // Depthwise weight `tap` of intermediate channel `cm` set to `value` (an infinity: hostile weights).
  void set_dw_weight(int cm, int tap, float value) {
    wdw.dev[static_cast<size_t>(cm) * p.kh * p.kw + tap] = static_cast<T>(value);
    wdw.ref[static_cast<size_t>(cm) * p.kh * p.kw + tap] = value;
  }

  // forward_error of y as the kernel left it.
  double error(bool* unwritten) const { return forward_error(p, x.ref, wdw.ref, wpw.ref, bias.ref, y, unwritten); }
};
