#include "server/tunnel_pool.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>

namespace hopgate::server {

void TunnelPool::add(const std::string& domain, const std::shared_ptr<net::Tunnel>& t) {
    auto& list = by_domain_[domain];
    prune(list);
    list.push_back(t);
    since_[t.get()] = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
}

void TunnelPool::remove(const net::Tunnel* t) {
    since_.erase(t);
    for (auto it = by_domain_.begin(); it != by_domain_.end();) {
        auto& list = it->second;
        list.erase(std::remove_if(list.begin(), list.end(),
                                  [t](const std::weak_ptr<net::Tunnel>& w) {
                                      auto s = w.lock();
                                      return !s || s.get() == t;
                                  }),
                   list.end());
        // An emptied domain stays known (502 "no client connected" rather than 404) until it
        // is unregistered; entries exist only for domains that authenticated a tunnel.
        ++it;
    }
}

void TunnelPool::prune(std::vector<std::weak_ptr<net::Tunnel>>& list) {
    list.erase(std::remove_if(list.begin(), list.end(),
                              [](const std::weak_ptr<net::Tunnel>& w) {
                                  auto s = w.lock();
                                  return !s || s->closed() || !s->has_conn() ||
                                         s->conn().is_closing();
                              }),
               list.end());
}

std::shared_ptr<net::Tunnel> TunnelPool::pick(const std::string& domain) {
    auto it = by_domain_.find(domain);
    if (it == by_domain_.end()) {
        return nullptr;
    }
    prune(it->second);
    std::shared_ptr<net::Tunnel> best;
    for (auto& w : it->second) {
        auto t = w.lock();
        if (t && (!best || t->conn().open_streams() < best->conn().open_streams())) {
            best = t;
        }
    }
    return best;
}

bool TunnelPool::known(const std::string& domain) const { return by_domain_.count(domain) > 0; }

void TunnelPool::disconnect_domain(std::string_view domain, bool unregistered) {
    boost::asio::post(io_, [this, d = std::string(domain), unregistered] {
        auto it = by_domain_.find(d);
        if (it == by_domain_.end()) {
            return;
        }
        auto list = std::move(it->second);
        if (unregistered) {
            by_domain_.erase(it);
        } else {
            it->second.clear();  // still registered: visitors get 502 until a client reconnects
        }
        for (auto& w : list) {
            if (auto t = w.lock()) {
                if (t->has_conn() && !t->conn().is_closing()) {
                    t->conn().close(proto::WireError::kAuthFailed,
                                    "domain unregistered or key rotated");
                    t->flush();
                }
            }
        }
    });
}

void TunnelPool::close_all() {
    auto all = std::move(by_domain_);
    by_domain_.clear();
    for (auto& [d, list] : all) {
        for (auto& w : list) {
            if (auto t = w.lock()) {
                t->abort();
            }
        }
    }
}

std::optional<std::vector<admin::TunnelDirectory::LiveTunnel>> TunnelPool::live_tunnels(
    std::string_view domain) {
    auto done = std::make_shared<std::promise<std::vector<LiveTunnel>>>();
    auto answer = done->get_future();
    boost::asio::post(io_, [this, done, d = std::string(domain)] {
        std::vector<LiveTunnel> out;
        if (auto it = by_domain_.find(d); it != by_domain_.end()) {
            prune(it->second);
            for (auto& w : it->second) {
                auto t = w.lock();
                if (!t || !t->has_conn()) {
                    continue;
                }
                LiveTunnel lt;
                lt.transport = std::string(net::transport_name(t->kind()));
                lt.peer = t->peer();
                if (auto s = since_.find(t.get()); s != since_.end()) {
                    lt.since_unix_ms = s->second;
                }
                lt.streams_open = t->conn().open_streams();
                lt.rtt_ms = std::chrono::duration<double, std::milli>(
                                t->conn().stats().smoothed_rtt)
                                .count();
                out.push_back(std::move(lt));
            }
        }
        done->set_value(std::move(out));
    });
    if (answer.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
        return std::nullopt;
    }
    try {
        return answer.get();
    } catch (const std::future_error&) {
        return std::nullopt;  // the io_context dropped the handler (shutting down)
    }
}

std::map<std::string, std::size_t, std::less<>> TunnelPool::live_counts() {
    std::map<std::string, std::size_t, std::less<>> out;
    for (auto& [d, list] : by_domain_) {
        prune(list);
        out[d] = list.size();
    }
    return out;
}

std::pair<std::uint64_t, std::uint64_t> TunnelPool::stream_bytes() const {
    std::pair<std::uint64_t, std::uint64_t> out{0, 0};
    for (const auto& [d, list] : by_domain_) {
        for (const auto& w : list) {
            if (auto t = w.lock(); t && t->has_conn()) {
                out.first += t->conn().stats().stream_bytes_sent;
                out.second += t->conn().stats().stream_bytes_received;
            }
        }
    }
    return out;
}

std::size_t TunnelPool::size() const {
    std::size_t n = 0;
    for (const auto& [d, list] : by_domain_) {
        for (const auto& w : list) {
            n += w.expired() ? 0 : 1;
        }
    }
    return n;
}

std::size_t TunnelPool::size(net::TransportKind kind) const {
    std::size_t n = 0;
    for (const auto& [d, list] : by_domain_) {
        for (const auto& w : list) {
            auto t = w.lock();
            n += t && t->kind() == kind ? 1 : 0;
        }
    }
    return n;
}

}  // namespace hopgate::server
