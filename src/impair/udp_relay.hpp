// UDP mode of hopgate-impair: one listening socket facing clients, one connected upstream socket
// per client address (a NAT mapping) facing the target, and per direction one LinkModel, one
// DelayQueue and one steady_timer armed at the queue's earliest release time.
//
// Threads: everything runs on one io_context thread (the implicit strand); no locks.
// Sockets are non-blocking; readiness comes from async_wait, datagrams are then drained with
// non-blocking receives into one shared receive buffer and copied into pooled buffers only if
// they must wait in a delay queue, so the hot path allocates nothing once warm.
// Bounds: at most `max_mappings` mappings (LRU eviction), `inflight_bytes` per direction queued;
// beyond that datagrams are dropped and counted (this is a network: dropping is its job).
// Errors: the constructor throws (bind failure) at start-up; run-time socket errors are counted
// and logged, never fatal.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/log.hpp"
#include "impair/buffer_pool.hpp"
#include "impair/delay_queue.hpp"
#include "impair/link_model.hpp"
#include "impair/options.hpp"
#include "impair/relay.hpp"

namespace hopgate::impair {

class UdpRelay final : public Relay {
  public:
    // Binds the listening socket and starts receiving. Throws on bind failure.
    UdpRelay(boost::asio::io_context& io, const Options& options, core::Logger log);
    ~UdpRelay() override;

    boost::asio::ip::udp::endpoint local_endpoint() const { return listen_.local_endpoint(); }
    std::size_t mapping_count() const { return mappings_.size(); }

    std::string_view mode() const override { return "udp"; }
    void set_cut(bool cut) override;
    bool cut() const override { return cut_; }
    long rebind() override;
    LinkParams params(Direction d) const override { return lane(d).model.params(); }
    void set_params(Direction d, const LinkParams& p) override { lane(d).model.set_params(p); }
    bool supports(std::string_view) const override { return true; }
    std::string stats_json() const override;
    void stop() override;

  private:
    using udp = boost::asio::ip::udp;

    struct Mapping {
        udp::endpoint client;
        std::optional<udp::socket> upstream;  // replaced on rebind
        std::uint64_t generation = 0;         // bumps on rebind; stale waits see a mismatch
        core::Instant last_active{};
        bool closed = false;
    };
    struct Packet {
        PooledBuffer buf;
        std::shared_ptr<Mapping> mapping;  // up: its upstream socket; down: its client address
    };
    struct Lane {
        Lane(boost::asio::io_context& io, const LinkParams& p, std::uint64_t seed)
            : model(p, seed), timer(io) {}
        LinkModel model;
        DelayQueue<Packet> queue;
        boost::asio::steady_timer timer;
        core::Instant armed = core::kInstantMax;  // expiry of the pending wait, if any
        std::size_t inflight_bytes = 0;
        DirectionStats stats;
    };
    struct EndpointHash {
        std::size_t operator()(const udp::endpoint& ep) const;
    };

    Lane& lane(Direction d) { return lanes_[static_cast<std::size_t>(d)]; }
    const Lane& lane(Direction d) const { return lanes_[static_cast<std::size_t>(d)]; }

    void wait_listen();
    void on_listen_readable();
    void wait_upstream(const std::shared_ptr<Mapping>& m);
    void on_upstream_readable(const std::shared_ptr<Mapping>& m);
    std::shared_ptr<Mapping> find_or_create(const udp::endpoint& client, core::Instant now);
    void open_upstream(Mapping& m);  // throws boost::system::system_error
    void close_mapping(Mapping& m);

    // Runs `data` through the lane's model: sends now, queues, or drops.
    void offer(Direction d, std::span<const std::byte> data, const std::shared_ptr<Mapping>& m,
               core::Instant now);
    void send(Direction d, std::span<const std::byte> data, Mapping& m);
    void release_due(Direction d);
    void arm(Direction d);
    void schedule_sweep();
    void sweep(core::Instant now);

    boost::asio::io_context& io_;
    Options options_;
    core::Logger log_;
    udp::endpoint target_;
    udp::socket listen_;
    BufferPool pool_;  // before lanes_: queued packets return their buffers to it
    std::array<Lane, 2> lanes_;
    std::vector<std::byte> rx_;  // shared receive buffer, 64 KiB
    std::unordered_map<udp::endpoint, std::shared_ptr<Mapping>, EndpointHash> mappings_;
    boost::asio::steady_timer sweep_timer_;
    bool cut_ = false;
    bool stopped_ = false;
    std::uint64_t mappings_created_ = 0;
    std::uint64_t mappings_expired_ = 0;
    std::uint64_t mappings_evicted_ = 0;
    std::uint64_t rebinds_ = 0;
    std::uint64_t upstream_errors_ = 0;
};

}  // namespace hopgate::impair
