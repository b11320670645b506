// Start-up configuration: a declarative option schema, a `.env` parser, a CLI flag parser and a
// loader that merges them with the precedence  flags > OS environment > .env file > defaults.
//
// Nothing here reads the process environment, argv or the file system on its own: the caller
// passes them in (`ConfigInputs`), so tests never touch real process state. `process_env()` and
// `read_small_file()` are the thin adapters `main` uses.
//
// Errors: schema mistakes (duplicate names, invalid defaults, wrong getter type) are programming
// errors and throw std::logic_error. Bad user input makes `load_config` throw `ConfigError`, which
// carries every problem found, one printable line each. Nothing here is used on the data path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.hpp"
#include "core/time.hpp"

namespace hopgate::core {

// ---------------------------------------------------------------------------------------------
// Listen addresses

// A parsed `host:port`, `[ipv6]:port` or `:port`. `host` is empty for "all interfaces" and holds
// IPv6 literals without brackets.
struct ListenAddress {
    std::string host;
    std::uint16_t port = 0;

    // Back to text: `host:port`, `[v6]:port` or `:port`.
    std::string to_string() const;
    friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

// Parses a listen address. Port must be decimal 0..65535 (`:0` = pick a free port). IPv6 literals
// need brackets. Hostnames are letters, digits, '-', '_' and '.', at most 253 bytes.
// Errors: Errc::kParse; if `why` is not null it receives a one-line reason.
Result<ListenAddress> parse_listen_address(std::string_view text, std::string* why = nullptr);

// ---------------------------------------------------------------------------------------------
// .env files

inline constexpr std::size_t kDotEnvMaxBytes = 1024 * 1024;  // larger files are rejected whole
inline constexpr std::size_t kDotEnvMaxLines = 10'000;       // more lines are rejected whole

struct DotEnvEntry {
    std::string key;
    std::string value;
    std::size_t line = 0;  // 1-based
};

struct DotEnvProblem {
    std::size_t line = 0;  // 1-based; 0 means the whole file
    std::string message;   // one line, printable ASCII (offending bytes are escaped)
};

struct DotEnvFile {
    std::vector<DotEnvEntry> entries;  // in file order; a repeated key appears twice (last wins)
    std::vector<DotEnvProblem> problems;
    bool ok() const { return problems.empty(); }
};

// Parses `.env` text. Syntax, one entry per line:
//   KEY=VALUE              key is [A-Za-z_][A-Za-z0-9_]*; whitespace around key and value trimmed
//   export KEY=VALUE       optional `export ` prefix
//   # comment              full-line comment; blank lines ignored
//   KEY=value # comment    on unquoted values a '#' preceded by whitespace starts a comment
//   KEY='literal'          single quotes: no escapes at all
//   KEY="a\nb \"q\" \\"    double quotes: \n \r \t \" \\ (other backslashes kept as-is)
// Quoted values must close on the same line; only a comment may follow the closing quote.
// CRLF line endings and a leading UTF-8 BOM are accepted. A malformed line is reported with its
// number and skipped; the rest of the file is still parsed. Files over kDotEnvMaxBytes or
// kDotEnvMaxLines yield a single line-0 problem and no entries. Total on any input.
DotEnvFile parse_dotenv(std::string_view text);

// Reads a whole file of at most `max_bytes`. Errors: kNotFound (no such file), kTooLarge,
// kIo (anything else).
Result<std::string> read_small_file(const std::string& path, std::size_t max_bytes);

// ---------------------------------------------------------------------------------------------
// Schema

enum class OptionType {
    kString,    // any text
    kInt,       // decimal int64 within [min, max]
    kBool,      // true/false/1/0/yes/no/on/off, case-insensitive; a bare CLI flag means true
    kDuration,  // seconds: "30", "1.5", or with a unit "500ms", "30s", "5m", "2h"; [min, max] s
    kList,      // comma-separated; items trimmed, empty items dropped
    kAddress,   // listen address, see parse_listen_address
};

// One option. Designed for designated initializers:
//   {.env = "HOP_SERVER_HTTP_LISTEN", .flag = "--http-listen", .type = OptionType::kAddress,
//    .default_value = ":80", .help = "Public HTTP listen address."}
struct OptionSpec {
    // Every member has a default member initializer so that g++ 12's -Wmissing-field-initializers
    // accepts designated initializers that omit some of them.
    std::string env{};                           // HOP_*, unique, [A-Z_][A-Z0-9_]*
    std::string flag{};                          // "--kebab-case" or empty for env-only
    OptionType type = OptionType::kString;
    std::optional<std::string> default_value{};  // text, validated like any other source
    std::string help{};                          // one sentence
    bool required = false;                     // must be set and (string/list) non-empty
    bool secret = false;                       // value never appears in messages or describe()
    std::int64_t min = std::numeric_limits<std::int64_t>::min();  // kInt; kDuration in seconds
    std::int64_t max = std::numeric_limits<std::int64_t>::max();
};

class ConfigSchema {
public:
    // Adds an option. Throws std::logic_error on an invalid or duplicate env name or flag, a flag
    // of "--help", min > max, or a default that does not validate.
    ConfigSchema& add(OptionSpec spec);

    const std::vector<OptionSpec>& options() const { return options_; }
    const OptionSpec* find_env(std::string_view env) const;
    const OptionSpec* find_flag(std::string_view flag) const;

    // Usage text: every flag and env var with type, default, required/secret markers and help.
    std::string help_text(std::string_view program, std::string_view summary) const;

private:
    std::vector<OptionSpec> options_;
};

// ---------------------------------------------------------------------------------------------
// Loading

// Looks up one environment variable; nullopt when unset. An empty value counts as set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// An EnvLookup over a fixed map (tests, or a snapshot).
EnvLookup env_from_map(std::map<std::string, std::string> vars);
// An EnvLookup over the real process environment (getenv). Only `main` should use this.
EnvLookup process_env();

struct ConfigInputs {
    std::vector<std::string> args;           // argv without the program name
    EnvLookup env;                           // empty function = empty environment
    std::optional<std::string> dotenv_text;  // contents of .env; nullopt when there is no file
    std::string dotenv_name = ".env";        // how messages refer to the file
    // Keys in .env and in `env_names` starting with this prefix that the schema does not know
    // become warnings (typo detection, settings of the original project that do not exist
    // here), except those starting with one of `foreign_prefixes` (the other binary's keys,
    // which share one environment or .env). Empty = no such warnings.
    std::string warn_unknown_prefix;
    std::vector<std::string> foreign_prefixes;
    std::vector<std::string> env_names;  // names set in the environment (only for the warnings)
};

// argv[1..argc) as strings.
std::vector<std::string> args_from_argv(int argc, const char* const* argv);

enum class ConfigSource { kDefault, kDotEnv, kEnvironment, kFlag };

// A converted option value (which alternative follows OptionType).
using ConfigValue = std::variant<std::string, std::int64_t, bool, Duration,
                                 std::vector<std::string>, ListenAddress>;

// Thrown by load_config with every problem found; what() is the problems joined by '\n'.
class ConfigError : public std::runtime_error {
public:
    explicit ConfigError(std::vector<std::string> problems);
    const std::vector<std::string>& problems() const { return problems_; }

private:
    std::vector<std::string> problems_;
};

// The merged, validated configuration. Getters take the env name. They throw std::logic_error
// (a programming error) for an unknown name, a getter of the wrong type, or an option that is not
// set (optional, no default, no source): check has() first for those.
class Config {
public:
    bool help_requested() const { return help_requested_; }
    bool version_requested() const { return version_requested_; }
    const std::vector<std::string>& positional() const { return positional_; }
    // Non-fatal notes (unknown keys in .env under warn_unknown_prefix), for the caller to log.
    const std::vector<std::string>& warnings() const { return warnings_; }

    bool has(std::string_view env) const;
    const std::string& get_string(std::string_view env) const;
    std::int64_t get_int(std::string_view env) const;
    bool get_bool(std::string_view env) const;
    Duration get_duration(std::string_view env) const;
    const std::vector<std::string>& get_list(std::string_view env) const;
    const ListenAddress& get_address(std::string_view env) const;
    ConfigSource source(std::string_view env) const;

    // One line per set option, "HOP_X=value (from ...)", secrets shown as <redacted>.
    std::string describe() const;

private:
    friend Config load_config(const ConfigSchema& schema, const ConfigInputs& inputs);

    struct Entry {
        OptionSpec spec;
        std::optional<ConfigValue> value;
        ConfigSource source = ConfigSource::kDefault;
        std::string origin;  // human-readable source, e.g. ".env line 4"
    };
    const Entry& entry(std::string_view env, OptionType want) const;

    std::map<std::string, Entry, std::less<>> entries_;
    std::vector<std::string> order_;  // schema order, for describe()
    std::vector<std::string> positional_;
    std::vector<std::string> warnings_;
    bool help_requested_ = false;
    bool version_requested_ = false;
};

// Parses flags (`--flag value`, `--flag=value`, bare bool flags, `--help`/`-h`, `--` ends flags;
// other arguments are positional, in order), merges sources by precedence, validates every option
// and throws ConfigError listing all problems. When --help is present, validation problems are not
// thrown: the caller prints help_text() and exits.
Config load_config(const ConfigSchema& schema, const ConfigInputs& inputs);

// load_config() with the inputs a binary's main() uses: argv, the process environment and
// ./.env (absent is fine). Throws ConfigError like load_config().
// `warn_unknown_prefix`/`foreign_prefixes`: see ConfigInputs (the environment's names are taken
// from `environ`).
Config load_process_config(const ConfigSchema& schema, int argc, const char* const* argv,
                           std::string warn_unknown_prefix = {},
                           std::vector<std::string> foreign_prefixes = {});

}  // namespace hopgate::core
