// Turn a runtime flag into a compile-time constant for a template, as causal-conv1d does:
//   BOOL_SWITCH(p.channels_last, kChannelsLast, [&] { launch<kChannelsLast>(p); });
#pragma once

#define BOOL_SWITCH(COND, CONST_NAME, ...)      \
  [&] {                                         \
    if (COND) {                                 \
      constexpr static bool CONST_NAME = true;  \
      return __VA_ARGS__();                     \
    } else {                                    \
      constexpr static bool CONST_NAME = false; \
      return __VA_ARGS__();                     \
    }                                           \
  }()
