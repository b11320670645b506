#include "http/error_pages.hpp"

#include <array>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace hopgate::http {
namespace {

namespace fs = std::filesystem;

// Served at /__hopgate_assets__/errors.css and inlined into every built-in page.
constexpr std::string_view kCss =
    R"css(:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--muted:#5b6474;--line:#e3e6eb;--accent:#2f6fdf;--bad:#c2410c}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--card:#1a1e24;--fg:#e8ebf0;--muted:#9aa3b2;--line:#2b313a;--accent:#7aa7ff;--bad:#fb923c}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:24px;background:var(--bg);color:var(--fg);font:16px/1.6 system-ui,-apple-system,"Segoe UI",Roboto,"Apple SD Gothic Neo","Noto Sans KR","Malgun Gothic",sans-serif}
main{width:100%;max-width:560px;background:var(--card);border:1px solid var(--line);border-radius:14px;padding:32px 32px 24px;box-shadow:0 1px 2px rgba(0,0,0,.04),0 8px 24px rgba(0,0,0,.05)}
.brand{display:flex;align-items:center;gap:8px;color:var(--muted);font-size:14px;font-weight:600;letter-spacing:.02em}
.brand svg{width:22px;height:22px}
.code{margin:20px 0 0;font-size:56px;line-height:1;font-weight:700;color:var(--bad);letter-spacing:-.02em}
h1{margin:8px 0 0;font-size:22px;line-height:1.3}
h1 .ko{display:block;margin-top:2px;font-size:18px;font-weight:600;color:var(--muted)}
.msg{margin:18px 0 0}
.msg p{margin:0 0 6px}
.msg p[lang=ko]{color:var(--muted)}
.hint{margin:18px 0 0;padding:12px 14px;border-left:3px solid var(--accent);background:rgba(47,111,223,.06);border-radius:6px;font-size:14px}
.hint p{margin:0 0 4px}
dl{margin:22px 0 0;padding-top:14px;border-top:1px solid var(--line);display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;font-size:13px;color:var(--muted)}
dt{font-weight:600}
dd{margin:0;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
footer{margin-top:18px;font-size:12px;color:var(--muted)}
)css";

constexpr std::string_view kLogo =
    R"svg(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" role="img" aria-label="HopGate"><rect width="32" height="32" rx="8" fill="#2f6fdf"/><path d="M8 23V9m0 7h8m0-7v14" stroke="#fff" stroke-width="2.6" stroke-linecap="round" fill="none"/><path d="M20 12c3 0 4.5 1.8 4.5 4s-1.5 4-4.5 4" stroke="#9cc0ff" stroke-width="2.6" stroke-linecap="round" fill="none"/></svg>)svg";

struct PageText {
    int status;
    std::string_view title_en;
    std::string_view title_ko;
    std::string_view msg_en;
    std::string_view msg_ko;
    std::string_view hint_en;  // for the site owner; may be empty
    std::string_view hint_ko;
};

constexpr std::array<PageText, 8> kPages = {{
    {400, "Bad Request", "잘못된 요청", "The server could not understand this request.",
     "서버가 이 요청을 이해할 수 없습니다.",
     "Check the address and the request headers, then try again.",
     "주소와 요청 헤더를 확인한 뒤 다시 시도해 주세요."},
    {404, "Not Found", "찾을 수 없음",
     "No service is registered for {{host}} on this HopGate server.",
     "이 HopGate 서버에는 {{host}} 에 등록된 서비스가 없습니다.",
     "If you run this site, register the domain and start hopgate-client for it.",
     "사이트 운영자라면 도메인을 등록하고 hopgate-client 를 실행해 주세요."},
    {431, "Request Header Fields Too Large", "요청 헤더가 너무 큼",
     "The request headers are too large or too many for this server.",
     "요청 헤더가 이 서버가 받을 수 있는 것보다 크거나 많습니다.",
     "Remove unneeded cookies or headers for this site, then try again.",
     "이 사이트의 불필요한 쿠키나 헤더를 지운 뒤 다시 시도해 주세요."},
    {500, "Internal Server Error", "내부 서버 오류", "Something went wrong on the HopGate server.",
     "HopGate 서버에서 문제가 발생했습니다.",
     "Please try again in a moment. If it persists, report the request ID below.",
     "잠시 후 다시 시도해 주세요. 계속되면 아래 요청 ID 를 알려 주세요."},
    {501, "Not Implemented", "구현되지 않음",
     "This server does not support the request method or framing that was used.",
     "이 서버는 요청에 사용된 메서드나 전송 방식을 지원하지 않습니다.",
     "", ""},
    {502, "Bad Gateway", "잘못된 게이트웨이",
     "The service behind {{host}} is not reachable right now.",
     "{{host}} 뒤의 서비스에 지금 연결할 수 없습니다.",
     "If you run this site, check that hopgate-client is connected and the local service is up.",
     "사이트 운영자라면 hopgate-client 연결과 로컬 서비스 실행 상태를 확인해 주세요."},
    {504, "Gateway Timeout", "게이트웨이 시간 초과",
     "The service behind {{host}} did not answer in time.",
     "{{host}} 뒤의 서비스가 제시간에 응답하지 않았습니다.",
     "Please try again. If you run this site, check why the local service is slow.",
     "다시 시도해 주세요. 사이트 운영자라면 로컬 서비스가 느린 원인을 확인해 주세요."},
    {525, "TLS/DTLS Handshake Failed", "TLS/DTLS 핸드셰이크 실패",
     "The secure TLS/DTLS tunnel to the service behind {{host}} could not be established.",
     "{{host}} 뒤의 서비스로 가는 TLS/DTLS 보안 터널을 맺지 못했습니다.",
     "If you run this site, check the client's certificate settings and network path to the "
     "server.",
     "사이트 운영자라면 클라이언트의 인증서 설정과 서버까지의 네트워크 경로를 확인해 주세요."},
}};

const PageText* find_page(int status) {
    for (const auto& p : kPages) {
        if (p.status == status) {
            return &p;
        }
    }
    return nullptr;
}

std::string head(std::string_view title) {
    std::string out;
    out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    out += "<meta name=\"robots\" content=\"noindex\">\n<title>";
    out += title;
    out += "</title>\n<style>\n";
    out += kCss;
    out += "</style>\n</head>\n<body>\n<main>\n<div class=\"brand\">";
    out += kLogo;
    out += "<span>HopGate</span></div>\n";
    return out;
}

// Built-in template for a status, with {{...}} placeholders left for render().
std::string builtin_template(int status) {
    const PageText* p = find_page(status);
    const std::string_view en = p ? p->title_en : std::string_view("{{reason}}");
    const std::string_view ko = p ? p->title_ko : std::string_view("오류");
    std::string out = head("{{status}} " + std::string(en) + " · HopGate");
    out += "<p class=\"code\">{{status}}</p>\n<h1>";
    out += en;
    out += "<span class=\"ko\" lang=\"ko\">";
    out += ko;
    out += "</span></h1>\n<div class=\"msg\">\n";
    if (p) {
        out += "<p>" + std::string(p->msg_en) + "</p>\n";
        out += "<p lang=\"ko\">" + std::string(p->msg_ko) + "</p>\n";
    } else {
        out += "<p>The request could not be completed.</p>\n";
        out += "<p lang=\"ko\">요청을 처리하지 못했습니다.</p>\n";
    }
    out += "</div>\n";
    if (p && !p->hint_en.empty()) {
        out += "<div class=\"hint\">\n<p>" + std::string(p->hint_en) + "</p>\n";
        out += "<p lang=\"ko\">" + std::string(p->hint_ko) + "</p>\n</div>\n";
    }
    out +=
        "<dl>\n<dt>Host</dt><dd>{{host}}</dd>\n<dt>Request ID</dt><dd>{{request_id}}</dd>\n"
        "</dl>\n<footer>HopGate</footer>\n</main>\n</body>\n</html>\n";
    return out;
}

// One pass over `tpl`: known placeholders are replaced by escaped values, anything else copied.
std::string substitute(std::string_view tpl, int status, const RenderContext& ctx) {
    const std::string code = std::to_string(status);
    const std::string host = ctx.host.empty() ? std::string("-") : html_escape(ctx.host);
    const std::string rid = ctx.request_id.empty() ? std::string("-") : html_escape(ctx.request_id);
    const std::string reason = html_escape(status_reason(status));
    std::string out;
    out.reserve(tpl.size() + 256);
    std::size_t i = 0;
    while (i < tpl.size()) {
        const std::size_t open = tpl.find("{{", i);
        if (open == std::string_view::npos) {
            out += tpl.substr(i);
            break;
        }
        out += tpl.substr(i, open - i);
        const std::size_t close = tpl.find("}}", open + 2);
        if (close == std::string_view::npos) {
            out += tpl.substr(open);
            break;
        }
        const std::string_view key = tpl.substr(open + 2, close - open - 2);
        if (key == "status") {
            out += code;
        } else if (key == "host") {
            out += host;
        } else if (key == "request_id") {
            out += rid;
        } else if (key == "reason") {
            out += reason;
        } else {
            out += tpl.substr(open, close + 2 - open);
        }
        i = close + 2;
    }
    return out;
}

std::string_view content_type_for(std::string_view path) {
    const std::size_t dot = path.rfind('.');
    const std::string_view ext = dot == std::string_view::npos ? "" : path.substr(dot + 1);
    struct Entry {
        std::string_view ext, type;
    };
    static constexpr Entry kTypes[] = {
        {"css", "text/css; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"js", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"html", "text/html; charset=utf-8"},
        {"txt", "text/plain; charset=utf-8"},
    };
    for (const auto& e : kTypes) {
        if (e.ext == ext) {
            return e.type;
        }
    }
    return "application/octet-stream";
}

std::string read_limited(const fs::path& p, std::size_t max_bytes, std::string_view what) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    if (ec) {
        throw std::runtime_error(std::string(what) + " " + p.string() + ": " + ec.message());
    }
    if (size > max_bytes) {
        throw std::runtime_error(std::string(what) + " " + p.string() + " is larger than " +
                                 std::to_string(max_bytes) + " bytes");
    }
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        throw std::runtime_error(std::string(what) + " " + p.string() + ": cannot open");
    }
    std::string body(static_cast<std::size_t>(size), '\0');
    in.read(body.data(), static_cast<std::streamsize>(body.size()));
    if (static_cast<std::size_t>(in.gcount()) != body.size()) {
        throw std::runtime_error(std::string(what) + " " + p.string() + ": short read");
    }
    return body;
}

void require_dir(const std::string& dir, std::string_view env) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        throw std::runtime_error(std::string(env) + "=" + dir + " is not a directory");
    }
}

}  // namespace

std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string_view status_reason(int status) {
    switch (status) {
        case 400:
            return "Bad Request";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 413:
            return "Content Too Large";
        case 421:
            return "Misdirected Request";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 525:
            return "SSL Handshake Failed";
        default:
            return "Error";
    }
}

bool is_safe_asset_path(std::string_view path) {
    if (path.empty() || path.size() > 255 || path.front() == '/' || path.back() == '/' ||
        path.find("..") != std::string_view::npos || path.find("//") != std::string_view::npos) {
        return false;
    }
    for (char c : path) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
        if (!ok) {
            return false;
        }
    }
    // "." segments are harmless for a map lookup but never name a real asset.
    return !(path == "." || path.starts_with("./") || path.ends_with("/.") ||
             path.find("/./") != std::string_view::npos);
}

ErrorPages::ErrorPages() = default;

ErrorPages::ErrorPages(const ErrorPagesOptions& options) {
    if (!options.pages_dir.empty()) {
        require_dir(options.pages_dir, "HOP_ERROR_PAGES_DIR");
        for (int status : kBuiltinStatuses) {
            const fs::path p = fs::path(options.pages_dir) / (std::to_string(status) + ".html");
            std::error_code ec;
            if (fs::is_regular_file(p, ec)) {
                overrides_[status] = read_limited(p, options.max_page_bytes, "error page");
            }
        }
    }
    if (!options.assets_dir.empty()) {
        require_dir(options.assets_dir, "HOP_ERROR_ASSETS_DIR");
        const fs::path root(options.assets_dir);
        std::size_t total = 0;
        std::error_code ec;
        // Directory symlinks are not followed: the tree under the directory is what is served.
        for (auto it = fs::recursive_directory_iterator(root, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (!it->is_regular_file(ec)) {
                continue;
            }
            const std::string rel = fs::relative(it->path(), root, ec).generic_string();
            if (ec || !is_safe_asset_path(rel)) {
                ec.clear();
                continue;
            }
            if (assets_.size() >= options.max_asset_files) {
                throw std::runtime_error("HOP_ERROR_ASSETS_DIR=" + options.assets_dir +
                                         " has more than " +
                                         std::to_string(options.max_asset_files) + " files");
            }
            std::string body = read_limited(it->path(), options.max_asset_bytes, "error asset");
            total += body.size();
            if (total > options.max_assets_total_bytes) {
                throw std::runtime_error("HOP_ERROR_ASSETS_DIR=" + options.assets_dir +
                                         " holds more than " +
                                         std::to_string(options.max_assets_total_bytes) + " bytes");
            }
            assets_.emplace(rel, StoredAsset{std::string(content_type_for(rel)), std::move(body)});
        }
        if (ec) {
            throw std::runtime_error("HOP_ERROR_ASSETS_DIR=" + options.assets_dir + ": " +
                                     ec.message());
        }
    }
}

std::string ErrorPages::render(int status, const RenderContext& ctx) const {
    if (auto it = overrides_.find(status); it != overrides_.end()) {
        return substitute(it->second, status, ctx);
    }
    return substitute(builtin_template(status), status, ctx);
}

std::optional<Asset> ErrorPages::asset(std::string_view path) const {
    if (const std::size_t q = path.find('?'); q != std::string_view::npos) {
        path = path.substr(0, q);
    }
    if (path.starts_with(kAssetPrefix)) {
        path.remove_prefix(kAssetPrefix.size());
    }
    if (!is_safe_asset_path(path)) {
        return std::nullopt;
    }
    if (auto it = assets_.find(path); it != assets_.end()) {
        return Asset{it->second.content_type, it->second.body};
    }
    if (path == "errors.css") {
        return Asset{"text/css; charset=utf-8", kCss};
    }
    if (path == "logo.svg") {
        return Asset{"image/svg+xml", kLogo};
    }
    return std::nullopt;
}

std::string render_status_page(const StatusPageInfo& info) {
    const std::string domain = html_escape(info.domain);
    std::string out = head(domain.empty() ? std::string("HopGate") : "HopGate · " + domain);
    out += "<p class=\"code\" style=\"color:var(--accent);font-size:40px\">Running</p>\n";
    out +=
        "<h1>HopGate is running<span class=\"ko\" lang=\"ko\">HopGate 가 동작 "
        "중입니다</span></h1>\n";
    out += "<div class=\"msg\">\n<p>This is the control domain of a HopGate tunnel gateway.</p>\n";
    out += "<p lang=\"ko\">HopGate 터널 게이트웨이의 관리 도메인입니다.</p>\n</div>\n";
    out += "<dl>\n";
    if (!domain.empty()) {
        out += "<dt>Domain</dt><dd>" + domain + "</dd>\n";
    }
    out += "<dt>Version</dt><dd>" + html_escape(info.version) + "</dd>\n";
    out += "<dt>Tunnels</dt><dd>" + std::to_string(info.tunnels) + "</dd>\n";
    out += "</dl>\n<footer>HopGate</footer>\n</main>\n</body>\n</html>\n";
    return out;
}

}  // namespace hopgate::http
