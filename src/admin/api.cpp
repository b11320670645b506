#include "admin/api.hpp"

#include <cstdio>
#include <ctime>
#include <exception>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "admin/json_util.hpp"
#include "registry/domain.hpp"
#include "registry/error.hpp"
#include "admin/cidr.hpp"
#include "registry/key.hpp"
#include "registry/registry.hpp"

namespace hopgate::admin {
namespace {

using nlohmann::json;
namespace reg = hopgate::registry;

constexpr std::size_t kMaxJsonDepth = 16;
constexpr std::string_view kDomainsPath = "/api/v1/admin/domains";

// "2026-12-06T05:02:03.123Z" for milliseconds since the Unix epoch (UTC).
std::string rfc3339_ms(std::int64_t unix_ms) {
    const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[80];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(unix_ms % 1000));
    return buf;
}

Response reply(int status, json body) {
    Response r;
    r.status = status;
    r.body = detail::dump(body) + "\n";
    return r;
}

Response ok(int status, json fields) {
    json body = {{"success", true}, {"error", nullptr}};
    body.update(fields);
    return reply(status, std::move(body));
}

Response fail(int status, std::string_view message) {
    return reply(status, json{{"success", false}, {"error", std::string(message)}});
}

Response unauthorized(std::string_view message) {
    Response r = fail(401, message);
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"hopgate-admin\"");
    return r;
}

Response from_error(std::error_code ec, int retry_after) {
    if (reg::is_invalid_domain(ec) || ec == reg::Errc::kInvalidMemo ||
        ec == reg::Errc::kInvalidArgument) {
        return fail(400, ec.message());
    }
    if (ec == reg::Errc::kNotFound) {
        return fail(404, "domain not registered");
    }
    if (ec == reg::Errc::kDuplicate) {
        return fail(409, "domain already registered");
    }
    if (ec == reg::Errc::kKeyMismatch) {
        return fail(403, "client_api_key does not match this domain");
    }
    if (reg::is_unavailable(ec)) {
        Response r = fail(503, "registry temporarily unavailable, retry later");
        r.headers.emplace_back("Retry-After", std::to_string(retry_after));
        return r;
    }
    return fail(500, "internal error");
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

// "application/json" with optional parameters ("; charset=utf-8"), any case.
bool is_json_content_type(std::string_view ct) {
    const auto semi = ct.find(';');
    return iequals(trim(ct.substr(0, semi)), "application/json");
}

// Nesting depth of a JSON text, scanning brackets outside strings. Run before the parser so
// hostile nesting costs nothing.
std::size_t json_depth(std::string_view s) {
    std::size_t depth = 0;
    std::size_t max_depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : s) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            max_depth = std::max(max_depth, ++depth);
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return max_depth;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out.push_back(' ');
        } else if (s[i] == '%') {
            if (i + 2 >= s.size()) {
                return std::nullopt;
            }
            const int hi = hex_value(s[i + 1]);
            const int lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return std::nullopt;
            }
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

// The first value of `name` in a query string; nullopt if absent. Sets `bad` on a malformed
// percent-escape.
std::optional<std::string> query_param(std::string_view query, std::string_view name, bool& bad) {
    std::size_t i = 0;
    while (i <= query.size()) {
        auto amp = query.find('&', i);
        if (amp == std::string_view::npos) {
            amp = query.size();
        }
        const auto pair = query.substr(i, amp - i);
        const auto eq = pair.find('=');
        auto key = percent_decode(pair.substr(0, eq));
        if (key && *key == name) {
            auto value = eq == std::string_view::npos ? std::optional<std::string>("")
                                                      : percent_decode(pair.substr(eq + 1));
            if (!value) {
                bad = true;
            }
            return value;
        }
        i = amp + 1;
    }
    return std::nullopt;
}

struct Body {
    json doc;
    std::optional<Response> error;
};

Body parse_body(const Request& req, std::size_t max_body) {
    Body b;
    if (req.body.size() > max_body) {
        b.error = fail(413, "request body larger than " + std::to_string(max_body) + " bytes");
    } else if (!is_json_content_type(req.content_type)) {
        b.error = fail(415, "Content-Type must be application/json");
    } else if (json_depth(req.body) > kMaxJsonDepth) {
        b.error = fail(400, "malformed JSON: nested too deeply");
    } else {
        b.doc = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
        if (b.doc.is_discarded()) {
            b.error = fail(400, "malformed JSON");
        } else if (!b.doc.is_object()) {
            b.error = fail(400, "request body must be a JSON object");
        }
    }
    return b;
}

// A string field: absent/null -> nullopt with no error if optional.
std::optional<std::string> string_field(const json& obj, const char* name, bool required,
                                        std::optional<Response>& error) {
    const auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) {
        if (required) {
            error = fail(400, std::string("missing field '") + name + "'");
        }
        return std::nullopt;
    }
    if (!it->is_string()) {
        error = fail(400, std::string("field '") + name + "' must be a string");
        return std::nullopt;
    }
    return it->get<std::string>();
}

}  // namespace

AdminApi::AdminApi(registry::Registry& registry, TunnelDirectory* tunnels, AdminOptions options)
    : registry_(registry),
      tunnels_(tunnels),
      options_(std::move(options)),
      auth_failures_(options_.auth_limiter) {
    if (!options_.clock) {
        options_.clock = core::steady_now;
    }
    if (!options_.api_key.empty() && options_.api_key.size() < kMinAdminKeyLength) {
        throw std::invalid_argument("HOP_ADMIN_API_KEY must be at least " +
                                    std::to_string(kMinAdminKeyLength) + " characters");
    }
    key_hash_ = reg::sha256_hex(options_.api_key);
}

bool AdminApi::is_admin_target(std::string_view target) {
    return target.starts_with(kAdminPathPrefix) ||
           target == kAdminPathPrefix.substr(0, kAdminPathPrefix.size() - 1);
}

Response AdminApi::payload_too_large() const {
    return fail(413, "request body larger than " + std::to_string(options_.max_body) + " bytes");
}

Response AdminApi::handle(const Request& req) const {
    try {
        std::string_view target = req.target;
        const auto qpos = target.find('?');
        std::string_view path = target.substr(0, qpos);
        const std::string_view query =
            qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);
        if (!is_admin_target(path)) {
            return fail(404, "not found");
        }
        if (!enabled()) {
            return fail(404, "admin API is disabled (HOP_ADMIN_API_KEY is not set)");
        }
        if (!options_.allow.empty() && (!req.remote || !options_.allow.contains(*req.remote))) {
            return fail(403, "source address not allowed");
        }
        // Authentication before routing: without the token nothing reveals which routes exist.
        const core::Instant now = options_.clock();
        if (req.remote && !auth_failures_.allowed(*req.remote, now)) {
            Response r = fail(429, "too many failed authentication attempts; retry later");
            r.headers.emplace_back("Retry-After",
                                   std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                      options_.auth_limiter.block)
                                                      .count()));
            return r;
        }
        const std::string_view auth = trim(req.authorization);
        if (auth.empty()) {
            return unauthorized("missing Authorization: Bearer token");
        }
        if (auth.size() < 7 || !iequals(auth.substr(0, 7), "bearer ")) {
            return unauthorized("Authorization must use the Bearer scheme");
        }
        if (!reg::constant_time_equal(reg::sha256_hex(trim(auth.substr(7))), key_hash_)) {
            if (req.remote) {
                auth_failures_.record_failure(*req.remote, now);
            }
            return unauthorized("invalid admin token");
        }
        if (req.remote) {
            auth_failures_.record_success(*req.remote);
        }

        if (path.size() > 1 && path.back() == '/') {
            path.remove_suffix(1);
        }
        struct Route {
            std::string_view suffix;
            std::string_view method;
        };
        static constexpr Route kRoutes[] = {
            {"", "GET"},           {"/exists", "GET"},      {"/status", "GET"},
            {"/tunnels", "GET"},
            {"/register", "POST"}, {"/unregister", "POST"}, {"/rotate", "POST"},
        };
        if (!path.starts_with(kDomainsPath)) {
            return fail(404, "no such admin route");
        }
        const std::string_view suffix = path.substr(kDomainsPath.size());
        const Route* route = nullptr;
        for (const auto& r : kRoutes) {
            if (r.suffix == suffix) {
                route = &r;
            }
        }
        if (route == nullptr) {
            return fail(404, "no such admin route");
        }
        if (req.method != route->method) {
            Response r = fail(405, "method not allowed; use " + std::string(route->method));
            r.headers.emplace_back("Allow", std::string(route->method));
            return r;
        }
        const int retry = options_.retry_after_seconds;

        if (route->method == "GET") {
            bool bad = false;
            if (suffix.empty()) {
                reg::ListQuery q;
                if (auto limit = query_param(query, "limit", bad); limit && !bad) {
                    std::size_t v = 0;
                    bool digits = !limit->empty() && limit->size() <= 4;
                    for (char c : *limit) {
                        digits = digits && c >= '0' && c <= '9';
                        v = v * 10 + static_cast<std::size_t>(c - '0');
                    }
                    if (!digits || v == 0 || v > reg::kMaxPageSize) {
                        return fail(400, "limit must be an integer from 1 to " +
                                             std::to_string(reg::kMaxPageSize));
                    }
                    q.limit = v;
                }
                if (auto after = query_param(query, "after", bad); after && !bad) {
                    if (!reg::is_valid_cursor(*after)) {
                        return fail(400, "after must be a domain name from a previous page");
                    }
                    q.after = std::move(*after);
                }
                if (bad) {
                    return fail(400, "malformed query string");
                }
                auto page = registry_.list(q);
                if (!page) {
                    return from_error(page.error(), retry);
                }
                json items = json::array();
                for (const auto& rec : page->items) {
                    items.push_back(detail::record_json(rec));
                }
                return ok(200, {{"domains", std::move(items)},
                                {"total", page->total},
                                {"next_after", page->next_after.empty() ? json(nullptr)
                                                                        : json(page->next_after)}});
            }
            auto raw = query_param(query, "domain", bad);
            if (bad) {
                return fail(400, "malformed query string");
            }
            if (!raw) {
                return fail(400, "missing query parameter 'domain'");
            }
            auto name = reg::normalize_domain(*raw);
            if (!name) {
                return from_error(name.error(), retry);
            }
            if (suffix == "/exists") {
                auto e = registry_.exists(*name);
                if (!e) {
                    return from_error(e.error(), retry);
                }
                return ok(200, {{"domain", *name}, {"exists", *e}});
            }
            auto st = registry_.status(*name);
            if (!st) {
                return from_error(st.error(), retry);
            }
            if (suffix == "/tunnels") {
                auto live = tunnels_ != nullptr
                                ? tunnels_->live_tunnels(*name)
                                : std::optional<std::vector<TunnelDirectory::LiveTunnel>>(
                                      std::vector<TunnelDirectory::LiveTunnel>{});
                if (!live) {
                    Response r = fail(503, "gateway busy, retry later");
                    r.headers.emplace_back("Retry-After", std::to_string(retry));
                    return r;
                }
                json items = json::array();
                for (const auto& t : *live) {
                    items.push_back({{"transport", t.transport},
                                     {"peer", t.peer},
                                     {"since", rfc3339_ms(t.since_unix_ms)},
                                     {"streams_open", t.streams_open},
                                     {"rtt_ms", t.rtt_ms}});
                }
                return ok(200, {{"domain", *name}, {"tunnels", std::move(items)}});
            }
            json fields = detail::record_json(*st);
            return ok(200, fields);
        }

        Body body = parse_body(req, options_.max_body);
        if (body.error) {
            return *body.error;
        }
        std::optional<Response> error;
        auto raw = string_field(body.doc, "domain", true, error);
        if (error) {
            return *error;
        }
        auto name = reg::normalize_domain(*raw);
        if (!name) {
            return from_error(name.error(), retry);
        }
        const auto notify = [&](bool unregistered) {
            if (tunnels_ != nullptr) {
                try {
                    tunnels_->disconnect_domain(*name, unregistered);
                } catch (...) {
                    // The registry change stands; the hook must not turn it into an error.
                }
            }
        };
        if (suffix == "/register") {
            auto memo = string_field(body.doc, "memo", false, error);
            if (error) {
                return *error;
            }
            if (auto why = reserved_message(options_.reserved, *name)) {
                return fail(409, *why);
            }
            auto r = registry_.register_domain(*name, memo.value_or(""));
            if (!r) {
                return from_error(r.error(), retry);
            }
            json fields = detail::record_json(r->record);
            fields["client_api_key"] = r->client_api_key;
            return ok(201, fields);
        }
        if (suffix == "/unregister") {
            auto key = string_field(body.doc, "client_api_key", true, error);
            if (error) {
                return *error;
            }
            if (!reg::is_well_formed_key(*key)) {
                return fail(400, "client_api_key must be 64 hex characters");
            }
            if (auto st = registry_.unregister_domain(*name, *key); !st) {
                return from_error(st.error(), retry);
            }
            notify(true);
            return ok(200, {{"domain", *name}});
        }
        // rotate
        auto key = registry_.rotate_key(*name);
        if (!key) {
            return from_error(key.error(), retry);
        }
        notify(false);
        return ok(200, {{"domain", *name}, {"client_api_key", *key}});
    } catch (const std::exception&) {
        return fail(500, "internal error");
    }
}

}  // namespace hopgate::admin
