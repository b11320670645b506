#include "core/loki.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace hopgate::core {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

Clock::time_point at_ns(std::int64_t ns) { return Clock::time_point(std::chrono::nanoseconds(ns)); }

// A sink write holding several lines becomes one entry per line, without the '\n'.
TEST(LokiQueue, SplitsLinesAndStamps) {
    LokiQueue q({.max_lines = 10, .max_bytes = 1000});
    q.push("{\"a\":1}\n{\"b\":2}\n", at_ns(1'700'000'000'123'456'789));
    ASSERT_EQ(q.size(), 2u);
    EXPECT_EQ(q.bytes(), 14u);
    auto got = q.take(10, 1000);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].line, "{\"a\":1}");
    EXPECT_EQ(got[1].line, "{\"b\":2}");
    EXPECT_EQ(got[0].ts_ns, 1'700'000'000'123'456'789);
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.bytes(), 0u);
}

// Over max_lines the oldest lines go first, and every one is counted.
TEST(LokiQueue, DropsOldestOverLineBound) {
    LokiQueue q({.max_lines = 3, .max_bytes = 1000});
    for (int i = 0; i < 5; ++i) {
        q.push("l" + std::to_string(i) + "\n", at_ns(i));
    }
    EXPECT_EQ(q.size(), 3u);
    EXPECT_EQ(q.dropped(), 2u);
    auto got = q.take(10, 1000);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].line, "l2");
    EXPECT_EQ(got[2].line, "l4");
}

// Over max_bytes the oldest lines go first; a line larger than the bound is dropped itself.
TEST(LokiQueue, DropsOldestOverByteBound) {
    LokiQueue q({.max_lines = 100, .max_bytes = 10});
    q.push("aaaa\nbbbb\n", at_ns(1));
    q.push("cccc\n", at_ns(2));  // 12 bytes > 10: "aaaa" goes
    EXPECT_EQ(q.bytes(), 8u);
    EXPECT_EQ(q.dropped(), 1u);
    q.push(std::string(11, 'x') + "\n", at_ns(3));
    EXPECT_EQ(q.dropped(), 2u);
    EXPECT_EQ(q.size(), 2u);
    auto got = q.take(100, 100);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].line, "bbbb");
}

// take() honours both batch bounds, oldest first, but always returns at least one line.
TEST(LokiQueue, BatchesByLinesAndBytes) {
    LokiQueue q({.max_lines = 100, .max_bytes = 1000});
    for (int i = 0; i < 10; ++i) {
        q.push("0123456789\n", at_ns(i));
    }
    EXPECT_EQ(q.take(4, 1000).size(), 4u);
    EXPECT_EQ(q.take(100, 25).size(), 2u);
    EXPECT_EQ(q.take(100, 1).size(), 1u);  // one line larger than the byte bound still goes
    EXPECT_EQ(q.size(), 3u);
    auto rest = q.take(100, 1000);
    EXPECT_EQ(rest.size(), 3u);
    EXPECT_EQ(rest[0].ts_ns, 7);
    EXPECT_TRUE(q.take(100, 1000).empty());
}

// The full-batch hook fires once when the queue reaches the threshold, not on every line.
TEST(LokiQueue, FullBatchHookFiresAtThreshold) {
    LokiQueue q({.max_lines = 100, .max_bytes = 1000});
    int calls = 0;
    q.set_on_full_batch(3, [&] { ++calls; });
    q.push("a\nb\n", at_ns(1));
    EXPECT_EQ(calls, 0);
    q.push("c\nd\n", at_ns(2));
    EXPECT_EQ(calls, 1);
    (void)q.take(100, 1000);
    q.push("e\nf\ng\n", at_ns(3));
    EXPECT_EQ(calls, 2);
    q.set_on_full_batch(0, {});
    (void)q.take(100, 1000);
    q.push("h\ni\nj\n", at_ns(4));
    EXPECT_EQ(calls, 2);
}

// The tee sink forwards every write to the next sink and queues it.
TEST(LokiQueue, TeeForwardsAndQueues) {
    auto q = std::make_shared<LokiQueue>(LokiQueue::Limits{});
    std::string seen;
    LogOutput out(LogLevel::kInfo, LokiQueue::tee(q, [&](std::string_view s) { seen += s; }));
    Logger log(std::shared_ptr<LogOutput>(&out, [](LogOutput*) {}), "server");
    log.info("hello", {{"domain", "a.example"}});
    ASSERT_EQ(q->size(), 1u);
    auto got = q->take(10, 10000);
    EXPECT_EQ(got[0].line + "\n", seen);
    EXPECT_NE(got[0].line.find("\"msg\":\"hello\""), std::string::npos);
}

// The push body is Loki's JSON format: one stream with the labels, [ns-string, line] values.
TEST(LokiBody, Format) {
    std::vector<LokiEntry> e{{1'700'000'000'000'000'001, R"({"msg":"a \"q\""})"},
                             {1'700'000'000'000'000'002, "line\twith tab"}};
    const std::string body = build_loki_push_body({{"app", "hopgate"}, {"env", "prod"}}, e);
    const auto j = nlohmann::json::parse(body);
    ASSERT_EQ(j["streams"].size(), 1u);
    const auto& s = j["streams"][0];
    EXPECT_EQ(s["stream"], (nlohmann::json{{"app", "hopgate"}, {"env", "prod"}}));
    ASSERT_EQ(s["values"].size(), 2u);
    EXPECT_EQ(s["values"][0][0], "1700000000000000001");
    EXPECT_EQ(s["values"][0][1], R"({"msg":"a \"q\""})");
    EXPECT_EQ(s["values"][1][1], "line\twith tab");
    EXPECT_EQ(body.find('\n'), std::string::npos);
}

// Invalid UTF-8 in a line does not throw: it is replaced.
TEST(LokiBody, InvalidUtf8Replaced) {
    std::vector<LokiEntry> e{{1, std::string("a\xff" "b")}};
    const auto j = nlohmann::json::parse(build_loki_push_body({{"app", "x"}}, e));
    EXPECT_EQ(j["streams"][0]["values"][0][1], "a\xEF\xBF\xBD" "b");
}

// Base URLs get the push path; full push URLs keep theirs; only http:// is accepted.
TEST(LokiEndpoint, Parse) {
    auto a = parse_loki_endpoint("http://127.0.0.1:3100");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 3100);
    EXPECT_EQ(a->target, "/loki/api/v1/push");
    auto b = parse_loki_endpoint("http://loki.internal/loki/api/v1/push");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->host, "loki.internal");
    EXPECT_EQ(b->port, 80);
    EXPECT_EQ(b->target, "/loki/api/v1/push");
    auto c = parse_loki_endpoint("http://[::1]:3100/");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->host, "::1");
    EXPECT_EQ(c->target, "/loki/api/v1/push");
    for (const char* bad : {"", "https://loki:3100", "loki:3100", "http://", "http://:3100",
                            "http://h:0", "http://h:70000", "http://h:x", "http://u@h:1",
                            "http://h:1/p?q=1", "http://[::1"}) {
        EXPECT_FALSE(parse_loki_endpoint(bad)) << bad;
    }
}

// Static labels: k=v pairs, trimmed, empty items skipped; bad names or empty values rejected.
TEST(LokiLabels, Parse) {
    auto l = parse_loki_labels(" env=prod, region = eu-west ,,");
    ASSERT_TRUE(l);
    EXPECT_EQ(*l, (std::map<std::string, std::string>{{"env", "prod"}, {"region", "eu-west"}}));
    EXPECT_TRUE(parse_loki_labels("")->empty());
    for (const char* bad : {"env", "=x", "env=", "1a=b", "a-b=c", "a b=c"}) {
        EXPECT_FALSE(parse_loki_labels(bad)) << bad;
    }
}

// Settings: off by default; on, labels include app, component and the static ones; errors name
// the setting.
TEST(LokiSettings, FromConfig) {
    ConfigSchema s;
    add_loki_options(s);
    auto load = [&](std::map<std::string, std::string> env) {
        ConfigInputs in;
        in.env = [env](const std::string& k) -> std::optional<std::string> {
            auto it = env.find(k);
            if (it == env.end()) {
                return std::nullopt;
            }
            return it->second;
        };
        return load_config(s, in);
    };
    EXPECT_FALSE(loki_settings_from_config(load({}), "server"));
    auto on = loki_settings_from_config(
        load({{"HOP_LOKI_ENABLE", "true"},
              {"HOP_LOKI_ENDPOINT", "http://127.0.0.1:3100"},
              {"HOP_LOKI_TENANT_ID", "t1"},
              {"HOP_LOKI_USERNAME", "u"},
              {"HOP_LOKI_PASSWORD", "p"},
              {"HOP_LOKI_STATIC_LABELS", "env=prod"}}),
        "client");
    ASSERT_TRUE(on);
    EXPECT_EQ(on->labels, (std::map<std::string, std::string>{
                              {"app", "hopgate"}, {"component", "client"}, {"env", "prod"}}));
    EXPECT_EQ(on->tenant_id, "t1");
    EXPECT_EQ(on->endpoint.port, 3100);
    try {
        (void)loki_settings_from_config(load({{"HOP_LOKI_ENABLE", "1"}}), "server");
        FAIL() << "no endpoint accepted";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("HOP_LOKI_ENDPOINT"), std::string::npos);
    }
    EXPECT_THROW((void)loki_settings_from_config(
                     load({{"HOP_LOKI_ENABLE", "1"},
                           {"HOP_LOKI_ENDPOINT", "http://h:1"},
                           {"HOP_LOKI_STATIC_LABELS", "bad"}}),
                     "server"),
                 ConfigError);
}

// Backoff doubles from the base and stops at the cap.
TEST(LokiBackoff, DoublesAndCaps) {
    EXPECT_EQ(loki_backoff(0, 500ms, 30s), 0ms);
    EXPECT_EQ(loki_backoff(1, 500ms, 30s), 500ms);
    EXPECT_EQ(loki_backoff(2, 500ms, 30s), 1000ms);
    EXPECT_EQ(loki_backoff(4, 500ms, 30s), 4000ms);
    EXPECT_EQ(loki_backoff(7, 500ms, 30s), 30s);
    EXPECT_EQ(loki_backoff(1000, 500ms, 30s), 30s);
}

}  // namespace
}  // namespace hopgate::core
