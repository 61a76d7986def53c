// The autotuner's rule for choosing among its candidates, apart from CUDA (plain C++, so
// tests/cpp/autotune_pick_check.cpp runs it on the host): each candidate launched once, untimed;
// one that fails, or whose launch is one already timed (the same variant: its knobs did not apply
// and the default, or another candidate's kernel, served it), is not timed; the others are, and the
// fastest wins, the earliest on a tie (candidate 0 is the default choice, so a tie keeps it).
#pragma once

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace xsep::cuda {

struct AutotunePick {
  int best = -1;   // the winning candidate; -1 where none could be timed
  int timed = 0;   // distinct launches timed
  float best_ms = std::numeric_limits<float>::infinity();
  float default_ms = std::numeric_limits<float>::infinity();  // candidate 0's, where it was timed
};

// first_launch(i) -> std::optional<std::string>: candidate i launched once, its variant (nullopt:
// the launch failed). time(i) -> std::optional<float>: candidate i's time (nullopt: it failed).
template <class FirstLaunch, class Time>
AutotunePick pick_fastest(int candidates, FirstLaunch&& first_launch, Time&& time) {
  AutotunePick pick;
  std::vector<std::string> launched;
  for (int i = 0; i < candidates; ++i) {
    const std::optional<std::string> variant = first_launch(i);
    if (!variant || std::find(launched.begin(), launched.end(), *variant) != launched.end()) continue;
    launched.push_back(*variant);
    const std::optional<float> ms = time(i);
    if (!ms) continue;
    ++pick.timed;
    if (i == 0) pick.default_ms = *ms;
    if (*ms < pick.best_ms) pick.best_ms = *ms, pick.best = i;
  }
  return pick;
}

}  // namespace xsep::cuda
