// The tunnel core on the deterministic simulated network: scenarios and seeded properties.
// A failing case prints its seed; `build/bin/hopgate-sim --seed N ...` replays it exactly.
#include <gtest/gtest.h>

#include <cstdlib>

#include "sim/scenario.hpp"

namespace hopgate::sim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

LinkConfig link(double loss_pct, int rtt_ms, int jitter_ms = 0, double rate_mbit = 0,
                std::size_t queue_pkts = 0) {
    LinkConfig l;
    l.delay = milliseconds(rtt_ms / 2);
    l.jitter = milliseconds(jitter_ms);
    l.loss = loss_pct / 100.0;
    l.rate_bps = static_cast<std::uint64_t>(rate_mbit * 1e6);
    l.queue_packets = queue_pkts;
    return l;
}

bool sanitized() { return std::getenv("HG_SANITIZED") != nullptr; }

// One stream on a clean link delivers every byte in order, both ways.
TEST(ProtoSim, CleanSingleStream) {
    ScenarioConfig c;
    c.link = link(0, 20);
    c.bytes = 1 << 20;
    auto r = run_scenario(c);
    EXPECT_TRUE(r.ok) << r.to_json();
    EXPECT_EQ(r.payload_bytes, 2u << 20);
}

}  // namespace
}  // namespace hopgate::sim
