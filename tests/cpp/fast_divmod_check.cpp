// csrc/kernels/fast_divmod.h against the / and % operators, on the host: every divisor up to 4096
// with dividends at the edges (0, around multiples of the divisor, the largest), then divisors
// near powers of two and up to 2^31 - 1 with random dividends below 2^31. Prints one line; exits 0
// when every quotient and remainder agrees.
#include <cstdio>
#include <random>
#include <vector>

#include "fast_divmod.h"

int main() {
  long checked = 0, wrong = 0;
  auto check = [&](const xsep::FastDivmod& f, int n) {
    int q, r;
    f.divmod(n, &q, &r);
    ++checked;
    if (q != n / f.divisor || r != n % f.divisor) {
      if (++wrong <= 10) std::printf("wrong: %d / %d gave %d rem %d\n", n, f.divisor, q, r);
    }
  };
  constexpr int kMax = 0x7fffffff;
  for (int d = 1; d <= 4096; ++d) {
    const xsep::FastDivmod f(d);
    for (int n = 0; n < 3 * d + 3; ++n) check(f, n);
    for (long k = kMax / d - 2; k <= kMax / d; ++k)
      for (long e = -1; e <= 1; ++e)
        if (k * d + e >= 0 && k * d + e <= kMax) check(f, static_cast<int>(k * d + e));
    check(f, kMax);
  }
  std::mt19937 rng(1234);
  std::vector<int> divisors = {kMax, kMax - 1, 1 << 30, (1 << 30) + 1, (1 << 30) - 1, 361, 1369, 5476, 21609};
  for (int p = 12; p < 31; ++p) divisors.insert(divisors.end(), {(1 << p) - 1, 1 << p, (1 << p) + 1});
  std::uniform_int_distribution<int> any(0, kMax), small(1, kMax);
  for (int i = 0; i < 2000; ++i) divisors.push_back(small(rng));
  for (int d : divisors) {
    const xsep::FastDivmod f(d);
    for (int i = 0; i < 2000; ++i) check(f, any(rng));
    check(f, kMax);
    check(f, d - 1);
    check(f, d);
  }
  std::printf("%ld divisions checked, %ld wrong\n", checked, wrong);
  return wrong == 0 ? 0 : 1;
}
