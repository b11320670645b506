#include "core/log.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"

namespace hopgate::core {

std::string_view to_string(LogLevel level) {
    switch (level) {
        case LogLevel::kDebug: return "debug";
        case LogLevel::kInfo: return "info";
        case LogLevel::kWarn: return "warn";
        case LogLevel::kError: return "error";
    }
    return "error";
}

Result<LogLevel> parse_log_level(std::string_view text) {
    std::string l(text);
    for (char& c : l) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    if (l == "debug") {
        return LogLevel::kDebug;
    }
    if (l == "info") {
        return LogLevel::kInfo;
    }
    if (l == "warn" || l == "warning") {
        return LogLevel::kWarn;
    }
    if (l == "error") {
        return LogLevel::kError;
    }
    return Errc::kInvalidArgument;
}

namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Bytes that appear in a JSON string as themselves: printable ASCII except '"' and '\\'.
constexpr auto kPlainJson = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x7f; ++c) {
        t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
    }
    return t;
}();

bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of the valid UTF-8 sequence starting at s[i], or 0 with `bad` set to the length of the
// maximal invalid subpart (>= 1) to replace with a single U+FFFD (Unicode 15, section 3.9).
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& bad) {
    const auto c0 = static_cast<unsigned char>(s[i]);
    std::size_t need = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c0 >= 0xC2 && c0 <= 0xDF) {
        need = 1;
    } else if (c0 >= 0xE0 && c0 <= 0xEF) {
        need = 2;
        if (c0 == 0xE0) {
            lo = 0xA0;  // no overlongs
        } else if (c0 == 0xED) {
            hi = 0x9F;  // no surrogates
        }
    } else if (c0 >= 0xF0 && c0 <= 0xF4) {
        need = 3;
        if (c0 == 0xF0) {
            lo = 0x90;  // no overlongs
        } else if (c0 == 0xF4) {
            hi = 0x8F;  // nothing above U+10FFFF
        }
    } else {
        bad = 1;  // stray continuation, C0/C1, F5..FF
        return 0;
    }
    std::size_t j = 1;
    for (; j <= need; ++j) {
        if (i + j >= s.size()) {
            bad = j;
            return 0;
        }
        const auto c = static_cast<unsigned char>(s[i + j]);
        const bool ok = (j == 1) ? (c >= lo && c <= hi) : is_cont(c);
        if (!ok) {
            bad = j;
            return 0;
        }
    }
    return need + 1;
}

void append_double(std::string& out, double v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

template <class T>
void append_integer(std::string& out, T v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void append_padded(std::string& out, long v, int width) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    const auto len = static_cast<int>(r.ptr - buf);
    for (int i = len; i < width; ++i) {
        out += '0';
    }
    out.append(buf, r.ptr);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    // Fast path: printable ASCII other than '"' and '\\' (nearly all log text) is copied as is
    // into room made for the whole string; the first other byte hands over to the loop below.
    const std::size_t start = out.size();
    out.resize(start + s.size() + 2);
    char* p = out.data() + start;
    *p++ = '"';
    std::size_t i = 0;
    while (i < s.size() && kPlainJson[static_cast<unsigned char>(s[i])]) {
        p[i] = s[i];
        ++i;
    }
    if (i == s.size()) {
        p[i] = '"';
        return;
    }
    out.resize(start + 1 + i);
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (kPlainJson[c]) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (c < 0x20) {
                        out += "\\u00";
                        out += kHex[c >> 4];
                        out += kHex[c & 0xf];
                    } else {
                        out += static_cast<char>(c);
                    }
            }
            ++i;
            continue;
        }
        std::size_t bad = 0;
        const std::size_t n = utf8_sequence(s, i, bad);
        if (n > 0) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            out += kReplacement;
            i += bad;
        }
    }
    out += '"';
}

namespace {

void append_rfc3339_ms_uncached(std::string& out, std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    // floor, not time_point_cast: the latter rounds toward zero for instants before 1970.
    const auto ms_floor = floor<milliseconds>(t);
    const auto day = floor<days>(ms_floor);
    const year_month_day ymd(day);
    const hh_mm_ss hms(ms_floor - day);
    append_padded(out, static_cast<int>(ymd.year()), 4);
    out += '-';
    append_padded(out, static_cast<long>(static_cast<unsigned>(ymd.month())), 2);
    out += '-';
    append_padded(out, static_cast<long>(static_cast<unsigned>(ymd.day())), 2);
    out += 'T';
    append_padded(out, static_cast<long>(hms.hours().count()), 2);
    out += ':';
    append_padded(out, static_cast<long>(hms.minutes().count()), 2);
    out += ':';
    append_padded(out, static_cast<long>(hms.seconds().count()), 2);
    out += '.';
    append_padded(out, static_cast<long>(hms.subseconds().count()), 3);
    out += 'Z';
}

// The calendar arithmetic costs more than the rest of a log line: the text up to the seconds
// is kept per thread and reused while the second is the same.
void append_rfc3339_ms(std::string& out, std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    constexpr std::size_t kUpToSeconds = 19;  // "YYYY-MM-DDTHH:MM:SS"
    thread_local sys_seconds cached_second{seconds::min()};
    thread_local std::string cached;
    const auto ms_floor = floor<milliseconds>(t);
    const auto second = floor<seconds>(ms_floor);
    if (second != cached_second || cached.size() != kUpToSeconds) {
        std::string full;
        append_rfc3339_ms_uncached(full, t);
        if (full.size() != kUpToSeconds + 5) {  // a year outside 0000-9999: no caching
            out += full;
            return;
        }
        cached.assign(full, 0, kUpToSeconds);
        cached_second = second;
    }
    out += cached;
    out += '.';
    const auto ms = static_cast<unsigned>((ms_floor - second).count());
    out += static_cast<char>('0' + ms / 100);
    out += static_cast<char>('0' + ms / 10 % 10);
    out += static_cast<char>('0' + ms % 10);
    out += 'Z';
}

}  // namespace

std::string format_rfc3339_ms(std::chrono::system_clock::time_point t) {
    std::string out;
    out.reserve(24);
    append_rfc3339_ms(out, t);
    return out;
}

void LogField::append_to(std::string& out) const {
    append_json_string(out, key_);
    out += ':';
    switch (kind_) {
        case Kind::kString: append_json_string(out, s_); break;
        case Kind::kInt: append_integer(out, i_); break;
        case Kind::kUint: append_integer(out, u_); break;
        case Kind::kDouble: append_double(out, d_); break;
        case Kind::kBool: out += b_ ? "true" : "false"; break;
    }
}

std::string format_log_line(std::chrono::system_clock::time_point ts, LogLevel level,
                            std::string_view component, std::string_view msg,
                            std::span<const LogField> fields) {
    std::string out;
    append_log_line(out, ts, level, component, msg, fields);
    return out;
}

void append_log_line(std::string& out, std::chrono::system_clock::time_point ts, LogLevel level,
                     std::string_view component, std::string_view msg,
                     std::span<const LogField> fields) {
    out.reserve(out.size() + 96 + msg.size() + 24 * fields.size());
    out += "{\"ts\":\"";
    append_rfc3339_ms(out, ts);
    out += "\",\"level\":\"";
    out += to_string(level);
    out += "\",\"msg\":";
    append_json_string(out, msg);
    out += ",\"component\":";
    append_json_string(out, component);
    for (const auto& f : fields) {
        out += ',';
        f.append_to(out);
    }
    out += "}\n";
}

LogSink stderr_sink() {
    return [](std::string_view line) { std::fwrite(line.data(), 1, line.size(), stderr); };
}

LogOutput::LogOutput(LogLevel threshold, LogSink sink, WallClock clock)
    : level_(threshold),
      sink_(sink ? std::move(sink) : stderr_sink()),
      clock_(clock ? std::move(clock)
                   : WallClock([] { return std::chrono::system_clock::now(); })) {}

LogOutput::~LogOutput() { flush(); }

void LogOutput::write(std::string_view line, bool urgent) {
    std::function<void()> schedule;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!schedule_) {
            try {
                sink_(line);
            } catch (...) {  // NOLINT(bugprone-empty-catch): a failing sink must not crash the caller
            }
            return;
        }
        const bool was_empty = pending_.empty();
        pending_.append(line);
        if (urgent || pending_.size() >= kDeferredLimit) {
            flush_locked();
            return;
        }
        if (!was_empty) {
            return;  // a flush is already scheduled
        }
        schedule = schedule_;
    }
    try {
        schedule();
    } catch (...) {  // NOLINT(bugprone-empty-catch): cannot schedule: write now instead
        flush();
    }
}

void LogOutput::set_deferred(std::function<void()> schedule) {
    std::lock_guard<std::mutex> lock(mu_);
    flush_locked();
    schedule_ = std::move(schedule);
}

void LogOutput::flush() {
    std::lock_guard<std::mutex> lock(mu_);
    flush_locked();
}

void LogOutput::flush_locked() {
    if (pending_.empty()) {
        return;
    }
    try {
        sink_(pending_);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a failing sink must not crash the caller
    }
    pending_.clear();
}

void Logger::emit(LogLevel level, std::string_view msg, std::span<const LogField> fields) const {
    // Formatted into a per-thread buffer that keeps its capacity: no allocation per line. A
    // line logged from inside the write (a sink that logs) gets a buffer of its own.
    thread_local std::string buffer;
    thread_local bool busy = false;
    if (busy) {
        const std::string line = format_log_line(out_->now(), level, component_, msg, fields);
        out_->write(line, level >= LogLevel::kWarn);
        return;
    }
    busy = true;
    buffer.clear();
    append_log_line(buffer, out_->now(), level, component_, msg, fields);
    try {
        out_->write(buffer, level >= LogLevel::kWarn);
    } catch (...) {
        busy = false;
        throw;
    }
    busy = false;
    if (buffer.capacity() > 64 * 1024) {
        buffer = std::string();  // a huge line does not pin its buffer
    }
}

}  // namespace hopgate::core
