#include "dispatch_log.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>

namespace xsep {
namespace {

std::mutex mutex;
std::atomic<bool> recording{false};
std::vector<std::string> recorded;  // guarded by mutex

bool printing() {
  static const bool enabled = [] {
    const char* v = std::getenv("XSEP_LOG_DISPATCH");
    return v != nullptr && v[0] != '\0' && v[0] != '0';
  }();
  return enabled;
}

}  // namespace

bool dispatch_log_active() { return printing() || recording.load(std::memory_order_relaxed); }

void log_dispatch(const std::string& op, const std::string& variant) {
  const bool enabled = printing();
  const bool record = recording.load(std::memory_order_relaxed);
  if (!enabled && !record) return;
  static std::set<std::string> printed;
  const std::string line = op + ": " + variant;
  std::lock_guard<std::mutex> lock(mutex);
  if (enabled && printed.insert(line).second) std::fprintf(stderr, "xsep dispatch: %s\n", line.c_str());
  if (record && std::find(recorded.begin(), recorded.end(), line) == recorded.end()) recorded.push_back(line);
}

void record_dispatches(bool on) { recording.store(on, std::memory_order_relaxed); }

std::vector<std::string> take_dispatches() {
  std::lock_guard<std::mutex> lock(mutex);
  std::vector<std::string> lines;
  lines.swap(recorded);
  return lines;
}

}  // namespace xsep
