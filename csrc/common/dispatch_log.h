// Which kernel ran. With XSEP_LOG_DISPATCH=1: one stderr line the first time each variant (kernel
// or fallback path) is chosen in the process, so fallbacks are visible, never silent. While
// recording is on (xsep bench turns it on around a row's calls), every distinct line is also kept
// until taken, so a result file can say which kernels served each row.
#pragma once

#include <string>
#include <vector>

namespace xsep {

void log_dispatch(const std::string& op, const std::string& variant);
// Whether a log_dispatch call would do anything (printing or recording): lets a hot path skip
// building its line.
bool dispatch_log_active();

void record_dispatches(bool on);
// The distinct lines logged since the last take, in the order first seen.
std::vector<std::string> take_dispatches();

}  // namespace xsep
