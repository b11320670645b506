#include "impair/options.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace hopgate::impair {
namespace {

Options parse(std::vector<std::string_view> args) { return parse_options(args); }

// Shared flags set both directions; up-/down- flags override whatever the order.
TEST(ImpairOptions, SharedAndPerDirection) {
    const auto o = parse({"--up-loss=7", "--udp", "--listen", "127.0.0.1:0", "--target",
                          "[::1]:9000", "--loss", "1.5", "--delay-ms", "20", "--seed", "42"});
    EXPECT_EQ(o.mode, Mode::kUdp);
    EXPECT_EQ(o.listen.host, "127.0.0.1");
    EXPECT_EQ(o.listen.port, 0);
    EXPECT_EQ(o.target.host, "::1");
    EXPECT_EQ(o.target.port, 9000);
    EXPECT_EQ(o.up.loss_pct, 7);
    EXPECT_EQ(o.down.loss_pct, 1.5);
    EXPECT_EQ(o.up.delay, std::chrono::milliseconds(20));
    EXPECT_EQ(o.seed, 42u);
    EXPECT_FALSE(o.control.has_value());
}

// Every start-up mistake is one exception with a message.
TEST(ImpairOptions, Rejects) {
    const std::vector<std::vector<std::string_view>> bad = {
        {},
        {"--udp", "--tcp", "--listen", "a:1", "--target", "a:2"},
        {"--udp", "--listen", "a:1"},
        {"--udp", "--listen", "a:1", "--target", "a:0"},
        {"--udp", "--listen", "a", "--target", "a:2"},
        {"--udp", "--listen", "a:70000", "--target", "a:2"},
        {"--udp", "--listen", "a:1", "--target", "a:2", "--loss"},
        {"--udp", "--listen", "a:1", "--target", "a:2", "--loss", "x"},
        {"--udp", "--listen", "a:1", "--target", "a:2", "--down-jitter-ms", "-1"},
        {"--udp", "--listen", "a:1", "--target", "a:2", "--up-bogus", "1"},
        {"--tcp", "--listen", "a:1", "--target", "a:2", "--dup", "1"},
        {"--udp=1", "--listen", "a:1", "--target", "a:2"},
        {"positional"},
    };
    for (const auto& args : bad) {
        EXPECT_THROW(parse(args), std::invalid_argument) << (args.empty() ? "" : args[0]);
    }
}

TEST(ImpairOptions, HelpMentionsEveryFlag) {
    const auto h = help_text();
    for (const char* f : {"--udp",
                          "--tcp",
                          "--listen",
                          "--target",
                          "--control",
                          "--loss",
                          "--dup",
                          "--delay-ms",
                          "--jitter-ms",
                          "--rate-mbit",
                          "--queue-kb",
                          "--seed",
                          "--max-mappings",
                          "--mapping-idle-s",
                          "--inflight-kb",
                          "--socket-buffer-kb",
                          "--tcp-buffer-kb",
                          "--max-conns",
                          "--connect-timeout-ms",
                          "--log-level",
                          "SIGUSR1",
                          "SIGUSR2"}) {
        EXPECT_NE(h.find(f), std::string::npos) << f;
    }
    EXPECT_TRUE(parse({"--help"}).help);
}

}  // namespace
}  // namespace hopgate::impair
