#include "core/loki.hpp"

#include <charconv>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace hopgate::core {

void add_loki_options(ConfigSchema& s) {
    s.add({.env = "HOP_LOKI_ENABLE", .flag = "--loki-enable", .type = OptionType::kBool,
           .default_value = "false", .help = "push log lines to Loki (HOP_LOKI_ENDPOINT)"});
    s.add({.env = "HOP_LOKI_ENDPOINT", .flag = "--loki-endpoint", .default_value = "",
           .help = "Loki base URL (http://host:3100) or full push URL "
                   "(http://host:3100/loki/api/v1/push)"});
    s.add({.env = "HOP_LOKI_TENANT_ID", .flag = "--loki-tenant-id", .default_value = "",
           .help = "tenant sent as X-Scope-OrgID (multi-tenant Loki)"});
    s.add({.env = "HOP_LOKI_USERNAME", .flag = "--loki-username", .default_value = "",
           .help = "HTTP Basic auth user for the push"});
    s.add({.env = "HOP_LOKI_PASSWORD", .flag = "--loki-password", .default_value = "",
           .help = "HTTP Basic auth password for the push", .secret = true});
    s.add({.env = "HOP_LOKI_STATIC_LABELS", .flag = "--loki-static-labels", .default_value = "",
           .help = "extra stream labels, comma-separated k=v (app=hopgate and component are "
                   "always set)"});
}

Result<LokiEndpoint> parse_loki_endpoint(std::string_view url) {
    constexpr std::string_view kScheme = "http://";
    if (url.size() < kScheme.size() || url.substr(0, kScheme.size()) != kScheme) {
        return Errc::kInvalidArgument;
    }
    url.remove_prefix(kScheme.size());
    const auto slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "" : url.substr(slash);
    if (authority.empty() || authority.find('@') != std::string_view::npos ||
        path.find_first_of("?# ") != std::string_view::npos) {
        return Errc::kInvalidArgument;
    }
    LokiEndpoint ep;
    std::string_view host = authority;
    std::string_view port;
    if (authority.front() == '[') {  // [::1]:3100
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return Errc::kInvalidArgument;
        }
        host = authority.substr(1, close - 1);
        const auto rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return Errc::kInvalidArgument;
            }
            port = rest.substr(1);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty()) {
        return Errc::kInvalidArgument;
    }
    if (!port.empty() || authority.back() == ':') {
        unsigned p = 0;
        const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc{} || ptr != port.data() + port.size() || p == 0 || p > 65535) {
            return Errc::kInvalidArgument;
        }
        ep.port = static_cast<std::uint16_t>(p);
    }
    ep.host = std::string(host);
    ep.target = (path.empty() || path == "/") ? "/loki/api/v1/push" : std::string(path);
    return ep;
}

Result<std::map<std::string, std::string>> parse_loki_labels(std::string_view text) {
    std::map<std::string, std::string> out;
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
            s.remove_prefix(1);
        }
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
            s.remove_suffix(1);
        }
        return s;
    };
    while (!text.empty()) {
        const auto comma = text.find(',');
        const std::string_view item = trim(text.substr(0, comma));
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        if (item.empty()) {
            continue;
        }
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) {
            return Errc::kInvalidArgument;
        }
        const std::string_view k = trim(item.substr(0, eq));
        const std::string_view v = trim(item.substr(eq + 1));
        if (k.empty() || v.empty() || (k.front() >= '0' && k.front() <= '9')) {
            return Errc::kInvalidArgument;
        }
        for (const char c : k) {
            const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '_';
            if (!ok) {
                return Errc::kInvalidArgument;
            }
        }
        out[std::string(k)] = std::string(v);
    }
    return out;
}

std::optional<LokiSettings> loki_settings_from_config(const Config& cfg,
                                                      std::string_view component) {
    if (!cfg.get_bool("HOP_LOKI_ENABLE")) {
        return std::nullopt;
    }
    std::vector<std::string> problems;
    LokiSettings s;
    const std::string& url = cfg.get_string("HOP_LOKI_ENDPOINT");
    if (url.empty()) {
        problems.push_back("HOP_LOKI_ENDPOINT: must be set when HOP_LOKI_ENABLE is on");
    } else if (auto ep = parse_loki_endpoint(url); !ep) {
        problems.push_back("HOP_LOKI_ENDPOINT: \"" + url +
                           "\" is not an http://host[:port][/path] URL (https is not supported)");
    } else {
        s.endpoint = std::move(*ep);
    }
    s.tenant_id = cfg.get_string("HOP_LOKI_TENANT_ID");
    s.username = cfg.get_string("HOP_LOKI_USERNAME");
    s.password = cfg.get_string("HOP_LOKI_PASSWORD");
    if (s.username.empty() && !s.password.empty()) {
        problems.push_back("HOP_LOKI_PASSWORD: set without HOP_LOKI_USERNAME");
    }
    s.labels = {{"app", "hopgate"}, {"component", std::string(component)}};
    const std::string& text = cfg.get_string("HOP_LOKI_STATIC_LABELS");
    if (auto labels = parse_loki_labels(text); !labels) {
        problems.push_back("HOP_LOKI_STATIC_LABELS: \"" + text +
                           "\" is not a comma-separated list of name=value (names "
                           "[a-zA-Z_][a-zA-Z0-9_]*, values non-empty)");
    } else {
        for (auto& [k, v] : *labels) {
            s.labels[k] = v;  // the operator's value wins, app= included
        }
    }
    if (!problems.empty()) {
        throw ConfigError(std::move(problems));
    }
    return s;
}

LokiQueue::LokiQueue(Limits limits) : limits_(limits) {}

void LokiQueue::push(std::string_view text, std::chrono::system_clock::time_point ts) {
    const std::int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(ts.time_since_epoch()).count();
    // Split outside the lock; the lock only moves strings.
    std::vector<LokiEntry> add;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (!line.empty()) {
            add.push_back({ns, std::string(line)});
        }
    }
    std::uint64_t dropped = 0;
    {
        std::lock_guard lock(mu_);
        for (auto& e : add) {
            if (e.line.size() > limits_.max_bytes || limits_.max_lines == 0) {
                ++dropped;
                continue;
            }
            while (!lines_.empty() && (lines_.size() + 1 > limits_.max_lines ||
                                       bytes_ + e.line.size() > limits_.max_bytes)) {
                bytes_ -= lines_.front().line.size();
                lines_.pop_front();
                ++dropped;
            }
            bytes_ += e.line.size();
            lines_.push_back(std::move(e));
            if (on_full_batch_ && lines_.size() == notify_at_) {
                on_full_batch_();
            }
        }
    }
    if (dropped != 0) {
        dropped_.fetch_add(dropped, std::memory_order_relaxed);
    }
}

std::vector<LokiEntry> LokiQueue::take(std::size_t max_lines, std::size_t max_bytes) {
    std::vector<LokiEntry> out;
    std::size_t taken_bytes = 0;
    std::lock_guard lock(mu_);
    while (!lines_.empty() && out.size() < max_lines) {
        const std::size_t n = lines_.front().line.size();
        if (!out.empty() && taken_bytes + n > max_bytes) {
            break;
        }
        taken_bytes += n;
        bytes_ -= n;
        out.push_back(std::move(lines_.front()));
        lines_.pop_front();
    }
    return out;
}

void LokiQueue::set_on_full_batch(std::size_t threshold, std::function<void()> fn) {
    std::lock_guard lock(mu_);
    notify_at_ = threshold;
    on_full_batch_ = std::move(fn);
}

std::size_t LokiQueue::size() const {
    std::lock_guard lock(mu_);
    return lines_.size();
}

std::size_t LokiQueue::bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
}

LogSink LokiQueue::tee(std::shared_ptr<LokiQueue> q, LogSink next) {
    return [q = std::move(q), next = std::move(next)](std::string_view text) {
        if (next) {
            next(text);
        }
        q->push(text, std::chrono::system_clock::now());
    };
}

std::string build_loki_push_body(const std::map<std::string, std::string>& labels,
                                 const std::vector<LokiEntry>& entries) {
    nlohmann::json stream = nlohmann::json::object();
    for (const auto& [k, v] : labels) {
        stream[k] = v;
    }
    nlohmann::json values = nlohmann::json::array();
    for (const auto& e : entries) {
        values.push_back(nlohmann::json::array({std::to_string(e.ts_ns), e.line}));
    }
    nlohmann::json body = {
        {"streams", nlohmann::json::array({{{"stream", stream}, {"values", values}}})}};
    // Log lines are valid UTF-8 (append_json_string replaces invalid bytes); replace anyway
    // rather than throw.
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::chrono::milliseconds loki_backoff(unsigned failures, std::chrono::milliseconds base,
                                       std::chrono::milliseconds cap) {
    if (failures == 0) {
        return std::chrono::milliseconds(0);
    }
    auto d = base;
    for (unsigned i = 1; i < failures && d < cap; ++i) {
        d *= 2;
    }
    return d < cap ? d : cap;
}

}  // namespace hopgate::core
