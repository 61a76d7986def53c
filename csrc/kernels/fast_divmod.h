// Division by a divisor fixed for a kernel's lifetime, by a multiply-high and a shift instead of the
// GPU's long integer-division sequence (a 64-bit division is over a hundred instructions): for the
// pixel-index arithmetic of loops that find a pixel's image, row and column every step.
//
// Granlund and Montgomery's round-up method, in the form for dividends below 2^31: with
// l = ceil(log2 d) and m = floor(2^32 (2^l - d) / d) + 1 (it fits 32 bits), n / d =
// (umulhi(m, n) + n) >> l exactly for 0 <= n < 2^31 and 1 <= d < 2^31 (the sum stays below 2^32).
// Checked on the host over divisors and dividends at the edges by tests/cpp/fast_divmod_check.cpp.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace xsep {

struct FastDivmod {
  int divisor = 1;
  uint32_t multiplier = 1;
  int shift = 0;

  FastDivmod() = default;
  // d >= 1 (and below 2^31).
  XSEP_HD explicit FastDivmod(int d) : divisor(d) {
    while ((int64_t{1} << shift) < d) ++shift;  // l = ceil(log2 d)
    multiplier = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }

  // n / divisor, for 0 <= n < 2^31.
  XSEP_HD int div(int n) const {
    const auto un = static_cast<uint32_t>(n);
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(multiplier, un);
#else
    const auto hi = static_cast<uint32_t>((static_cast<uint64_t>(multiplier) * un) >> 32);
#endif
    return static_cast<int>((hi + un) >> shift);
  }

  // n / divisor and n % divisor.
  XSEP_HD void divmod(int n, int* quotient, int* remainder) const {
    *quotient = div(n);
    *remainder = n - *quotient * divisor;
  }
};

}  // namespace xsep
