// The live tunnels of every domain. Picks the tunnel with the fewest open streams for a new
// request (several clients may serve one domain) and forgets a tunnel the moment it closes.
// Implements admin::TunnelDirectory: unregistering or rotating a domain drops its tunnels.
//
// Threading: owned by the gateway's io_context thread; disconnect_domain() may be called from
// any thread (the admin API runs on the registry worker pool) and is posted to that thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "admin/api.hpp"
#include "net/tunnel.hpp"

namespace hopgate::server {

class TunnelPool final : public admin::TunnelDirectory {
public:
    explicit TunnelPool(boost::asio::io_context& io) : io_(io) {}

    void add(const std::string& domain, const std::shared_ptr<net::Tunnel>& t);
    void remove(const net::Tunnel* t);
    // The least-loaded live tunnel of `domain`, or null.
    std::shared_ptr<net::Tunnel> pick(const std::string& domain);
    // True if the domain had a tunnel since start-up and was not unregistered since.
    bool known(const std::string& domain) const;
    void disconnect_domain(std::string_view domain, bool unregistered) override;
    // Any thread except the io_context's: asks that thread and waits up to 2 s.
    std::optional<std::vector<LiveTunnel>> live_tunnels(std::string_view domain) override;
    // Live tunnels per known domain (io_context thread).
    std::map<std::string, std::size_t, std::less<>> live_counts();
    // Stream bytes {sent, received} of the live tunnels (io_context thread).
    std::pair<std::uint64_t, std::uint64_t> stream_bytes() const;
    // Closes every tunnel (shutdown).
    void close_all();

    std::size_t size() const;
    std::size_t size(net::TransportKind kind) const;
    std::size_t domains() const { return by_domain_.size(); }  // known domains

private:
    void prune(std::vector<std::weak_ptr<net::Tunnel>>& list);

    boost::asio::io_context& io_;
    std::map<std::string, std::vector<std::weak_ptr<net::Tunnel>>, std::less<>> by_domain_;
    std::map<const net::Tunnel*, std::int64_t> since_;  // authentication time, Unix ms
};

}  // namespace hopgate::server
