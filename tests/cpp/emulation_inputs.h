// Inputs for the kernel emulations (tests/cpp/*_emulation.cpp): random values rounded to the
// kernel's storage type, beside the exact values the fp64 reference computes with.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

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

// Output extent of a convolution along one axis.
inline int conv_out_extent(int in, int pad_before, int pad_after, int k, int dilation, int stride) {
  return (in + pad_before + pad_after - dilation * (k - 1) - 1) / stride + 1;
}
