// Which kernel ran, when XSEP_LOG_DISPATCH=1: one stderr line the first time each variant
// (kernel or fallback path) is chosen in the process. Makes fallbacks visible, never silent.
#pragma once

#include <string>

namespace xsep {

void log_dispatch(const std::string& op, const std::string& variant);

}  // namespace xsep
