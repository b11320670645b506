// Wiring of hopgate-impair: builds the relay and the control port on one io_context, prints the
// start line, handles signals, runs until SIGTERM/SIGINT, prints the final stats.
#pragma once

#include <cstdio>

#include "impair/options.hpp"

namespace hopgate::impair {

// Runs until a terminating signal. Writes the start line and the final stats line to `out`
// (flushed). Throws on start-up failure (bad address, bind failure); returns the exit code.
int run(const Options& options, std::FILE* out);

}  // namespace hopgate::impair
