// Error pages (400, 404, 431, 500, 501, 502, 504, 525) and the control domain's status page.
//
// The built-in pages are compiled into the binary, bilingual (English/Korean), self-contained
// (inline CSS and logo, no JavaScript, no external requests), so they render even when the
// visitor's browser cannot reach /__hopgate_assets__/ on the proxied host. The same CSS and logo
// are also served as assets for override pages that want to link them.
//
// Overrides (read once at construction, size-limited):
//   pages_dir/<status>.html  replaces the built-in page for that status;
//   assets_dir/...           files served under /__hopgate_assets__/, before the built-in assets.
// Templates may use {{status}}, {{reason}}, {{host}} and {{request_id}}; values are HTML-escaped
// and substituted in one pass (a value containing "{{host}}" is not expanded again).
//
// An ErrorPages is immutable after construction: share one instance across strands freely.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace hopgate::http {

inline constexpr std::string_view kAssetPrefix = "/__hopgate_assets__/";
inline constexpr int kBuiltinStatuses[] = {400, 404, 431, 500, 501, 502, 504, 525};

struct RenderContext {
    std::string_view host;        // as the visitor sent it (escaped on output); may be empty
    std::string_view request_id;  // may be empty
};

struct Asset {
    std::string_view content_type;
    std::string_view body;  // valid while the ErrorPages lives
};

struct ErrorPagesOptions {
    std::string pages_dir;   // HOP_ERROR_PAGES_DIR; empty = built-in pages only
    std::string assets_dir;  // HOP_ERROR_ASSETS_DIR; empty = built-in assets only
    std::size_t max_page_bytes = 256 * 1024;
    std::size_t max_asset_bytes = 1024 * 1024;
    std::size_t max_assets_total_bytes = 16 * 1024 * 1024;
    std::size_t max_asset_files = 256;
};

struct StatusPageInfo {
    std::string_view version;  // e.g. "0.1.0"
    std::size_t tunnels = 0;   // live tunnels
    std::string_view domain;   // the control domain, shown in the title; may be empty
};

// HTML-escapes & < > " ' for text and attribute values.
std::string html_escape(std::string_view s);

// Reason phrase used on the pages and the status line ("Bad Gateway"; 525 is "SSL Handshake
// Failed" as other proxies use it). "Error" for codes HopGate does not name.
std::string_view status_reason(int status);

// True for a relative asset path of [A-Za-z0-9._-/] with no "..", no leading '/', no empty
// segment and no trailing '/'.
bool is_safe_asset_path(std::string_view path);

class ErrorPages {
  public:
    // Built-in pages and assets only.
    ErrorPages();
    // Loads overrides. Start-up errors throw std::runtime_error with one clear line: a configured
    // directory that does not exist, an unreadable or oversized page, too many or too large
    // asset files. A missing <status>.html just keeps the built-in page; asset files whose
    // relative path is not is_safe_asset_path() are skipped.
    explicit ErrorPages(const ErrorPagesOptions& options);

    // The page for `status`, with the context substituted. Statuses without a page get a generic
    // one showing the code and status_reason(). Never fails.
    std::string render(int status, const RenderContext& ctx) const;

    // An asset by URL path: "/__hopgate_assets__/errors.css", or the part after the prefix.
    // A query string ("?v=2") is ignored. nullopt for unsafe paths (traversal, bad characters)
    // and unknown files. Override assets win over built-in ones.
    std::optional<Asset> asset(std::string_view path) const;

    // True if `status` uses a page from pages_dir.
    bool is_overridden(int status) const { return overrides_.count(status) != 0; }

  private:
    struct StoredAsset {
        std::string content_type;
        std::string body;
    };
    std::map<int, std::string> overrides_;
    std::map<std::string, StoredAsset, std::less<>> assets_;  // from assets_dir
};

// The small page at the control domain root: version and live tunnel count, bilingual.
std::string render_status_page(const StatusPageInfo& info);

}  // namespace hopgate::http
