#include "core/log.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"

namespace hopgate::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

// 2026-11-22T19:30:00.123Z
system_clock::time_point fixed_time() {
    using namespace std::chrono;
    return sys_days(year(2026) / November / 22) + hours(19) + minutes(30) + milliseconds(123);
}

std::string json(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

struct Capture {
    std::shared_ptr<std::string> text = std::make_shared<std::string>();
    std::shared_ptr<int> clock_calls = std::make_shared<int>(0);

    std::shared_ptr<LogOutput> output(LogLevel level) const {
        auto t = text;
        auto calls = clock_calls;
        return std::make_shared<LogOutput>(
            level, [t](std::string_view line) { t->append(line); },
            [calls] {
                ++*calls;
                return fixed_time();
            });
    }
};

// A full line: ts, level, msg, component, then fields in call order, newline-terminated.
TEST(Log, LineGolden) {
    Capture cap;
    Logger log(cap.output(LogLevel::kInfo), "server");
    const std::string domain = "a.example";
    log.info("tunnel up", {{"domain", domain}, {"rtt_ms", 12.5}, {"streams", 3}, {"ok", true}});
    EXPECT_EQ(*cap.text,
              "{\"ts\":\"2026-11-22T19:30:00.123Z\",\"level\":\"info\",\"msg\":\"tunnel up\","
              "\"component\":\"server\",\"domain\":\"a.example\",\"rtt_ms\":12.5,\"streams\":3,"
              "\"ok\":true}\n");
}

// Every field kind renders as its JSON type; integer extremes exact; NaN and Inf become null.
TEST(Log, FieldKinds) {
    const std::int64_t imin = std::numeric_limits<std::int64_t>::min();
    const std::uint64_t umax = std::numeric_limits<std::uint64_t>::max();
    const std::uint16_t port = 443;
    const std::string_view sv = "view";
    const std::string line = format_log_line(
        fixed_time(), LogLevel::kWarn, "c", "m",
        std::vector<LogField>{{"i", imin},
                              {"u", umax},
                              {"p", port},
                              {"f", 0.1f},
                              {"d", -2.0},
                              {"nan", std::numeric_limits<double>::quiet_NaN()},
                              {"inf", std::numeric_limits<double>::infinity()},
                              {"b", false},
                              {"s", sv},
                              {"cs", "lit"},
                              {"null_cs", static_cast<const char*>(nullptr)}});
    EXPECT_EQ(line,
              "{\"ts\":\"2026-11-22T19:30:00.123Z\",\"level\":\"warn\",\"msg\":\"m\","
              "\"component\":\"c\",\"i\":-9223372036854775808,\"u\":18446744073709551615,"
              "\"p\":443,\"f\":0.10000000149011612,\"d\":-2,\"nan\":null,\"inf\":null,"
              "\"b\":false,\"s\":\"view\",\"cs\":\"lit\",\"null_cs\":\"\"}\n");
}

// Quotes, backslashes and every control character are escaped; DEL and '/' pass through.
TEST(Log, JsonEscaping) {
    EXPECT_EQ(json("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
    EXPECT_EQ(json("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
    EXPECT_EQ(json(std::string_view("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\x7f\"");
    for (int c = 0; c < 0x20; ++c) {
        const std::string out = json(std::string(1, static_cast<char>(c)));
        EXPECT_EQ(out[1], '\\') << c;
    }
}

// Valid UTF-8 (2, 3 and 4 bytes, including U+FFFF neighbours and U+10FFFF) passes unchanged.
TEST(Log, ValidUtf8PassesThrough) {
    for (const char* s : {"caf\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xEF\xBF\xBF",
                          "\xF4\x8F\xBF\xBF", "\xED\x9F\xBF", "\xEE\x80\x80"}) {
        EXPECT_EQ(json(s), "\"" + std::string(s) + "\"") << s;
    }
}

// Invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart, never eating valid bytes.
TEST(Log, InvalidUtf8Replaced) {
    const std::string r = "\xEF\xBF\xBD";
    EXPECT_EQ(json("\x80"), "\"" + r + "\"");                                // stray continuation
    EXPECT_EQ(json("\xC0\xAF"), "\"" + r + r + "\"");                        // overlong (C0)
    EXPECT_EQ(json("\xE0\x80\xAF"), "\"" + r + r + r + "\"");                // overlong (E0)
    EXPECT_EQ(json("\xED\xA0\x80"), "\"" + r + r + r + "\"");                // surrogate
    EXPECT_EQ(json("\xF4\x90\x80\x80"), "\"" + r + r + r + r + "\"");        // > U+10FFFF
    EXPECT_EQ(json("\xE2\x82" "A"), "\"" + r + "A\"");                       // truncated 3-byte
    EXPECT_EQ(json("x\xE2\x82"), "\"x" + r + "\"");                          // truncated at end
    EXPECT_EQ(json("\xF0\x9F\x98"), "\"" + r + "\"");                        // truncated 4-byte
    EXPECT_EQ(json("\xFF\xFE"), "\"" + r + r + "\"");                        // never valid
    EXPECT_EQ(json("\xC3\"\xA9"), "\"" + r + "\\\"" + r + "\"");             // quote not eaten
}

// RFC 3339 with milliseconds, truncated, and floored (not rounded toward zero) before 1970.
TEST(Log, Rfc3339Timestamps) {
    using namespace std::chrono;
    EXPECT_EQ(format_rfc3339_ms(fixed_time()), "2026-11-22T19:30:00.123Z");
    EXPECT_EQ(format_rfc3339_ms(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(format_rfc3339_ms(sys_days(year(2024) / February / 29) + hours(23) + minutes(59) +
                                seconds(59) + microseconds(999999)),
              "2024-02-29T23:59:59.999Z");
    EXPECT_EQ(format_rfc3339_ms(system_clock::time_point{} - milliseconds(1)),
              "1969-12-31T23:59:59.999Z");
}

// The per-thread cache of the text up to the seconds: same second, next second, back in time,
// another day, all formatted as without it.
TEST(Log, Rfc3339CachedSecondIsReusedOnlyWithinTheSecond) {
    using namespace std::chrono;
    const auto t = fixed_time();
    EXPECT_EQ(format_rfc3339_ms(t), "2026-11-22T19:30:00.123Z");
    EXPECT_EQ(format_rfc3339_ms(t + milliseconds(876)), "2026-11-22T19:30:00.999Z");
    EXPECT_EQ(format_rfc3339_ms(t + milliseconds(877)), "2026-11-22T19:30:01.000Z");
    EXPECT_EQ(format_rfc3339_ms(t - milliseconds(124)), "2026-11-22T19:29:59.999Z");
    EXPECT_EQ(format_rfc3339_ms(t + days(40) + milliseconds(7)), "2027-01-01T19:30:00.130Z");
    EXPECT_EQ(format_rfc3339_ms(t + milliseconds(5)), "2026-11-22T19:30:00.128Z");
}

// Plain runs and escapes mixed, at the start, middle and end of a string.
TEST(Log, JsonStringPlainRunsAroundEscapes) {
    EXPECT_EQ(json(""), "\"\"");
    EXPECT_EQ(json("plain text /path?q=1"), "\"plain text /path?q=1\"");
    EXPECT_EQ(json("\"a"), "\"\\\"a\"");
    EXPECT_EQ(json("a\\b\nc"), "\"a\\\\b\\nc\"");
    EXPECT_EQ(json("ab\x01"), "\"ab\\u0001\"");
    EXPECT_EQ(json("caf\xC3\xA9 ok\x7f"), "\"caf\xC3\xA9 ok\x7f\"");
    std::string out = "prefix,";
    append_json_string(out, "x\ty");
    EXPECT_EQ(out, "prefix,\"x\\ty\"");
}

// Levels below the threshold neither format nor read the clock nor call the sink.
TEST(Log, ThresholdFilters) {
    Capture cap;
    auto out = cap.output(LogLevel::kWarn);
    Logger log(out, "x");
    log.debug("d");
    log.info("i", {{"k", 1}});
    EXPECT_TRUE(cap.text->empty());
    EXPECT_EQ(*cap.clock_calls, 0);
    EXPECT_FALSE(log.enabled(LogLevel::kInfo));
    log.warn("w");
    log.error("e");
    EXPECT_EQ(*cap.clock_calls, 2);
    out->set_level(LogLevel::kDebug);
    log.debug("d2");
    EXPECT_EQ(std::count(cap.text->begin(), cap.text->end(), '\n'), 3);
    EXPECT_NE(cap.text->find("\"level\":\"debug\",\"msg\":\"d2\""), std::string::npos);
}

// HOP_LOG_LEVEL parsing: the four names (any case, "warning" alias); anything else is an error.
TEST(Log, ParseLogLevel) {
    EXPECT_EQ(*parse_log_level("debug"), LogLevel::kDebug);
    EXPECT_EQ(*parse_log_level("INFO"), LogLevel::kInfo);
    EXPECT_EQ(*parse_log_level("Warn"), LogLevel::kWarn);
    EXPECT_EQ(*parse_log_level("warning"), LogLevel::kWarn);
    EXPECT_EQ(*parse_log_level("error"), LogLevel::kError);
    for (const char* bad : {"", "trace", "info ", "3", "err"}) {
        EXPECT_EQ(parse_log_level(bad).error(), Errc::kInvalidArgument) << bad;
    }
    EXPECT_EQ(to_string(LogLevel::kWarn), "warn");
}

// Concurrent loggers never interleave: every captured line is one whole object.
TEST(Log, ConcurrentLinesDoNotInterleave) {
    Capture cap;
    auto out = cap.output(LogLevel::kInfo);
    constexpr int kThreads = 8;
    constexpr int kLines = 500;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([out, t] {
            Logger log(out, "t" + std::to_string(t));
            const std::string payload(100 + static_cast<std::size_t>(t),
                                      static_cast<char>('a' + t));
            for (int i = 0; i < kLines; ++i) {
                log.info("line", {{"i", i}, {"payload", payload}});
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    std::size_t count = 0;
    std::size_t pos = 0;
    while (pos < cap.text->size()) {
        const auto nl = cap.text->find('\n', pos);
        ASSERT_NE(nl, std::string::npos);
        const std::string line = cap.text->substr(pos, nl - pos);
        ASSERT_EQ(line.front(), '{');
        ASSERT_EQ(line.back(), '}');
        const auto comp = line.find("\"component\":\"t");
        ASSERT_NE(comp, std::string::npos);
        const char t = line[comp + 14];
        const int idx = t - '0';
        const std::string want(100 + static_cast<std::size_t>(idx), static_cast<char>('a' + idx));
        ASSERT_NE(line.find("\"payload\":\"" + want + "\"}"), std::string::npos) << line;
        ++count;
        pos = nl + 1;
    }
    EXPECT_EQ(count, static_cast<std::size_t>(kThreads * kLines));
}

// A default Logger discards; with_component shares the output under a new name.
TEST(Log, DefaultAndChildLoggers) {
    Logger none;
    EXPECT_FALSE(none.enabled(LogLevel::kError));
    none.error("dropped", {{"k", "v"}});
    Capture cap;
    Logger parent(cap.output(LogLevel::kInfo), "server");
    Logger child = parent.with_component("acme");
    child.info("hi");
    EXPECT_EQ(child.component(), "acme");
    EXPECT_NE(cap.text->find("\"component\":\"acme\""), std::string::npos);
}

// A sink that throws does not propagate into the logging call site.
TEST(Log, ThrowingSinkIsContained) {
    auto out = std::make_shared<LogOutput>(
        LogLevel::kInfo, [](std::string_view) { throw std::runtime_error("disk full"); });
    Logger log(out, "x");
    EXPECT_NO_THROW(log.info("m"));
}

// Deferred: info lines wait for the scheduled flush and go to the sink in one call; the flush is
// scheduled once per batch; a warning flushes at once (with what was buffered before it);
// turning deferral off flushes; destruction flushes.
TEST(Log, DeferredLinesGoOutTogether) {
    auto writes = std::make_shared<std::vector<std::string>>();
    auto out = std::make_shared<LogOutput>(
        LogLevel::kInfo, [writes](std::string_view l) { writes->emplace_back(l); },
        [] { return fixed_time(); });
    int scheduled = 0;
    out->set_deferred([&scheduled] { ++scheduled; });
    Logger log(out, "access");
    log.info("a");
    log.info("b");
    EXPECT_TRUE(writes->empty());
    EXPECT_EQ(scheduled, 1);
    out->flush();
    ASSERT_EQ(writes->size(), 1u);
    EXPECT_EQ(std::count((*writes)[0].begin(), (*writes)[0].end(), '\n'), 2);
    EXPECT_LT((*writes)[0].find("\"msg\":\"a\""), (*writes)[0].find("\"msg\":\"b\""));
    log.info("c");
    EXPECT_EQ(scheduled, 2);
    log.warn("w");
    ASSERT_EQ(writes->size(), 2u);
    EXPECT_NE((*writes)[1].find("\"msg\":\"c\""), std::string::npos);
    EXPECT_NE((*writes)[1].find("\"msg\":\"w\""), std::string::npos);
    out->flush();
    EXPECT_EQ(writes->size(), 2u);  // nothing left: no empty write
    log.info("d");
    out->set_deferred({});
    ASSERT_EQ(writes->size(), 3u);
    log.info("e");
    EXPECT_EQ(writes->size(), 4u);  // immediate again
    out->set_deferred([] {});
    log.info("f");
    out.reset();
    log = Logger();  // drops the last reference: the destructor flushes "f"
    ASSERT_EQ(writes->size(), 5u);
    EXPECT_NE((*writes)[4].find("\"msg\":\"f\""), std::string::npos);
}

// Hostile msg, component and keys are escaped too, so the output stays one valid line.
TEST(Log, HostileStringsStayOnOneLine) {
    const std::string line = format_log_line(fixed_time(), LogLevel::kError, "c\n\"x",
                                             "m\r\n{\"level\":\"debug\"}\xff",
                                             std::vector<LogField>{{"k\"\n", "v\x01"}});
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
    EXPECT_EQ(line,
              "{\"ts\":\"2026-11-22T19:30:00.123Z\",\"level\":\"error\","
              "\"msg\":\"m\\r\\n{\\\"level\\\":\\\"debug\\\"}\xEF\xBF\xBD\","
              "\"component\":\"c\\n\\\"x\",\"k\\\"\\n\":\"v\\u0001\"}\n");
}

}  // namespace
}  // namespace hopgate::core
