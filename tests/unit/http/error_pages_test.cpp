#include "http/error_pages.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

namespace hopgate::http {
namespace {

namespace fs = std::filesystem;

// A scratch directory removed at the end of the test.
class TempDir {
  public:
    TempDir() {
        std::random_device rd;
        path_ = fs::temp_directory_path() / ("hg_http_test_" + std::to_string(rd()));
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    void write(const std::string& rel, const std::string& body) const {
        fs::create_directories((path_ / rel).parent_path());
        std::ofstream(path_ / rel, std::ios::binary) << body;
    }

  private:
    fs::path path_;
};

ErrorPagesOptions pages_opts(const fs::path& dir) {
    ErrorPagesOptions o;
    o.pages_dir = dir.string();
    return o;
}

ErrorPagesOptions assets_opts(const fs::path& dir) {
    ErrorPagesOptions o;
    o.assets_dir = dir.string();
    return o;
}

bool contains(const std::string& s, std::string_view what) {
    return s.find(what) != std::string::npos;
}

// Every built-in status renders a complete bilingual page with its code, host and request id.
TEST(ErrorPages, EveryStatusRenders) {
    const ErrorPages pages;
    for (int status : kBuiltinStatuses) {
        SCOPED_TRACE(status);
        const std::string html = pages.render(status, {"app.example.com", "req-42"});
        EXPECT_TRUE(html.starts_with("<!DOCTYPE html>"));
        EXPECT_TRUE(contains(html, "</html>"));
        EXPECT_TRUE(contains(html, "<p class=\"code\">" + std::to_string(status) + "</p>"));
        if (status !=
            525) {  // 525's page says "TLS/DTLS Handshake Failed", not the status-line reason
            EXPECT_TRUE(contains(html, "<title>" + std::to_string(status) + " " +
                                           std::string(status_reason(status))));
        }
        EXPECT_TRUE(contains(html, "<h1>"));
        EXPECT_TRUE(contains(html, "lang=\"ko\""));
        EXPECT_TRUE(contains(html, "req-42"));
        EXPECT_TRUE(contains(html, "<style>"));
        EXPECT_FALSE(contains(html, "<script"));
        EXPECT_FALSE(contains(html, "{{"));
        EXPECT_FALSE(pages.is_overridden(status));
    }
    EXPECT_TRUE(contains(pages.render(404, {"app.example.com", ""}), "app.example.com"));
}

// A status without a page gets the generic page with its code.
TEST(ErrorPages, UnknownStatusIsGeneric) {
    const std::string html = ErrorPages().render(503, {"h", "r"});
    EXPECT_TRUE(contains(html, ">503<"));
    EXPECT_TRUE(contains(html, "Service Unavailable"));
    EXPECT_FALSE(contains(html, "{{"));
}

// Hostile host names and request ids are HTML-escaped and never re-expanded.
TEST(ErrorPages, EscapesHostileValues) {
    const ErrorPages pages;
    const std::string host = "<script>alert('x')</script>\"&{{request_id}}";
    for (int status : kBuiltinStatuses) {
        const std::string html = pages.render(status, {host, "<img src=x onerror=1>"});
        EXPECT_FALSE(contains(html, "<script>"));
        EXPECT_FALSE(contains(html, "<img"));
        EXPECT_TRUE(contains(html,
                             "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
                             "{{request_id}}"));
        EXPECT_TRUE(contains(html, "&lt;img src=x onerror=1&gt;"));
    }
    EXPECT_EQ(html_escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
}

// Empty context values show as "-".
TEST(ErrorPages, EmptyContext) {
    const std::string html = ErrorPages().render(500, {});
    EXPECT_TRUE(contains(html, "<dd>-</dd>"));
}

// pages_dir/<status>.html replaces that page (with placeholders and escaping); others stay built
// in.
TEST(ErrorPages, OverrideDir) {
    TempDir dir;
    dir.write("404.html",
              "<p>custom {{status}} {{reason}} for {{host}} id={{request_id}} {{other}}</p>");
    dir.write("999.html", "ignored");
    const ErrorPages pages(pages_opts(dir.path()));
    EXPECT_TRUE(pages.is_overridden(404));
    EXPECT_FALSE(pages.is_overridden(502));
    EXPECT_EQ(pages.render(404, {"a<b", "r1"}),
              "<p>custom 404 Not Found for a&lt;b id=r1 {{other}}</p>");
    EXPECT_TRUE(contains(pages.render(502, {"a", "r"}), "Bad Gateway"));
}

// Override files are loaded once: later changes on disk do not affect a running instance.
TEST(ErrorPages, OverrideLoadedOnce) {
    TempDir dir;
    dir.write("500.html", "v1");
    const ErrorPages pages(pages_opts(dir.path()));
    dir.write("500.html", "v2");
    EXPECT_EQ(pages.render(500, {}), "v1");
}

// Start-up errors: a missing directory and an oversized page throw.
TEST(ErrorPages, OverrideErrorsThrow) {
    EXPECT_THROW(ErrorPages(pages_opts("/nonexistent/hopgate/pages")), std::runtime_error);
    EXPECT_THROW(ErrorPages(assets_opts("/nonexistent/hopgate/assets")), std::runtime_error);
    TempDir dir;
    dir.write("400.html", std::string(2000, 'x'));
    auto o = pages_opts(dir.path());
    o.max_page_bytes = 1000;
    EXPECT_THROW(ErrorPages{o}, std::runtime_error);
}

// Built-in assets are served by full URL path or relative path, query ignored.
TEST(ErrorPages, BuiltinAssets) {
    const ErrorPages pages;
    auto css = pages.asset("/__hopgate_assets__/errors.css?v=3");
    ASSERT_TRUE(css);
    EXPECT_EQ(css->content_type, "text/css; charset=utf-8");
    EXPECT_TRUE(contains(std::string(css->body), "body{"));
    auto logo = pages.asset("logo.svg");
    ASSERT_TRUE(logo);
    EXPECT_EQ(logo->content_type, "image/svg+xml");
    EXPECT_FALSE(pages.asset("missing.css"));
}

// Traversal and odd characters are rejected before any lookup.
TEST(ErrorPages, AssetTraversalRejected) {
    const std::string_view bad[] = {"",
                                    "/",
                                    "../etc/passwd",
                                    "/__hopgate_assets__/../secret",
                                    "a/../../b",
                                    "..",
                                    "/etc/passwd",
                                    "//etc/passwd",
                                    "a//b",
                                    "a/",
                                    ".",
                                    "./errors.css",
                                    "a/./b",
                                    "a\\b",
                                    "%2e%2e/x",
                                    std::string_view("errors.css\0x", 12),
                                    "a b.css",
                                    "a:b",
                                    "é.css",
                                    "..%2fx"};
    for (std::string_view p : bad) {
        SCOPED_TRACE(testing::PrintToString(std::string(p)));
        EXPECT_FALSE(is_safe_asset_path(p));
    }
    for (std::string_view p : {"errors.css", "img/logo-2.svg", "fonts/a_b.woff2", "a.b.c"}) {
        EXPECT_TRUE(is_safe_asset_path(p)) << p;
    }
    const ErrorPages pages;
    EXPECT_FALSE(pages.asset("/__hopgate_assets__/../errors.css"));
    EXPECT_FALSE(pages.asset("/__hopgate_assets__//errors.css"));
}

// assets_dir files win over built-ins, nested paths work, unsafe names and escapes are not served.
TEST(ErrorPages, AssetsDir) {
    TempDir outside;
    outside.write("secret.txt", "secret");
    TempDir dir;
    dir.write("errors.css", "body{color:red}");
    dir.write("img/brand.png", "PNG");
    dir.write("bad name.css", "x");
    fs::create_directory_symlink(outside.path(), dir.path() / "link");
    const ErrorPages pages(assets_opts(dir.path()));
    auto css = pages.asset("/__hopgate_assets__/errors.css");
    ASSERT_TRUE(css);
    EXPECT_EQ(css->body, "body{color:red}");
    auto png = pages.asset("img/brand.png");
    ASSERT_TRUE(png);
    EXPECT_EQ(png->content_type, "image/png");
    EXPECT_TRUE(pages.asset("logo.svg"));  // built-in still there
    EXPECT_FALSE(pages.asset("bad name.css"));
    EXPECT_FALSE(pages.asset("link/secret.txt"));
    EXPECT_FALSE(pages.asset("../" + outside.path().filename().string() + "/secret.txt"));
}

// Asset limits are enforced at start-up.
TEST(ErrorPages, AssetLimits) {
    TempDir dir;
    dir.write("a.css", std::string(100, 'a'));
    dir.write("b.css", std::string(100, 'b'));
    auto o = assets_opts(dir.path());
    o.max_asset_bytes = 50;
    EXPECT_THROW(ErrorPages{o}, std::runtime_error);
    o = assets_opts(dir.path());
    o.max_assets_total_bytes = 150;
    EXPECT_THROW(ErrorPages{o}, std::runtime_error);
    o = assets_opts(dir.path());
    o.max_asset_files = 1;
    EXPECT_THROW(ErrorPages{o}, std::runtime_error);
    EXPECT_NO_THROW(ErrorPages(assets_opts(dir.path())));
}

// The status page shows version, tunnel count and the escaped domain.
TEST(ErrorPages, StatusPage) {
    const std::string html = render_status_page({"0.1.0", 3, "hop.<example>.com"});
    EXPECT_TRUE(contains(html, "<dd>0.1.0</dd>"));
    EXPECT_TRUE(contains(html, "<dd>3</dd>"));
    EXPECT_TRUE(contains(html, "hop.&lt;example&gt;.com"));
    EXPECT_FALSE(contains(html, "<example>"));
    EXPECT_TRUE(contains(html, "lang=\"ko\""));
}

}  // namespace
}  // namespace hopgate::http
