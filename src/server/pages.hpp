// Error pages, the control domain's status page and the page assets, as HTTP responses.
#pragma once

#include <memory>
#include <string>

#include "server/front_door.hpp"

namespace hopgate::server {

class Pages {
public:
    // Throws at start-up when a configured override directory is unusable.
    Pages(const std::string& pages_dir, const std::string& assets_dir,
          const std::string& control_domain);
    ~Pages();
    ControlResponse error(int status, const std::string& host, const std::string& request_id) const;
    ControlResponse status(std::size_t tunnels, std::size_t domains) const;
    ControlResponse asset(const std::string& path) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hopgate::server
