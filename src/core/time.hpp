// Time as a value. The protocol core never reads a clock: callers pass `Instant`s in.
// `Instant` counts microseconds from an arbitrary epoch (the driver's monotonic clock, or the
// simulator's virtual clock starting at zero).
#pragma once

#include <chrono>
#include <cstdint>

namespace hopgate::core {

struct MonoClock {
    using rep = std::int64_t;
    using period = std::micro;
    using duration = std::chrono::microseconds;
    using time_point = std::chrono::time_point<MonoClock>;
    static constexpr bool is_steady = true;
};

using Duration = std::chrono::microseconds;
using Instant = MonoClock::time_point;

inline constexpr Instant kInstantZero{};
inline constexpr Instant kInstantMax = Instant::max();

// Reads the process's steady clock as an Instant. Only I/O drivers call this.
Instant steady_now();

inline constexpr double to_seconds(Duration d) { return static_cast<double>(d.count()) / 1e6; }
inline constexpr Duration from_ms(std::int64_t ms) { return std::chrono::milliseconds(ms); }

}  // namespace hopgate::core
