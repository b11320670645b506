#include "core/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <utility>

#include "core/error.hpp"

namespace hopgate::core {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string_view trim_left(std::string_view s) {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    return s;
}
std::string_view trim_right(std::string_view s) {
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}
std::string_view trim(std::string_view s) { return trim_right(trim_left(s)); }

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

// Renders untrusted text for a one-line message: printable ASCII kept, everything else \xNN,
// long input cut, so a hostile value can neither break the line nor flood the terminal.
std::string printable(std::string_view s, std::size_t max_len = 64) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    const std::size_t n = std::min(s.size(), max_len);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\\' || c == '"') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
    }
    if (s.size() > max_len) {
        out += "...";
    }
    return out;
}

// "30s", "1.5s", "0.000001s": shortest exact decimal of the microsecond count.
std::string format_seconds(Duration d) {
    const std::int64_t us = d.count();
    std::string out = std::to_string(us / 1'000'000);
    std::int64_t frac = us % 1'000'000;
    if (frac != 0) {
        std::string f = std::to_string(frac);
        f.insert(0, 6 - f.size(), '0');
        while (f.back() == '0') {
            f.pop_back();
        }
        out += "." + f;
    }
    return out + "s";
}

std::string quoted(std::string_view s) { return "\"" + printable(s) + "\""; }

bool valid_dotenv_key(std::string_view k) {
    if (k.empty() || !(is_alpha(k[0]) || k[0] == '_')) {
        return false;
    }
    return std::all_of(k.begin(), k.end(),
                       [](char c) { return is_alpha(c) || is_digit(c) || c == '_'; });
}

bool valid_env_name(std::string_view k) {
    if (k.empty() || !((k[0] >= 'A' && k[0] <= 'Z') || k[0] == '_')) {
        return false;
    }
    return std::all_of(k.begin(), k.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
    });
}

bool valid_flag_name(std::string_view f) {
    if (f.size() < 3 || f.substr(0, 2) != "--" || f[2] == '-') {
        return false;
    }
    return std::all_of(f.begin() + 2, f.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-';
    });
}

// Parses one logical line; returns false and sets `why` when malformed.
bool parse_dotenv_line(std::string_view line, DotEnvEntry& out, std::string& why) {
    std::string_view s = trim(line);
    if (s.size() > 6 && s.substr(0, 6) == "export" && is_space(s[6])) {
        s = trim_left(s.substr(7));
    }
    const auto eq = s.find('=');
    if (eq == std::string_view::npos) {
        why = "expected KEY=VALUE, got " + quoted(s);
        return false;
    }
    const std::string_view key = trim_right(s.substr(0, eq));
    if (!valid_dotenv_key(key)) {
        why = "invalid key " + quoted(key) + " (use letters, digits and '_')";
        return false;
    }
    const std::string_view rest = s.substr(eq + 1);
    const std::string_view v = trim_left(rest);
    std::string value;
    std::string_view tail;
    if (!v.empty() && v[0] == '\'') {
        const auto close = v.find('\'', 1);
        if (close == std::string_view::npos) {
            why = "unterminated single quote";
            return false;
        }
        value.assign(v.substr(1, close - 1));
        tail = v.substr(close + 1);
    } else if (!v.empty() && v[0] == '"') {
        std::size_t i = 1;
        bool closed = false;
        while (i < v.size()) {
            const char c = v[i];
            if (c == '"') {
                closed = true;
                break;
            }
            if (c == '\\' && i + 1 < v.size()) {
                const char e = v[i + 1];
                switch (e) {
                    case 'n': value += '\n'; break;
                    case 'r': value += '\r'; break;
                    case 't': value += '\t'; break;
                    case '"': value += '"'; break;
                    case '\\': value += '\\'; break;
                    default:
                        value += '\\';
                        value += e;
                        break;
                }
                i += 2;
                continue;
            }
            value += c;
            ++i;
        }
        if (!closed) {
            why = "unterminated double quote";
            return false;
        }
        tail = v.substr(i + 1);
    } else {
        // Unquoted: a '#' preceded by whitespace starts a comment ("KEY=a#b" keeps the '#').
        std::size_t end = rest.size();
        for (std::size_t i = 0; i < rest.size(); ++i) {
            if (rest[i] == '#' && i > 0 && is_space(rest[i - 1])) {
                end = i;
                break;
            }
        }
        value.assign(trim(rest.substr(0, end)));
        out.key.assign(key);
        out.value = std::move(value);
        return true;
    }
    tail = trim_left(tail);
    if (!tail.empty() && tail[0] != '#') {
        why = "unexpected text after closing quote: " + quoted(tail);
        return false;
    }
    out.key.assign(key);
    out.value = std::move(value);
    return true;
}

// ----- typed value conversion

std::string_view type_metavar(OptionType t) {
    switch (t) {
        case OptionType::kString: return "<string>";
        case OptionType::kInt: return "<int>";
        case OptionType::kBool: return "";
        case OptionType::kDuration: return "<seconds>";
        case OptionType::kList: return "<a,b,...>";
        case OptionType::kAddress: return "<host:port>";
    }
    return "";
}

std::optional<bool> parse_bool(std::string_view s) {
    const std::string l = to_lower(s);
    if (l == "true" || l == "1" || l == "yes" || l == "on") {
        return true;
    }
    if (l == "false" || l == "0" || l == "no" || l == "off") {
        return false;
    }
    return std::nullopt;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
    std::int64_t v = 0;
    const auto* end = s.data() + s.size();
    const auto r = std::from_chars(s.data(), end, v, 10);
    if (s.empty() || r.ec != std::errc{} || r.ptr != end) {
        return std::nullopt;
    }
    return v;
}

// Seconds as a double (for range checks) plus the exact Duration.
struct ParsedDuration {
    double seconds = 0;
    Duration d{};
};

std::optional<ParsedDuration> parse_duration(std::string_view s) {
    double scale = 1.0;  // to seconds
    std::string_view num = s;
    if (num.size() > 2 && num.substr(num.size() - 2) == "ms") {
        scale = 1e-3;
        num.remove_suffix(2);
    } else if (!num.empty() && (num.back() == 's' || num.back() == 'm' || num.back() == 'h')) {
        scale = num.back() == 's' ? 1.0 : num.back() == 'm' ? 60.0 : 3600.0;
        num.remove_suffix(1);
    }
    // from_chars would accept "inf", "nan" and a leading '-': only digits and one '.' pass.
    if (num.empty() || num.front() == '.' || num.back() == '.') {
        return std::nullopt;
    }
    int dots = 0;
    for (char c : num) {
        if (c == '.') {
            ++dots;
        } else if (!is_digit(c)) {
            return std::nullopt;
        }
    }
    if (dots > 1) {
        return std::nullopt;
    }
    double v = 0;
    const auto* end = num.data() + num.size();
    const auto r = std::from_chars(num.data(), end, v);
    if (r.ec != std::errc{} || r.ptr != end || !std::isfinite(v)) {
        return std::nullopt;
    }
    const double secs = v * scale;
    // Keep well inside int64 microseconds (~292k years); 100 years is plenty.
    if (secs > 100.0 * 365 * 24 * 3600) {
        return std::nullopt;
    }
    ParsedDuration out;
    out.seconds = secs;
    out.d = Duration(static_cast<std::int64_t>(std::llround(secs * 1e6)));
    return out;
}

std::vector<std::string> split_list(std::string_view s) {
    std::vector<std::string> out;
    while (true) {
        const auto comma = s.find(',');
        const std::string_view item = trim(s.substr(0, comma));
        if (!item.empty()) {
            out.emplace_back(item);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        s.remove_prefix(comma + 1);
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Listen addresses

std::string ListenAddress::to_string() const {
    std::string out;
    if (host.find(':') != std::string::npos) {
        out = "[" + host + "]";
    } else {
        out = host;
    }
    out += ':';
    out += std::to_string(port);
    return out;
}

Result<ListenAddress> parse_listen_address(std::string_view text, std::string* why) {
    auto fail = [&](std::string reason) -> Result<ListenAddress> {
        if (why != nullptr) {
            *why = std::move(reason);
        }
        return Errc::kParse;
    };
    ListenAddress out;
    std::string_view port_text;
    if (!text.empty() && text[0] == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            return fail("missing ']' after IPv6 address");
        }
        const std::string_view host = text.substr(1, close - 1);
        if (host.empty()) {
            return fail("empty IPv6 address in brackets");
        }
        // Hex digits, ':' and '.' (embedded IPv4), optionally a %zone of name characters.
        const auto pct = host.find('%');
        const std::string_view addr = host.substr(0, pct);
        if (addr.find(':') == std::string_view::npos ||
            !std::all_of(addr.begin(), addr.end(), [](char c) {
                return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                       c == ':' || c == '.';
            })) {
            return fail("invalid IPv6 address");
        }
        if (pct != std::string_view::npos) {
            const std::string_view zone = host.substr(pct + 1);
            if (zone.empty() || !std::all_of(zone.begin(), zone.end(), [](char c) {
                    return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c == '.';
                })) {
                return fail("invalid IPv6 zone");
            }
        }
        const std::string_view after = text.substr(close + 1);
        if (after.empty() || after[0] != ':') {
            return fail("expected ':port' after ']'");
        }
        out.host.assign(host);
        port_text = after.substr(1);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return fail("expected host:port or :port");
        }
        const std::string_view host = text.substr(0, colon);
        if (host.find(':') != std::string_view::npos) {
            return fail("IPv6 addresses need brackets, e.g. [::1]:8080");
        }
        if (host.size() > 253) {
            return fail("host name longer than 253 bytes");
        }
        if (!std::all_of(host.begin(), host.end(), [](char c) {
                return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c == '.';
            })) {
            return fail("invalid host " + quoted(host));
        }
        out.host.assign(host);
        port_text = text.substr(colon + 1);
    }
    if (port_text.empty()) {
        return fail("missing port");
    }
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(), is_digit)) {
        return fail("port " + quoted(port_text) + " is not a number in 0..65535");
    }
    const auto port = parse_int(port_text);
    if (!port || *port > 65535) {
        return fail("port " + quoted(port_text) + " is not a number in 0..65535");
    }
    out.port = static_cast<std::uint16_t>(*port);
    return out;
}

// ---------------------------------------------------------------------------------------------
// .env

DotEnvFile parse_dotenv(std::string_view text) {
    DotEnvFile out;
    if (text.size() > kDotEnvMaxBytes) {
        out.problems.push_back({0, "file is larger than 1 MiB"});
        return out;
    }
    const auto newlines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
    const std::size_t lines = newlines + ((!text.empty() && text.back() != '\n') ? 1 : 0);
    if (lines > kDotEnvMaxLines) {
        out.problems.push_back(
            {0, "file has more than " + std::to_string(kDotEnvMaxLines) + " lines"});
        return out;
    }
    if (text.substr(0, 3) == "\xEF\xBB\xBF") {
        text.remove_prefix(3);
    }
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.find('\0') != std::string_view::npos) {
            out.problems.push_back({line_no, "line contains a NUL byte"});
            continue;
        }
        const std::string_view t = trim(line);
        if (t.empty() || t[0] == '#') {
            continue;
        }
        DotEnvEntry e;
        std::string why;
        if (parse_dotenv_line(line, e, why)) {
            e.line = line_no;
            out.entries.push_back(std::move(e));
        } else {
            out.problems.push_back({line_no, std::move(why)});
        }
    }
    return out;
}

Result<std::string> read_small_file(const std::string& path, std::size_t max_bytes) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        return errno == ENOENT ? Errc::kNotFound : Errc::kIo;
    }
    std::string out;
    char buf[16384];
    bool too_large = false;
    bool failed = false;
    while (true) {
        const std::size_t n = std::fread(buf, 1, sizeof buf, f);
        if (n > 0) {
            if (out.size() + n > max_bytes) {
                too_large = true;
                break;
            }
            out.append(buf, n);
        }
        if (n < sizeof buf) {
            failed = std::ferror(f) != 0;
            break;
        }
    }
    std::fclose(f);
    if (too_large) {
        return Errc::kTooLarge;
    }
    if (failed) {
        return Errc::kIo;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Schema

namespace {

// Converts raw text for `spec`; on failure returns nullopt and sets `why` (without the env name
// or origin; the caller adds those). `shown` is how the value may appear in messages.
std::optional<ConfigValue> convert(const OptionSpec& spec, std::string_view raw,
                                     std::string& why);

}  // namespace

ConfigSchema& ConfigSchema::add(OptionSpec spec) {
    if (!valid_env_name(spec.env)) {
        throw std::logic_error("config schema: invalid env name \"" + printable(spec.env) + "\"");
    }
    if (find_env(spec.env) != nullptr) {
        throw std::logic_error("config schema: duplicate env name " + spec.env);
    }
    if (!spec.flag.empty()) {
        if (!valid_flag_name(spec.flag) || spec.flag == "--help" || spec.flag == "--version") {
            throw std::logic_error("config schema: invalid flag \"" + printable(spec.flag) +
                                   "\" for " + spec.env);
        }
        if (find_flag(spec.flag) != nullptr) {
            throw std::logic_error("config schema: duplicate flag " + spec.flag);
        }
    }
    if (spec.min > spec.max) {
        throw std::logic_error("config schema: min > max for " + spec.env);
    }
    if (spec.default_value) {
        std::string why;
        if (!convert(spec, *spec.default_value, why)) {
            throw std::logic_error("config schema: invalid default for " + spec.env + ": " + why);
        }
    }
    options_.push_back(std::move(spec));
    return *this;
}

const OptionSpec* ConfigSchema::find_env(std::string_view env) const {
    for (const auto& o : options_) {
        if (o.env == env) {
            return &o;
        }
    }
    return nullptr;
}

const OptionSpec* ConfigSchema::find_flag(std::string_view flag) const {
    if (flag.empty()) {
        return nullptr;
    }
    for (const auto& o : options_) {
        if (o.flag == flag) {
            return &o;
        }
    }
    return nullptr;
}

std::string ConfigSchema::help_text(std::string_view program, std::string_view summary) const {
    std::string out;
    out += "Usage: ";
    out += program;
    out += " [flags] [arguments...]\n";
    if (!summary.empty()) {
        out += "\n";
        out += summary;
        out += "\n";
    }
    out += "\nOptions (flag, environment variable). Precedence: flags > environment > .env file"
           " > defaults.\n";
    for (const auto& o : options_) {
        out += "  ";
        if (!o.flag.empty()) {
            out += o.flag;
            const auto mv = type_metavar(o.type);
            if (!mv.empty()) {
                out += ' ';
                out += mv;
            }
            out += ", ";
        }
        out += o.env;
        if (o.flag.empty() && o.type != OptionType::kBool) {
            out += '=';
            out += type_metavar(o.type);
        } else if (o.type == OptionType::kBool) {
            out += "=true|false";
        }
        out += "\n      ";
        out += o.help;
        std::string notes;
        auto note = [&notes](const std::string& n) {
            notes += notes.empty() ? "" : ", ";
            notes += n;
        };
        if ((o.type == OptionType::kInt || o.type == OptionType::kDuration) &&
            (o.min != std::numeric_limits<std::int64_t>::min() ||
             o.max != std::numeric_limits<std::int64_t>::max())) {
            std::string range = "range ";
            range += o.min == std::numeric_limits<std::int64_t>::min() ? "" : std::to_string(o.min);
            range += "..";
            range += o.max == std::numeric_limits<std::int64_t>::max() ? "" : std::to_string(o.max);
            note(range);
        }
        if (o.default_value) {
            note(o.secret ? std::string("default <redacted>")
                          : "default " + quoted(*o.default_value));
        }
        if (o.required) {
            note("required");
        }
        if (o.secret) {
            note("secret");
        }
        if (!notes.empty()) {
            out += " (" + notes + ")";
        }
        out += '\n';
    }
    out += "  --help, -h\n      Show this help and exit.\n";
    out += "  --version\n      Print the version and exit.\n";
    return out;
}

// ---------------------------------------------------------------------------------------------
// Loading

EnvLookup env_from_map(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        const auto it = vars.find(name);
        if (it == vars.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

namespace {
bool is_unknown_own_key(const ConfigSchema& schema, const ConfigInputs& inputs,
                        std::string_view key) {
    if (inputs.warn_unknown_prefix.empty() || !key.starts_with(inputs.warn_unknown_prefix) ||
        schema.find_env(key) != nullptr) {
        return false;
    }
    for (const auto& f : inputs.foreign_prefixes) {
        if (key.starts_with(f)) {
            return false;
        }
    }
    return true;
}
}  // namespace

EnvLookup process_env() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): start-up only
        if (v == nullptr) {
            return std::nullopt;
        }
        return std::string(v);
    };
}

std::vector<std::string> args_from_argv(int argc, const char* const* argv) {
    std::vector<std::string> out;
    for (int i = 1; i < argc; ++i) {
        out.emplace_back(argv[i] != nullptr ? argv[i] : "");
    }
    return out;
}

namespace {

std::string join_lines(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) {
            out += '\n';
        }
        out += s;
    }
    return out;
}

std::optional<ConfigValue> convert(const OptionSpec& spec, std::string_view raw,
                                     std::string& why) {
    const std::string shown = spec.secret ? std::string("<redacted>") : quoted(raw);
    auto range_text = [&spec] {
        std::string r;
        r += spec.min == std::numeric_limits<std::int64_t>::min() ? "" : std::to_string(spec.min);
        r += "..";
        r += spec.max == std::numeric_limits<std::int64_t>::max() ? "" : std::to_string(spec.max);
        return r;
    };
    switch (spec.type) {
        case OptionType::kString:
            return ConfigValue(std::string(raw));
        case OptionType::kInt: {
            const auto v = parse_int(raw);
            if (!v) {
                why = shown + " is not an integer";
                return std::nullopt;
            }
            if (*v < spec.min || *v > spec.max) {
                why = (spec.secret ? shown : std::to_string(*v)) + " is out of range " +
                      range_text();
                return std::nullopt;
            }
            return ConfigValue(*v);
        }
        case OptionType::kBool: {
            const auto v = parse_bool(raw);
            if (!v) {
                why = shown + " is not a boolean (true/false/1/0/yes/no/on/off)";
                return std::nullopt;
            }
            return ConfigValue(*v);
        }
        case OptionType::kDuration: {
            const auto v = parse_duration(raw);
            if (!v) {
                why = shown + " is not a duration (seconds, e.g. 30, 1.5, 500ms, 5m, 2h)";
                return std::nullopt;
            }
            if (v->seconds < static_cast<double>(spec.min) ||
                v->seconds > static_cast<double>(spec.max)) {
                why = shown + " is out of range " + range_text() + " seconds";
                return std::nullopt;
            }
            return ConfigValue(v->d);
        }
        case OptionType::kList:
            return ConfigValue(split_list(raw));
        case OptionType::kAddress: {
            std::string reason;
            auto a = parse_listen_address(raw, &reason);
            if (!a) {
                why = shown + " is not a valid listen address: " +
                      (spec.secret ? std::string("invalid") : reason);
                return std::nullopt;
            }
            return ConfigValue(std::move(*a));
        }
    }
    why = "unknown option type";
    return std::nullopt;
}

struct RawValue {
    std::string text;
    ConfigSource source;
    std::string origin;
};

}  // namespace

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join_lines(problems)), problems_(std::move(problems)) {}

Config load_config(const ConfigSchema& schema, const ConfigInputs& inputs) {
    Config cfg;
    std::vector<std::string> problems;

    // 1. Command line.
    std::map<std::string, RawValue, std::less<>> from_flags;  // by env name
    bool flags_done = false;
    for (std::size_t i = 0; i < inputs.args.size(); ++i) {
        const std::string& a = inputs.args[i];
        if (flags_done || a.size() < 2 || a[0] != '-') {
            cfg.positional_.push_back(a);
            continue;
        }
        if (a == "--") {
            flags_done = true;
            continue;
        }
        if (a == "--help" || a == "-h") {
            cfg.help_requested_ = true;
            continue;
        }
        if (a == "--version") {
            cfg.version_requested_ = true;
            continue;
        }
        if (a[1] != '-') {
            problems.push_back("unknown flag " + quoted(a) + " (short flags are not supported)");
            continue;
        }
        const auto eq = a.find('=');
        const std::string name = a.substr(0, eq);
        const OptionSpec* spec = schema.find_flag(name);
        if (spec == nullptr) {
            problems.push_back("unknown flag " + quoted(name));
            continue;
        }
        std::string value;
        if (eq != std::string::npos) {
            value = a.substr(eq + 1);
        } else if (spec->type == OptionType::kBool) {
            value = "true";  // bool flags never consume the next argument
        } else if (i + 1 < inputs.args.size()) {
            value = inputs.args[++i];
        } else {
            problems.push_back(name + " needs a value");
            continue;
        }
        from_flags[spec->env] = RawValue{std::move(value), ConfigSource::kFlag, name};
    }

    // 2. .env file.
    std::map<std::string, RawValue, std::less<>> from_dotenv;
    if (inputs.dotenv_text) {
        const DotEnvFile file = parse_dotenv(*inputs.dotenv_text);
        for (const auto& p : file.problems) {
            problems.push_back(inputs.dotenv_name +
                               (p.line == 0 ? std::string() : " line " + std::to_string(p.line)) +
                               ": " + p.message);
        }
        for (const auto& e : file.entries) {
            const std::string origin = inputs.dotenv_name + " line " + std::to_string(e.line);
            if (schema.find_env(e.key) == nullptr) {
                if (is_unknown_own_key(schema, inputs, e.key)) {
                    cfg.warnings_.push_back(origin + ": unknown key " + e.key + " (ignored)");
                }
                continue;
            }
            from_dotenv[e.key] = RawValue{e.value, ConfigSource::kDotEnv, origin};
        }
    }

    // The environment's unknown keys (a typo there is as silent as one in .env).
    for (const auto& name : inputs.env_names) {
        if (is_unknown_own_key(schema, inputs, name)) {
            cfg.warnings_.push_back("environment: unknown key " + name + " (ignored)");
        }
    }

    // 3. Merge by precedence and validate every option.
    for (const auto& spec : schema.options()) {
        std::optional<RawValue> raw;
        if (auto it = from_flags.find(spec.env); it != from_flags.end()) {
            raw = it->second;
        } else if (auto v = inputs.env ? inputs.env(spec.env) : std::nullopt) {
            raw = RawValue{std::move(*v), ConfigSource::kEnvironment, "environment"};
        } else if (auto d = from_dotenv.find(spec.env); d != from_dotenv.end()) {
            raw = d->second;
        } else if (spec.default_value) {
            raw = RawValue{*spec.default_value, ConfigSource::kDefault, "default"};
        }
        Config::Entry entry;
        entry.spec = spec;
        cfg.order_.push_back(spec.env);
        if (!raw) {
            if (spec.required) {
                problems.push_back(spec.env + ": required but not set (set " + spec.env +
                                   (spec.flag.empty() ? std::string() : " or pass " + spec.flag) +
                                   ")");
            }
            cfg.entries_.emplace(spec.env, std::move(entry));
            continue;
        }
        entry.source = raw->source;
        entry.origin = raw->origin;
        const bool empty_ok = !(spec.required && trim(raw->text).empty() &&
                                (spec.type == OptionType::kString ||
                                 spec.type == OptionType::kList));
        if (!empty_ok) {
            problems.push_back(spec.env + ": required but empty (from " + raw->origin + ")");
        } else {
            std::string why;
            entry.value = convert(spec, raw->text, why);
            if (!entry.value) {
                problems.push_back(spec.env + ": " + why + " (from " + raw->origin + ")");
            }
        }
        cfg.entries_.emplace(spec.env, std::move(entry));
    }

    if (!problems.empty() && !cfg.help_requested_ && !cfg.version_requested_) {
        throw ConfigError(std::move(problems));
    }
    return cfg;
}

// ---------------------------------------------------------------------------------------------
// Config getters

const Config::Entry& Config::entry(std::string_view env, OptionType want) const {
    const auto it = entries_.find(env);
    if (it == entries_.end()) {
        throw std::logic_error("config: unknown option " + std::string(env));
    }
    if (it->second.spec.type != want) {
        throw std::logic_error("config: wrong getter type for " + std::string(env));
    }
    if (!it->second.value) {
        throw std::logic_error("config: " + std::string(env) + " is not set (check has())");
    }
    return it->second;
}

bool Config::has(std::string_view env) const {
    const auto it = entries_.find(env);
    return it != entries_.end() && it->second.value.has_value();
}

const std::string& Config::get_string(std::string_view env) const {
    return std::get<std::string>(*entry(env, OptionType::kString).value);
}
std::int64_t Config::get_int(std::string_view env) const {
    return std::get<std::int64_t>(*entry(env, OptionType::kInt).value);
}
bool Config::get_bool(std::string_view env) const {
    return std::get<bool>(*entry(env, OptionType::kBool).value);
}
Duration Config::get_duration(std::string_view env) const {
    return std::get<Duration>(*entry(env, OptionType::kDuration).value);
}
const std::vector<std::string>& Config::get_list(std::string_view env) const {
    return std::get<std::vector<std::string>>(*entry(env, OptionType::kList).value);
}
const ListenAddress& Config::get_address(std::string_view env) const {
    return std::get<ListenAddress>(*entry(env, OptionType::kAddress).value);
}

ConfigSource Config::source(std::string_view env) const {
    const auto it = entries_.find(env);
    if (it == entries_.end()) {
        throw std::logic_error("config: unknown option " + std::string(env));
    }
    return it->second.source;
}

std::string Config::describe() const {
    std::string out;
    for (const auto& name : order_) {
        const Entry& e = entries_.at(name);
        if (!e.value) {
            continue;
        }
        out += name;
        out += '=';
        if (e.spec.secret) {
            out += "<redacted>";
        } else {
            out += std::visit(
                [](const auto& v) -> std::string {
                    using T = std::decay_t<decltype(v)>;
                    if constexpr (std::is_same_v<T, std::string>) {
                        return quoted(v);
                    } else if constexpr (std::is_same_v<T, bool>) {
                        return v ? "true" : "false";
                    } else if constexpr (std::is_same_v<T, std::int64_t>) {
                        return std::to_string(v);
                    } else if constexpr (std::is_same_v<T, Duration>) {
                        return format_seconds(v);
                    } else if constexpr (std::is_same_v<T, ListenAddress>) {
                        return v.to_string();
                    } else {
                        std::string l;
                        for (const auto& item : v) {
                            l += l.empty() ? "" : ",";
                            l += printable(item);
                        }
                        return "\"" + l + "\"";
                    }
                },
                *e.value);
        }
        out += " (from " + e.origin + ")\n";
    }
    return out;
}

Config load_process_config(const ConfigSchema& schema, int argc, const char* const* argv,
                           std::string warn_unknown_prefix,
                           std::vector<std::string> foreign_prefixes) {
    ConfigInputs in;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view kv(*e);
        in.env_names.emplace_back(kv.substr(0, kv.find('=')));
    }
    in.foreign_prefixes = std::move(foreign_prefixes);
    in.args = args_from_argv(argc, argv);
    in.env = process_env();
    if (auto text = read_small_file(".env", kDotEnvMaxBytes)) {
        in.dotenv_text = *text;
    }
    in.warn_unknown_prefix = std::move(warn_unknown_prefix);
    return load_config(schema, in);
}

}  // namespace hopgate::core
