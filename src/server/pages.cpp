#include "server/pages.hpp"

#include "core/version.hpp"
#include "http/error_pages.hpp"

namespace hopgate::server {

namespace http = boost::beast::http;

struct Pages::Impl {
    hopgate::http::ErrorPages pages;
    std::string control_domain;
};

Pages::Pages(const std::string& pages_dir, const std::string& assets_dir,
             const std::string& control_domain)
    : impl_(std::make_unique<Impl>(Impl{
          hopgate::http::ErrorPages(hopgate::http::ErrorPagesOptions{pages_dir, assets_dir}),
          control_domain})) {}
Pages::~Pages() = default;

ControlResponse Pages::error(int status, const std::string& host, const std::string& rid) const {
    ControlResponse res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "text/html; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    res.body() = impl_->pages.render(status, {host, rid});
    return res;
}

ControlResponse Pages::status(std::size_t tunnels, std::size_t /*domains*/) const {
    ControlResponse res{http::status::ok, 11};
    res.set(http::field::content_type, "text/html; charset=utf-8");
    res.body() = hopgate::http::render_status_page({core::version(), tunnels, impl_->control_domain});
    return res;
}

ControlResponse Pages::asset(const std::string& path) const {
    auto a = impl_->pages.asset(path);
    if (!a) {
        return error(404, impl_->control_domain, "");
    }
    ControlResponse res{http::status::ok, 11};
    res.set(http::field::content_type, std::string(a->content_type));
    res.set(http::field::cache_control, "public, max-age=3600");
    res.body() = std::string(a->body);
    return res;
}

}  // namespace hopgate::server
