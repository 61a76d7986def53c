// The autotuner's choice rule (csrc/cuda/autotune_pick.h) on made-up launches and
// times: which candidates it times, and which it picks. Run by tests/test_autotune_pick.py.
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autotune_pick.h"

using xsep::cuda::AutotunePick;
using xsep::cuda::pick_fastest;

namespace {

// A candidate as the autotuner sees it: the variant its first launch reports (nullopt: the launch
// fails) and its time (nullopt: the timing fails).
struct Made {
  std::optional<std::string> variant;
  std::optional<float> ms;
};

int failed = 0;

void check(const char* what, const std::vector<Made>& made, int best, int timed, std::vector<int> expect_timed) {
  std::vector<int> times_asked;
  const AutotunePick pick = pick_fastest(
      static_cast<int>(made.size()), [&](int i) { return made[i].variant; },
      [&](int i) {
        times_asked.push_back(i);
        return made[i].ms;
      });
  const bool ok = pick.best == best && pick.timed == timed && times_asked == expect_timed;
  std::printf("%s %s: best %d, %d timed\n", ok ? "ok    " : "FAILED", what, pick.best, pick.timed);
  failed += !ok;
}

}  // namespace

int main() {
  check("the default fastest", {{"a", 1.0f}, {"b", 2.0f}, {"c", 3.0f}}, 0, 3, {0, 1, 2});
  check("a later candidate fastest", {{"a", 3.0f}, {"b", 2.0f}, {"c", 1.0f}, {"d", 1.5f}}, 2, 4, {0, 1, 2, 3});
  // A knob that did not apply: the same launch as the default (variant "a"), not timed again, even
  // where its time would have been the least.
  check("a fallback is not timed again", {{"a", 2.0f}, {"a", 0.5f}, {"b", 1.0f}}, 2, 2, {0, 2});
  check("a tie keeps the earlier", {{"a", 1.0f}, {"b", 1.0f}}, 0, 2, {0, 1});
  check("a failed launch is no choice", {{"a", 2.0f}, {std::nullopt, 0.1f}, {"b", 1.5f}}, 2, 2, {0, 2});
  // A failed timing: no choice, and its variant is not timed again under another candidate.
  check("a failed timing is no choice", {{"a", 2.0f}, {"b", std::nullopt}, {"b", 0.5f}}, 0, 1, {0, 1});
  check("nothing timed", {{std::nullopt, 1.0f}, {"a", std::nullopt}}, -1, 0, {1});
  check("no candidates", {}, -1, 0, {});
  {
    const AutotunePick pick = pick_fastest(
        2, [](int i) { return std::optional<std::string>(i == 0 ? "a" : "b"); },
        [](int i) { return std::optional<float>(i == 0 ? 2.0f : 1.0f); });
    const bool ok = pick.default_ms == 2.0f && pick.best_ms == 1.0f;
    std::printf("%s the default's time and the best's\n", ok ? "ok    " : "FAILED");
    failed += !ok;
  }
  std::printf("%d failed\n", failed);
  return failed == 0 ? 0 : 1;
}
