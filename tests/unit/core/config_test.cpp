#include "core/config.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace hopgate::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

ConfigSchema test_schema() {
    ConfigSchema s;
    s.add({.env = "HOP_SERVER_HTTP_LISTEN",
           .flag = "--http-listen",
           .type = OptionType::kAddress,
           .default_value = ":80",
           .help = "Public HTTP listen address."});
    s.add({.env = "HOP_SERVER_PROXY_TIMEOUT_SECONDS",
           .flag = "--proxy-timeout",
           .type = OptionType::kDuration,
           .default_value = "30",
           .help = "Upstream response timeout.",
           .min = 1,
           .max = 3600});
    s.add({.env = "HOP_SERVER_MAX_TUNNELS",
           .flag = "--max-tunnels",
           .type = OptionType::kInt,
           .default_value = "100",
           .help = "Maximum concurrent tunnels.",
           .min = 1,
           .max = 65535});
    s.add({.env = "HOP_SERVER_VERBOSE",
           .flag = "--verbose",
           .type = OptionType::kBool,
           .default_value = "false",
           .help = "Log more."});
    s.add({.env = "HOP_SERVER_DOMAINS",
           .flag = "--domains",
           .type = OptionType::kList,
           .help = "Domains served."});
    s.add({.env = "HOP_SERVER_NAME",
           .flag = "--name",
           .help = "Instance name."});
    s.add({.env = "HOP_SERVER_ADMIN_TOKEN",
           .type = OptionType::kString,
           .help = "Admin API bearer token.",
           .required = true,
           .secret = true});
    return s;
}

ConfigInputs inputs(std::vector<std::string> args, std::map<std::string, std::string> env,
                    std::optional<std::string> dotenv = std::nullopt) {
    ConfigInputs in;
    in.args = std::move(args);
    in.env = env_from_map(std::move(env));
    in.dotenv_text = std::move(dotenv);
    return in;
}

const std::map<std::string, std::string> kTokenEnv{{"HOP_SERVER_ADMIN_TOKEN", "s3cr3t"}};

// Returns the problems of a load that must fail.
std::vector<std::string> problems_of(const ConfigSchema& s, const ConfigInputs& in) {
    try {
        (void)load_config(s, in);
    } catch (const ConfigError& e) {
        return e.problems();
    }
    ADD_FAILURE() << "load_config did not throw";
    return {};
}

// Each option takes the highest-precedence source: flag > environment > .env > default.
TEST(Config, PrecedenceFlagEnvDotenvDefault) {
    const auto s = test_schema();
    auto env = kTokenEnv;
    env["HOP_SERVER_MAX_TUNNELS"] = "20";
    env["HOP_SERVER_NAME"] = "from-env";
    const Config c = load_config(
        s, inputs({"--name", "from-flag"}, env,
                  "HOP_SERVER_NAME=from-dotenv\nHOP_SERVER_MAX_TUNNELS=10\n"
                  "HOP_SERVER_DOMAINS=a.example, b.example\n"));
    EXPECT_EQ(c.get_string("HOP_SERVER_NAME"), "from-flag");
    EXPECT_EQ(c.source("HOP_SERVER_NAME"), ConfigSource::kFlag);
    EXPECT_EQ(c.get_int("HOP_SERVER_MAX_TUNNELS"), 20);
    EXPECT_EQ(c.source("HOP_SERVER_MAX_TUNNELS"), ConfigSource::kEnvironment);
    EXPECT_EQ(c.get_list("HOP_SERVER_DOMAINS"),
              (std::vector<std::string>{"a.example", "b.example"}));
    EXPECT_EQ(c.source("HOP_SERVER_DOMAINS"), ConfigSource::kDotEnv);
    EXPECT_EQ(c.get_duration("HOP_SERVER_PROXY_TIMEOUT_SECONDS"), seconds(30));
    EXPECT_EQ(c.source("HOP_SERVER_PROXY_TIMEOUT_SECONDS"), ConfigSource::kDefault);
    EXPECT_EQ(c.get_address("HOP_SERVER_HTTP_LISTEN"), (ListenAddress{"", 80}));
    EXPECT_FALSE(c.get_bool("HOP_SERVER_VERBOSE"));
}

// An empty value in the environment counts as set and hides the .env value.
TEST(Config, EmptyEnvValueCountsAsSet) {
    auto env = kTokenEnv;
    env["HOP_SERVER_NAME"] = "";
    const Config c = load_config(test_schema(), inputs({}, env, "HOP_SERVER_NAME=dot\n"));
    EXPECT_EQ(c.get_string("HOP_SERVER_NAME"), "");
    EXPECT_EQ(c.source("HOP_SERVER_NAME"), ConfigSource::kEnvironment);
}

// The last occurrence of a key in .env wins.
TEST(Config, DotenvLastOccurrenceWins) {
    const Config c = load_config(
        test_schema(), inputs({}, kTokenEnv, "HOP_SERVER_NAME=one\nHOP_SERVER_NAME=two\n"));
    EXPECT_EQ(c.get_string("HOP_SERVER_NAME"), "two");
}

// Both --flag value and --flag=value work; a value may itself start with '-' or contain '='.
TEST(Config, FlagValueForms) {
    const Config c = load_config(
        test_schema(),
        inputs({"--name=a=b", "--http-listen", "127.0.0.1:8080", "--domains=x,,y ,"}, kTokenEnv));
    EXPECT_EQ(c.get_string("HOP_SERVER_NAME"), "a=b");
    EXPECT_EQ(c.get_address("HOP_SERVER_HTTP_LISTEN"), (ListenAddress{"127.0.0.1", 8080}));
    EXPECT_EQ(c.get_list("HOP_SERVER_DOMAINS"), (std::vector<std::string>{"x", "y"}));
    const Config d = load_config(test_schema(), inputs({"--name", "-dash"}, kTokenEnv));
    EXPECT_EQ(d.get_string("HOP_SERVER_NAME"), "-dash");
}

// A bare bool flag means true and never swallows the next argument; --flag=false works.
TEST(Config, BoolFlags) {
    const Config c = load_config(test_schema(), inputs({"--verbose", "domain", "add"}, kTokenEnv));
    EXPECT_TRUE(c.get_bool("HOP_SERVER_VERBOSE"));
    EXPECT_EQ(c.positional(), (std::vector<std::string>{"domain", "add"}));
    const Config d = load_config(test_schema(), inputs({"--verbose=off"}, kTokenEnv));
    EXPECT_FALSE(d.get_bool("HOP_SERVER_VERBOSE"));
    for (const char* t : {"true", "TRUE", "1", "yes", "On"}) {
        auto env = kTokenEnv;
        env["HOP_SERVER_VERBOSE"] = t;
        EXPECT_TRUE(load_config(test_schema(), inputs({}, env)).get_bool("HOP_SERVER_VERBOSE"))
            << t;
    }
}

// Positional arguments come back in order, interleaved flags are consumed, "--" ends flags.
TEST(Config, PositionalArguments) {
    const Config c = load_config(
        test_schema(),
        inputs({"domain", "--name", "n", "add", "x.example", "--", "--verbose", "-"}, kTokenEnv));
    EXPECT_EQ(c.positional(),
              (std::vector<std::string>{"domain", "add", "x.example", "--verbose", "-"}));
    EXPECT_FALSE(c.get_bool("HOP_SERVER_VERBOSE"));
}

// --help (or -h) is reported to the caller and suppresses validation errors.
TEST(Config, HelpSuppressesErrors) {
    const Config c = load_config(test_schema(), inputs({"--bogus", "--help"}, {}));
    EXPECT_TRUE(c.help_requested());
    EXPECT_FALSE(c.has("HOP_SERVER_ADMIN_TOKEN"));
    EXPECT_TRUE(load_config(test_schema(), inputs({"-h"}, kTokenEnv)).help_requested());
}

// --version is reported to the caller and, like --help, suppresses validation errors; it is not
// a schema flag.
TEST(Config, VersionSuppressesErrors) {
    const Config c = load_config(test_schema(), inputs({"--version"}, {}));
    EXPECT_TRUE(c.version_requested());
    EXPECT_FALSE(c.help_requested());
    EXPECT_FALSE(load_config(test_schema(), inputs({}, kTokenEnv)).version_requested());
    ConfigSchema s;
    EXPECT_THROW(s.add({.env = "HOP_C", .flag = "--version", .help = "x"}), std::logic_error);
}

// Unknown long flags, short flags and a value-less flag at the end are all reported.
TEST(Config, FlagErrors) {
    const auto p = problems_of(test_schema(),
                               inputs({"--bogus=1", "-x", "--name"}, kTokenEnv));
    EXPECT_EQ(p, (std::vector<std::string>{
                     "unknown flag \"--bogus\"",
                     "unknown flag \"-x\" (short flags are not supported)",
                     "--name needs a value",
                 }));
}

// All problems are collected, one clear line each, with the source and .env line number.
TEST(Config, CollectsAllProblemsWithOrigins) {
    auto env = std::map<std::string, std::string>{{"HOP_SERVER_MAX_TUNNELS", "70000"}};
    const auto p = problems_of(
        test_schema(),
        inputs({"--verbose=maybe"}, env,
               "# comment\n\nHOP_SERVER_HTTP_LISTEN=::1:80\n"
               "HOP_SERVER_PROXY_TIMEOUT_SECONDS=abc\nbroken line\n"));
    EXPECT_EQ(p, (std::vector<std::string>{
                     ".env line 5: expected KEY=VALUE, got \"broken line\"",
                     "HOP_SERVER_HTTP_LISTEN: \"::1:80\" is not a valid listen address: IPv6 "
                     "addresses need brackets, e.g. [::1]:8080 (from .env line 3)",
                     "HOP_SERVER_PROXY_TIMEOUT_SECONDS: \"abc\" is not a duration (seconds, e.g. "
                     "30, 1.5, 500ms, 5m, 2h) (from .env line 4)",
                     "HOP_SERVER_MAX_TUNNELS: 70000 is out of range 1..65535 (from environment)",
                     "HOP_SERVER_VERBOSE: \"maybe\" is not a boolean "
                     "(true/false/1/0/yes/no/on/off) (from --verbose)",
                     "HOP_SERVER_ADMIN_TOKEN: required but not set (set HOP_SERVER_ADMIN_TOKEN)",
                 }));
}

// ConfigError::what() is the problems joined by newlines, so main can print it as-is.
TEST(Config, ConfigErrorWhat) {
    const ConfigError e({"a: x", "b: y"});
    EXPECT_STREQ(e.what(), "a: x\nb: y");
}

// Integer parsing is strict: no spaces, signs other than '-', hex or trailing junk.
TEST(Config, IntParsingIsStrict) {
    for (const char* bad : {"abc", "", " 5", "5 ", "+5", "0x10", "5k", "99999999999999999999"}) {
        auto env = kTokenEnv;
        env["HOP_SERVER_MAX_TUNNELS"] = bad;
        const auto p = problems_of(test_schema(), inputs({}, env));
        ASSERT_EQ(p.size(), 1u) << bad;
        EXPECT_NE(p[0].find("is not an integer"), std::string::npos) << p[0];
    }
    auto env = kTokenEnv;
    env["HOP_SERVER_MAX_TUNNELS"] = "65535";
    EXPECT_EQ(load_config(test_schema(), inputs({}, env)).get_int("HOP_SERVER_MAX_TUNNELS"), 65535);
}

// Durations: plain or fractional seconds and ms/s/m/h units; negatives, exponents, NaN rejected;
// the range is checked in seconds.
TEST(Config, Durations) {
    const std::vector<std::pair<std::string, Duration>> good{
        {"30", seconds(30)},  {"1.5", milliseconds(1500)}, {"1500ms", milliseconds(1500)},
        {"2s", seconds(2)},   {"5m", seconds(300)},        {"1h", seconds(3600)},
        {"3600", seconds(3600)}};
    for (const auto& [text, want] : good) {
        auto env = kTokenEnv;
        env["HOP_SERVER_PROXY_TIMEOUT_SECONDS"] = text;
        EXPECT_EQ(load_config(test_schema(), inputs({}, env))
                      .get_duration("HOP_SERVER_PROXY_TIMEOUT_SECONDS"),
                  want)
            << text;
    }
    for (const char* bad : {"-1", "1e3", "nan", "inf", "", "s", "1.", ".5", "1..2", "5d", "1 s",
                            "0.5", "3601", "2h"}) {
        auto env = kTokenEnv;
        env["HOP_SERVER_PROXY_TIMEOUT_SECONDS"] = bad;
        EXPECT_EQ(problems_of(test_schema(), inputs({}, env)).size(), 1u) << bad;
    }
}

// A required option that is set but empty is reported as empty, not as missing.
TEST(Config, RequiredButEmpty) {
    const auto p = problems_of(test_schema(), inputs({}, {{"HOP_SERVER_ADMIN_TOKEN", "  "}}));
    EXPECT_EQ(p, (std::vector<std::string>{
                     "HOP_SERVER_ADMIN_TOKEN: required but empty (from environment)"}));
}

// A secret's value never appears in problems, describe() or help_text().
TEST(Config, SecretsAreNeverPrinted) {
    ConfigSchema s;
    s.add({.env = "HOP_PIN",
           .flag = "--pin",
           .type = OptionType::kInt,
           .default_value = "1234",
           .help = "PIN.",
           .secret = true,
           .min = 0,
           .max = 9999});
    s.add({.env = "HOP_KEY", .help = "Key.", .secret = true});
    const auto p = problems_of(s, inputs({"--pin", "hunter2"}, {}));
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0], "HOP_PIN: <redacted> is not an integer (from --pin)");
    const auto q = problems_of(s, inputs({"--pin", "55555"}, {}));
    ASSERT_EQ(q.size(), 1u);
    EXPECT_EQ(q[0].find("55555"), std::string::npos) << q[0];
    const Config c = load_config(s, inputs({}, {{"HOP_KEY", "topsecret"}}));
    EXPECT_EQ(c.get_string("HOP_KEY"), "topsecret");
    const std::string d = c.describe();
    EXPECT_EQ(d.find("topsecret"), std::string::npos) << d;
    EXPECT_EQ(d.find("1234"), std::string::npos) << d;
    EXPECT_NE(d.find("HOP_KEY=<redacted> (from environment)"), std::string::npos) << d;
    EXPECT_EQ(s.help_text("p", "").find("1234"), std::string::npos);
}

// describe() lists each set option with its value and source, in schema order.
TEST(Config, Describe) {
    auto env = kTokenEnv;
    env["HOP_SERVER_PROXY_TIMEOUT_SECONDS"] = "1.25";
    const Config c = load_config(test_schema(), inputs({"--domains", "a,b"}, env));
    EXPECT_EQ(c.describe(),
              "HOP_SERVER_HTTP_LISTEN=:80 (from default)\n"
              "HOP_SERVER_PROXY_TIMEOUT_SECONDS=1.25s (from environment)\n"
              "HOP_SERVER_MAX_TUNNELS=100 (from default)\n"
              "HOP_SERVER_VERBOSE=false (from default)\n"
              "HOP_SERVER_DOMAINS=\"a,b\" (from --domains)\n"
              "HOP_SERVER_ADMIN_TOKEN=<redacted> (from environment)\n");
}

// Getters reject unknown names, the wrong type and unset options as programming errors.
TEST(Config, GetterMisuseThrowsLogicError) {
    const Config c = load_config(test_schema(), inputs({}, kTokenEnv));
    EXPECT_FALSE(c.has("HOP_SERVER_NAME"));
    EXPECT_TRUE(c.has("HOP_SERVER_MAX_TUNNELS"));
    EXPECT_THROW((void)c.get_string("HOP_SERVER_NAME"), std::logic_error);
    EXPECT_THROW((void)c.get_string("HOP_NOPE"), std::logic_error);
    EXPECT_THROW((void)c.get_string("HOP_SERVER_MAX_TUNNELS"), std::logic_error);
    EXPECT_THROW((void)c.get_bool("HOP_SERVER_MAX_TUNNELS"), std::logic_error);
}

// Schema mistakes are caught at start-up: duplicates, bad names, --help, bad defaults, min > max.
TEST(Config, SchemaValidation) {
    ConfigSchema s;
    s.add({.env = "HOP_A", .flag = "--a", .help = "a"});
    EXPECT_THROW(s.add({.env = "HOP_A", .help = "dup"}), std::logic_error);
    EXPECT_THROW(s.add({.env = "HOP_B", .flag = "--a", .help = "dup flag"}), std::logic_error);
    EXPECT_THROW(s.add({.env = "hop_lower", .help = "x"}), std::logic_error);
    EXPECT_THROW(s.add({.env = "HOP_C", .flag = "-c", .help = "x"}), std::logic_error);
    EXPECT_THROW(s.add({.env = "HOP_C", .flag = "--help", .help = "x"}), std::logic_error);
    EXPECT_THROW(s.add({.env = "HOP_C", .type = OptionType::kInt, .default_value = "x"}),
                 std::logic_error);
    EXPECT_THROW(s.add({.env = "HOP_C", .type = OptionType::kInt, .min = 5, .max = 1}),
                 std::logic_error);
    EXPECT_EQ(s.options().size(), 1u);
}

// .env syntax problems are reported even for keys the schema does not know; unknown keys under
// warn_unknown_prefix become warnings, other unknown keys are ignored.
TEST(Config, UnknownDotenvKeys) {
    ConfigInputs in = inputs({}, kTokenEnv, "HOP_SERVER_NAM=typo\nPOSTGRES_PASSWORD=x\n");
    in.warn_unknown_prefix = "HOP_SERVER_";
    const Config c = load_config(test_schema(), in);
    EXPECT_EQ(c.warnings(), (std::vector<std::string>{
                                ".env line 1: unknown key HOP_SERVER_NAM (ignored)"}));
    in.dotenv_text = "POSTGRES_PASSWORD='x\n";
    in.dotenv_name = "/etc/hopgate/.env";
    EXPECT_EQ(problems_of(test_schema(), in),
              (std::vector<std::string>{"/etc/hopgate/.env line 1: unterminated single quote"}));
}

// Unknown HOP_* keys in the environment and in .env are warnings too, except under a foreign
// prefix (the other binary's settings in a shared .env); known keys and other names are silent.
TEST(Config, UnknownEnvironmentKeysAndForeignPrefixes) {
    ConfigInputs in = inputs({}, kTokenEnv, "HOP_LOKI_ENABLE=true\nHOP_CLIENT_DOMAIN=x\n");
    in.warn_unknown_prefix = "HOP_";
    in.foreign_prefixes = {"HOP_CLIENT_"};
    in.env_names = {"PATH", "HOP_SERVER_ADMIN_TOKEN", "HOP_DB_MAX_IDLE", "HOP_CLIENT_API_KEY"};
    const Config c = load_config(test_schema(), in);
    EXPECT_EQ(c.warnings(), (std::vector<std::string>{
                                ".env line 1: unknown key HOP_LOKI_ENABLE (ignored)",
                                "environment: unknown key HOP_DB_MAX_IDLE (ignored)"}));
}

// An oversized .env is a single whole-file problem naming the file.
TEST(Config, OversizedDotenv) {
    const auto p = problems_of(test_schema(),
                               inputs({}, kTokenEnv, std::string(kDotEnvMaxBytes + 1, '#')));
    EXPECT_EQ(p, (std::vector<std::string>{".env: file is larger than 1 MiB"}));
}

// Without an env function the environment is simply empty.
TEST(Config, NoEnvFunction) {
    ConfigInputs in;
    in.args = {"--name", "x"};
    in.dotenv_text = "HOP_SERVER_ADMIN_TOKEN=t\n";
    const Config c = load_config(test_schema(), in);
    EXPECT_EQ(c.get_string("HOP_SERVER_ADMIN_TOKEN"), "t");
}

// args_from_argv drops the program name.
TEST(Config, ArgsFromArgv) {
    const char* argv[] = {"prog", "--a", "b"};
    EXPECT_EQ(args_from_argv(3, argv), (std::vector<std::string>{"--a", "b"}));
    EXPECT_TRUE(args_from_argv(1, argv).empty());
}

// help_text lists every flag and env var with metavar, default, range and markers (golden).
TEST(Config, HelpTextGolden) {
    ConfigSchema s;
    s.add({.env = "HOP_SERVER_HTTP_LISTEN",
           .flag = "--http-listen",
           .type = OptionType::kAddress,
           .default_value = ":80",
           .help = "Public HTTP listen address."});
    s.add({.env = "HOP_SERVER_MAX_TUNNELS",
           .flag = "--max-tunnels",
           .type = OptionType::kInt,
           .default_value = "100",
           .help = "Maximum tunnels.",
           .min = 1,
           .max = 65535});
    s.add({.env = "HOP_SERVER_VERBOSE", .flag = "--verbose", .type = OptionType::kBool,
           .help = "Log more."});
    s.add({.env = "HOP_SERVER_ADMIN_TOKEN", .help = "Admin token.", .required = true,
           .secret = true});
    EXPECT_EQ(s.help_text("hopgate-server", "Reverse-tunnel HTTPS gateway."),
              "Usage: hopgate-server [flags] [arguments...]\n"
              "\n"
              "Reverse-tunnel HTTPS gateway.\n"
              "\n"
              "Options (flag, environment variable). Precedence: flags > environment > .env "
              "file > defaults.\n"
              "  --http-listen <host:port>, HOP_SERVER_HTTP_LISTEN\n"
              "      Public HTTP listen address. (default \":80\")\n"
              "  --max-tunnels <int>, HOP_SERVER_MAX_TUNNELS\n"
              "      Maximum tunnels. (range 1..65535, default \"100\")\n"
              "  --verbose, HOP_SERVER_VERBOSE=true|false\n"
              "      Log more.\n"
              "  HOP_SERVER_ADMIN_TOKEN=<string>\n"
              "      Admin token. (required, secret)\n"
              "  --help, -h\n"
              "      Show this help and exit.\n"
              "  --version\n"
              "      Print the version and exit.\n");
}

// Listen addresses: host:port, [v6]:port, :port, port 0 and 65535 accepted; to_string round-trips.
TEST(ListenAddress, Valid) {
    const std::vector<std::pair<std::string, ListenAddress>> good{
        {"0.0.0.0:80", {"0.0.0.0", 80}},
        {":0", {"", 0}},
        {":65535", {"", 65535}},
        {"localhost:8080", {"localhost", 8080}},
        {"[::1]:8443", {"::1", 8443}},
        {"[::]:443", {"::", 443}},
        {"[fe80::1%eth0]:80", {"fe80::1%eth0", 80}},
        {"[::ffff:1.2.3.4]:1", {"::ffff:1.2.3.4", 1}},
        {"a-b.c_d.example:00080", {"a-b.c_d.example", 80}},
    };
    for (const auto& [text, want] : good) {
        const auto a = parse_listen_address(text);
        ASSERT_TRUE(a.ok()) << text;
        EXPECT_EQ(*a, want) << text;
        const auto again = parse_listen_address(a->to_string());
        ASSERT_TRUE(again.ok()) << a->to_string();
        EXPECT_EQ(*again, want);
    }
    EXPECT_EQ((ListenAddress{"::1", 80}).to_string(), "[::1]:80");
    EXPECT_EQ((ListenAddress{"", 0}).to_string(), ":0");
}

// Malformed addresses are rejected with a reason, including out-of-range and signed ports.
TEST(ListenAddress, Invalid) {
    for (const char* bad : {"", "8080", "host", "host:", ":", ":65536", ":99999", ":123456",
                            "host:-1", "host:+80", "host:8 0", "ho st:80", "::1:80", "[::1]80",
                            "[::1]", "[]:80", "[::1:80", "[g::1]:80", "[fe80::1%]:80",
                            "[1.2.3.4]:80", "host:80\n", "h\x01:80"}) {
        std::string why;
        const auto a = parse_listen_address(bad, &why);
        EXPECT_FALSE(a.ok()) << bad;
        EXPECT_EQ(a.error(), Errc::kParse) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
    std::string why;
    (void)parse_listen_address(":65536", &why);
    EXPECT_EQ(why, "port \"65536\" is not a number in 0..65535");
    EXPECT_FALSE(parse_listen_address(std::string(254, 'a') + ":1").ok());
}

}  // namespace
}  // namespace hopgate::core
