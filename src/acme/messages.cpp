#include "acme/messages.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "acme/error.hpp"

namespace hopgate::acme {
namespace {

using json = nlohmann::json;

// Parses a JSON object under the document limit; depth is bounded by nlohmann's recursion on
// the (bounded) input, which 1 MiB of '[' would exhaust: reject deep nesting up front.
core::Result<json> parse_object(std::string_view body) {
    if (body.size() > kMaxDocument) {
        return Errc::kTooLarge;
    }
    int depth = 0;
    for (char c : body) {
        if (c == '[' || c == '{') {
            if (++depth > 32) {
                return Errc::kParse;
            }
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    auto doc = json::parse(body.begin(), body.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        return Errc::kParse;
    }
    return doc;
}

std::string str(const json& o, const char* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<Problem> problem_of(const json& o) {
    if (!o.is_object()) {
        return std::nullopt;
    }
    Problem p;
    p.type = str(o, "type");
    p.detail = str(o, "detail");
    if (auto it = o.find("status"); it != o.end() && it->is_number_integer()) {
        const auto s = it->get<long long>();
        p.status = s >= 0 && s < 1000 ? static_cast<int>(s) : 0;
    }
    return p;
}

core::Result<Challenge> challenge_of(const json& o) {
    if (!o.is_object()) {
        return Errc::kParse;
    }
    Challenge c;
    c.type = str(o, "type");
    c.url = str(o, "url");
    c.token = str(o, "token");
    c.status = str(o, "status");
    if (auto it = o.find("error"); it != o.end()) {
        c.error = problem_of(*it);
    }
    if (c.type.empty() || c.url.empty()) {
        return Errc::kParse;
    }
    return c;
}

}  // namespace

bool Problem::is(std::string_view short_type) const {
    constexpr std::string_view kPrefix = "urn:ietf:params:acme:error:";
    return type.size() == kPrefix.size() + short_type.size() && type.starts_with(kPrefix) &&
           std::string_view(type).substr(kPrefix.size()) == short_type;
}

std::string Problem::summary() const {
    std::string t = type;
    if (auto pos = t.rfind(':'); pos != std::string::npos) {
        t = t.substr(pos + 1);
    }
    if (t.empty()) {
        t = "problem";
    }
    return detail.empty() ? t : t + ": " + detail;
}

core::Result<Directory> parse_directory(std::string_view body) {
    auto doc = parse_object(body);
    if (!doc) {
        return doc.error();
    }
    Directory d;
    d.new_nonce = str(*doc, "newNonce");
    d.new_account = str(*doc, "newAccount");
    d.new_order = str(*doc, "newOrder");
    d.renewal_info = str(*doc, "renewalInfo");
    if (auto it = doc->find("meta"); it != doc->end() && it->is_object()) {
        d.terms_of_service = str(*it, "termsOfService");
    }
    if (d.new_nonce.empty() || d.new_account.empty() || d.new_order.empty()) {
        return Errc::kParse;
    }
    return d;
}

core::Result<Problem> parse_problem(std::string_view body) {
    auto doc = parse_object(body);
    if (!doc) {
        return doc.error();
    }
    auto p = problem_of(*doc);
    if (!p || p->type.empty()) {
        return Errc::kParse;
    }
    return *p;
}

core::Result<Challenge> parse_challenge(std::string_view body) {
    auto doc = parse_object(body);
    if (!doc) {
        return doc.error();
    }
    return challenge_of(*doc);
}

core::Result<Authorization> parse_authorization(std::string_view body) {
    auto doc = parse_object(body);
    if (!doc) {
        return doc.error();
    }
    Authorization a;
    a.status = str(*doc, "status");
    if (auto it = doc->find("identifier"); it != doc->end() && it->is_object()) {
        a.identifier = str(*it, "value");
    }
    if (auto it = doc->find("wildcard"); it != doc->end() && it->is_boolean()) {
        a.wildcard = it->get<bool>();
    }
    if (auto it = doc->find("challenges"); it != doc->end() && it->is_array()) {
        for (const auto& c : *it) {
            if (auto ch = challenge_of(c)) {
                a.challenges.push_back(std::move(*ch));
            }
        }
    }
    if (a.status.empty() || a.identifier.empty()) {
        return Errc::kParse;
    }
    return a;
}

core::Result<Order> parse_order(std::string_view body) {
    auto doc = parse_object(body);
    if (!doc) {
        return doc.error();
    }
    Order o;
    o.status = str(*doc, "status");
    o.finalize = str(*doc, "finalize");
    o.certificate = str(*doc, "certificate");
    if (auto it = doc->find("authorizations"); it != doc->end() && it->is_array()) {
        for (const auto& a : *it) {
            if (!a.is_string()) {
                return Errc::kParse;
            }
            o.authorizations.push_back(a.get<std::string>());
        }
    }
    if (auto it = doc->find("error"); it != doc->end()) {
        o.error = problem_of(*it);
    }
    if (o.status.empty() || o.finalize.empty()) {
        return Errc::kParse;
    }
    return o;
}

core::Result<Account> parse_account(std::string_view body) {
    auto doc = parse_object(body);
    if (!doc) {
        return doc.error();
    }
    Account a;
    a.status = str(*doc, "status");
    if (a.status.empty()) {
        return Errc::kParse;
    }
    return a;
}

core::Result<RenewalInfo> parse_renewal_info(std::string_view body) {
    auto doc = parse_object(body);
    if (!doc) {
        return doc.error();
    }
    auto it = doc->find("suggestedWindow");
    if (it == doc->end() || !it->is_object()) {
        return Errc::kParse;
    }
    auto s = parse_rfc3339(str(*it, "start"));
    auto e = parse_rfc3339(str(*it, "end"));
    if (!s || !e || *e < *s) {
        return Errc::kParse;
    }
    return RenewalInfo{*s, *e};
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view t) {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
    if (t.size() < 20 || t.size() > 40) {
        return std::nullopt;
    }
    auto num = [&](std::size_t pos, std::size_t len, int& out) {
        auto r = std::from_chars(t.data() + pos, t.data() + pos + len, out);
        return r.ec == std::errc() && r.ptr == t.data() + pos + len;
    };
    int Y = 0, M = 0, D = 0, h = 0, m = 0, s = 0;
    if (!num(0, 4, Y) || t[4] != '-' || !num(5, 2, M) || t[7] != '-' || !num(8, 2, D) ||
        (t[10] != 'T' && t[10] != 't') || !num(11, 2, h) || t[13] != ':' || !num(14, 2, m) ||
        t[16] != ':' || !num(17, 2, s)) {
        return std::nullopt;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 60) {
        return std::nullopt;
    }
    std::size_t i = 19;
    if (i < t.size() && t[i] == '.') {
        ++i;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
            ++i;
        }
    }
    int offset = 0;
    if (i < t.size() && (t[i] == 'Z' || t[i] == 'z') && i + 1 == t.size()) {
        offset = 0;
    } else if (i + 6 == t.size() && (t[i] == '+' || t[i] == '-') && t[i + 3] == ':') {
        int oh = 0, om = 0;
        if (!num(i + 1, 2, oh) || !num(i + 4, 2, om) || oh > 23 || om > 59) {
            return std::nullopt;
        }
        offset = (oh * 60 + om) * 60 * (t[i] == '+' ? 1 : -1);
    } else {
        return std::nullopt;
    }
    std::chrono::year_month_day ymd{std::chrono::year(Y),
                                    std::chrono::month(static_cast<unsigned>(M)),
                                    std::chrono::day(static_cast<unsigned>(D))};
    if (!ymd.ok()) {
        return std::nullopt;
    }
    auto tp = std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(m) +
              std::chrono::seconds(s) - std::chrono::seconds(offset);
    return std::chrono::time_point_cast<std::chrono::system_clock::duration>(tp);
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view v,
                                                      std::chrono::system_clock::time_point now,
                                                      std::chrono::seconds cap) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
        v.remove_suffix(1);
    }
    if (v.empty() || v.size() > 64) {
        return std::nullopt;
    }
    if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        long long secs = 0;
        auto r = std::from_chars(v.data(), v.data() + v.size(), secs);
        if (r.ec == std::errc::result_out_of_range) {
            return cap;
        }
        return std::min(std::chrono::seconds(secs), cap);
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    std::tm tm{};
    const std::string s(v);
    const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == nullptr || *end != '\0') {
        return std::nullopt;
    }
    const auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
    if (when <= now) {
        return std::chrono::seconds(0);
    }
    return std::min(std::chrono::duration_cast<std::chrono::seconds>(when - now), cap);
}

}  // namespace hopgate::acme
