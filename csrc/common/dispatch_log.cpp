#include "dispatch_log.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>

namespace xsep {

void log_dispatch(const std::string& op, const std::string& variant) {
  static const bool enabled = [] {
    const char* v = std::getenv("XSEP_LOG_DISPATCH");
    return v != nullptr && v[0] != '\0' && v[0] != '0';
  }();
  if (!enabled) return;
  static std::mutex mutex;
  static std::set<std::string> seen;
  const std::string line = op + ": " + variant;
  std::lock_guard<std::mutex> lock(mutex);
  if (seen.insert(line).second) std::fprintf(stderr, "xsep dispatch: %s\n", line.c_str());
}

}  // namespace xsep
