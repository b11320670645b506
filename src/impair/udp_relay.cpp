#include "impair/udp_relay.hpp"

#include <algorithm>
#include <boost/asio/socket_base.hpp>
#include <chrono>
#include <functional>

#include "impair/address.hpp"

namespace hopgate::impair {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t kRxBufferBytes = 65536;
// Datagrams drained per readiness event, so one busy socket cannot starve the others.
constexpr int kReceiveBatch = 64;
// The down lane's generator is seeded apart from the up lane's so the two are independent.
constexpr std::uint64_t kDownSeedSalt = 0xd1b54a32d192ed03ULL;

asio::steady_timer::time_point to_steady(core::Instant t) {
    return asio::steady_timer::time_point(
        std::chrono::duration_cast<asio::steady_timer::duration>(t.time_since_epoch()));
}

bool is_transient(const error_code& ec) {
    // ICMP errors from an earlier send surface on the next receive on Linux; they say nothing
    // about this socket's future, so the relay keeps going (a network would too).
    return ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
           ec == asio::error::network_unreachable || ec == asio::error::message_size;
}

template <class Socket>
void size_buffers(Socket& s, std::size_t bytes) {
    if (bytes == 0) {
        return;
    }
    error_code ignored;  // the kernel caps the sizes; best effort
    s.set_option(asio::socket_base::receive_buffer_size(static_cast<int>(bytes)), ignored);
    s.set_option(asio::socket_base::send_buffer_size(static_cast<int>(bytes)), ignored);
}

}  // namespace

std::size_t UdpRelay::EndpointHash::operator()(const udp::endpoint& ep) const {
    std::size_t h = std::hash<unsigned short>{}(ep.port());
    if (ep.address().is_v4()) {
        h ^= std::hash<std::uint32_t>{}(ep.address().to_v4().to_uint()) * 0x9e3779b97f4a7c15ULL;
    } else {
        for (auto b : ep.address().to_v6().to_bytes()) {
            h = h * 131 + b;
        }
    }
    return h;
}

UdpRelay::UdpRelay(asio::io_context& io, const Options& options, core::Logger log)
    : io_(io),
      options_(options),
      log_(std::move(log)),
      listen_(io),
      lanes_{{Lane(io, options.up, options.seed),
              Lane(io, options.down, options.seed ^ kDownSeedSalt)}},
      rx_(kRxBufferBytes),
      sweep_timer_(io) {
    target_ = udp::endpoint(resolve_host(io, options.target.host), options.target.port);
    const udp::endpoint listen_ep(resolve_host(io, options.listen.host), options.listen.port);
    listen_.open(listen_ep.protocol());
    listen_.bind(listen_ep);
    listen_.non_blocking(true);
    size_buffers(listen_, options.socket_buffer_bytes);
    mappings_.reserve(std::min<std::size_t>(options.max_mappings, 4096));
    wait_listen();
    schedule_sweep();
    log_.info("udp relay listening", {{"listen", format_endpoint(listen_.local_endpoint())},
                                      {"target", format_endpoint(target_)},
                                      {"seed", options.seed}});
}

UdpRelay::~UdpRelay() { stop(); }

void UdpRelay::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    error_code ignored;
    listen_.close(ignored);
    sweep_timer_.cancel();
    for (auto& l : lanes_) {
        l.timer.cancel();
        l.queue.clear();
        l.inflight_bytes = 0;
    }
    for (auto& [ep, m] : mappings_) {
        close_mapping(*m);
    }
    mappings_.clear();
}

// ---- receiving -----------------------------------------------------------------------------

void UdpRelay::wait_listen() {
    listen_.async_wait(udp::socket::wait_read, [this](const error_code& ec) {
        if (ec || stopped_) {
            return;  // aborted by stop()
        }
        on_listen_readable();
        wait_listen();
    });
}

void UdpRelay::on_listen_readable() {
    const core::Instant now = core::steady_now();
    for (int i = 0; i < kReceiveBatch; ++i) {
        udp::endpoint from;
        error_code ec;
        const std::size_t n = listen_.receive_from(asio::buffer(rx_), from, 0, ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            return;
        }
        if (ec) {
            if (!is_transient(ec)) {
                log_.warn("listen receive failed", {{"error", ec.message()}});
                return;
            }
            continue;
        }
        auto& st = lane(Direction::kUp).stats;
        ++st.rx_datagrams;
        st.rx_bytes += n;
        auto m = find_or_create(from, now);
        if (!m) {
            ++st.dropped_send;  // the upstream socket could not be opened (logged)
            continue;
        }
        offer(Direction::kUp, std::span<const std::byte>(rx_.data(), n), m, now);
    }
}

void UdpRelay::wait_upstream(const std::shared_ptr<Mapping>& m) {
    const std::uint64_t gen = m->generation;
    m->upstream->async_wait(udp::socket::wait_read, [this, m, gen](const error_code& ec) {
        // After a rebind or expiry the old socket's wait completes (aborted); ignore it.
        if (ec || stopped_ || m->closed || m->generation != gen) {
            return;
        }
        on_upstream_readable(m);
        if (!m->closed && m->generation == gen) {
            wait_upstream(m);
        }
    });
}

void UdpRelay::on_upstream_readable(const std::shared_ptr<Mapping>& m) {
    const core::Instant now = core::steady_now();
    for (int i = 0; i < kReceiveBatch; ++i) {
        error_code ec;
        const std::size_t n = m->upstream->receive(asio::buffer(rx_), 0, ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            return;
        }
        if (ec) {
            ++upstream_errors_;
            if (!is_transient(ec)) {
                log_.warn("upstream receive failed", {{"error", ec.message()}});
                return;
            }
            continue;
        }
        auto& st = lane(Direction::kDown).stats;
        ++st.rx_datagrams;
        st.rx_bytes += n;
        m->last_active = now;
        offer(Direction::kDown, std::span<const std::byte>(rx_.data(), n), m, now);
    }
}

// ---- mappings ------------------------------------------------------------------------------

std::shared_ptr<UdpRelay::Mapping> UdpRelay::find_or_create(const udp::endpoint& client,
                                                            core::Instant now) {
    if (auto it = mappings_.find(client); it != mappings_.end()) {
        it->second->last_active = now;
        return it->second;
    }
    if (mappings_.size() >= options_.max_mappings) {
        // Evict the least recently used mapping: O(n), but only when a new client arrives at a
        // full table.
        auto lru = std::min_element(mappings_.begin(), mappings_.end(), [](auto& a, auto& b) {
            return a.second->last_active < b.second->last_active;
        });
        close_mapping(*lru->second);
        mappings_.erase(lru);
        ++mappings_evicted_;
    }
    auto m = std::make_shared<Mapping>();
    m->client = client;
    m->last_active = now;
    try {
        open_upstream(*m);
    } catch (const boost::system::system_error& e) {
        log_.warn("cannot open upstream socket", {{"error", e.what()}});
        return nullptr;
    }
    mappings_.emplace(client, m);
    ++mappings_created_;
    wait_upstream(m);
    log_.debug("mapping created", {{"client", format_endpoint(client)},
                                   {"source", format_endpoint(m->upstream->local_endpoint())}});
    return m;
}

void UdpRelay::open_upstream(Mapping& m) {
    // The new socket is connected (so the kernel filters foreign senders and picks a source port)
    // before the old one closes, which guarantees the target sees a different port.
    udp::socket s(io_);
    s.open(target_.protocol());
    s.connect(target_);
    s.non_blocking(true);
    size_buffers(s, options_.socket_buffer_bytes);
    ++m.generation;
    m.upstream.emplace(std::move(s));
}

void UdpRelay::close_mapping(Mapping& m) {
    m.closed = true;
    if (m.upstream) {
        error_code ignored;
        m.upstream->close(ignored);
    }
}

long UdpRelay::rebind() {
    long n = 0;
    for (auto& [ep, m] : mappings_) {
        try {
            std::optional<udp::socket> old = std::move(m->upstream);
            open_upstream(*m);
            if (old) {
                error_code ignored;
                old->close(ignored);
            }
            wait_upstream(m);
            ++n;
        } catch (const boost::system::system_error& e) {
            log_.warn("rebind failed for a mapping", {{"error", e.what()}});
        }
    }
    ++rebinds_;
    log_.info("rebound", {{"mappings", n}});
    return n;
}

void UdpRelay::schedule_sweep() {
    const auto interval = std::clamp<core::Duration>(
        options_.mapping_idle / 4, std::chrono::milliseconds(100), std::chrono::seconds(5));
    sweep_timer_.expires_after(interval);
    sweep_timer_.async_wait([this](const error_code& ec) {
        if (ec || stopped_) {
            return;
        }
        sweep(core::steady_now());
        schedule_sweep();
    });
}

void UdpRelay::sweep(core::Instant now) {
    for (auto it = mappings_.begin(); it != mappings_.end();) {
        if (now - it->second->last_active > options_.mapping_idle) {
            close_mapping(*it->second);
            it = mappings_.erase(it);
            ++mappings_expired_;
        } else {
            ++it;
        }
    }
}

// ---- impairment and delivery ---------------------------------------------------------------

void UdpRelay::offer(Direction d, std::span<const std::byte> data,
                     const std::shared_ptr<Mapping>& m, core::Instant now) {
    Lane& l = lane(d);
    const Admission a = l.model.admit(data.size(), now);
    switch (a.fate) {
        case Fate::kDropCut:
            ++l.stats.dropped_cut;
            return;
        case Fate::kDropQueue:
            ++l.stats.dropped_queue;
            return;
        case Fate::kDropLoss:
            ++l.stats.dropped_loss;
            return;
        case Fate::kDeliver:
            break;
    }
    if (a.copies == 2) {
        ++l.stats.duplicated;
    }
    for (int c = 0; c < a.copies; ++c) {
        const core::Instant release = a.release[static_cast<std::size_t>(c)];
        if (release <= now && l.queue.empty()) {
            send(d, data, *m);  // nothing to wait for and nothing to overtake: no copy
            continue;
        }
        if (l.inflight_bytes + data.size() > options_.inflight_bytes) {
            ++l.stats.dropped_overflow;
            continue;
        }
        l.inflight_bytes += data.size();
        l.queue.push(release, Packet{pool_.copy_of(data), m});
    }
    arm(d);
}

void UdpRelay::send(Direction d, std::span<const std::byte> data, Mapping& m) {
    Lane& l = lane(d);
    error_code ec;
    if (d == Direction::kUp) {
        if (m.closed || !m.upstream) {
            ++l.stats.dropped_send;
            return;
        }
        m.upstream->send(asio::buffer(data.data(), data.size()), 0, ec);
    } else {
        listen_.send_to(asio::buffer(data.data(), data.size()), m.client, 0, ec);
    }
    if (ec) {
        // would_block: the socket buffer is full, which on a real path is a drop too.
        ++l.stats.dropped_send;
        if (ec != asio::error::would_block && ec != asio::error::try_again && !is_transient(ec)) {
            log_.debug("send failed", {{"direction", to_string(d)}, {"error", ec.message()}});
        }
        return;
    }
    ++l.stats.tx_datagrams;
    l.stats.tx_bytes += data.size();
}

void UdpRelay::release_due(Direction d) {
    Lane& l = lane(d);
    const core::Instant now = core::steady_now();
    while (!l.queue.empty() && l.queue.next_release() <= now) {
        Packet p = l.queue.pop();
        l.inflight_bytes -= p.buf.size();
        if (cut_) {
            ++l.stats.dropped_cut;  // a cut link loses what is in flight too
            continue;
        }
        send(d, p.buf.bytes(), *p.mapping);
    }  // `p` returns its buffer to the pool here
}

void UdpRelay::arm(Direction d) {
    Lane& l = lane(d);
    const core::Instant next = l.queue.next_release();
    if (stopped_ || next >= l.armed) {
        return;  // empty, or a wait at or before `next` is already pending
    }
    l.armed = next;
    l.timer.expires_at(to_steady(next));  // cancels an earlier-armed later wait, if any
    l.timer.async_wait([this, d](const error_code& ec) {
        if (ec == asio::error::operation_aborted || stopped_) {
            return;
        }
        lane(d).armed = core::kInstantMax;
        release_due(d);
        arm(d);
    });
}

void UdpRelay::set_cut(bool cut) {
    cut_ = cut;
    for (auto& l : lanes_) {
        l.model.set_cut(cut);
    }
    log_.info(cut ? "cut" : "restored");
}

std::string UdpRelay::stats_json() const {
    std::string out = "{\"mode\":\"udp\",\"cut\":";
    out += cut_ ? "true" : "false";
    out += ",\"up\":" + lane(Direction::kUp).stats.to_json();
    out += ",\"down\":" + lane(Direction::kDown).stats.to_json();
    out += ",\"mappings\":" + std::to_string(mappings_.size());
    out += ",\"mappings_created\":" + std::to_string(mappings_created_);
    out += ",\"mappings_expired\":" + std::to_string(mappings_expired_);
    out += ",\"mappings_evicted\":" + std::to_string(mappings_evicted_);
    out += ",\"rebinds\":" + std::to_string(rebinds_);
    out += ",\"upstream_errors\":" + std::to_string(upstream_errors_);
    out += ",\"queued_up\":" + std::to_string(lane(Direction::kUp).queue.size());
    out += ",\"queued_down\":" + std::to_string(lane(Direction::kDown).queue.size());
    out += ",\"pool_allocations\":" + std::to_string(pool_.allocations());
    out += '}';
    return out;
}

}  // namespace hopgate::impair
