#include "impair/control.hpp"
#include "fake_relay.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace hopgate::impair {
namespace {


// Each command answers one line; state changes only on success.
TEST(ControlCommand, Basics) {
    FakeRelay r;
    EXPECT_EQ(execute_command(r, "cut").line, "ok cut");
    EXPECT_TRUE(r.cut_);
    EXPECT_EQ(execute_command(r, "restore\r").line, "ok restore");
    EXPECT_FALSE(r.cut_);
    EXPECT_EQ(execute_command(r, "rebind").line, "ok rebind 3");
    EXPECT_EQ(execute_command(r, "stats").line, "ok {}");
    EXPECT_TRUE(execute_command(r, "quit").close);
    EXPECT_EQ(execute_command(r, "  set   down  delay-ms 12.5 ").line, "ok set");
    EXPECT_EQ(r.p[1].delay, std::chrono::microseconds(12500));
    EXPECT_EQ(r.p[0].delay, std::chrono::microseconds(0));
    EXPECT_EQ(execute_command(r, "set loss 5").line, "ok set");
    EXPECT_EQ(r.p[0].loss_pct, 5);
    EXPECT_EQ(r.p[1].loss_pct, 5);
}

// Bad input yields "err ...", and a failed set changes neither direction.
TEST(ControlCommand, ErrorsChangeNothing) {
    FakeRelay r;
    for (const char* bad : {"", "x", "set", "set loss", "set loss 1 2 3", "set loss 1e9",
                            "set up loss -1", "set loss inf", "set x loss 1", "stats now",
                            "set rate-mbit 0.0001", "set queue-kb 99999999999999999999"}) {
        const auto rep = execute_command(r, bad);
        EXPECT_EQ(rep.line.rfind("err ", 0), 0u) << bad << " -> " << rep.line;
        EXPECT_FALSE(rep.close);
    }
    EXPECT_EQ(r.p[0], LinkParams{});
    EXPECT_EQ(r.p[1], LinkParams{});
    r.tcp = true;
    EXPECT_EQ(execute_command(r, "rebind").line.rfind("err ", 0), 0u);
    EXPECT_EQ(execute_command(r, "set loss 1").line.rfind("err ", 0), 0u);
    EXPECT_EQ(execute_command(r, "set delay-ms 1").line, "ok set");
}

}  // namespace
}  // namespace hopgate::impair
