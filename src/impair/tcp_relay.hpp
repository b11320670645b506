// TCP mode of hopgate-impair: accept a client, connect to the target, copy bytes both ways
// through a bounded ring buffer per direction, releasing them after `delay` (+ jitter, kept
// monotonic so bytes never reorder) and at `rate_mbit` (one serializer per direction, shared by
// all connections, like one link).
//
// TCP cannot lose, duplicate or reorder bytes; an outage is `cut`: bytes stop being released
// (they stay buffered), so the buffer fills, the relay stops reading, and the sender's TCP sees
// backpressure. `restore` releases what is due.
//
// Bounds: `tcp_buffer_bytes` per connection and direction (a full buffer stops reading from that
// side), `max_connections` (more are accepted and closed at once), a connect deadline.
// Threads: one io_context thread (the implicit strand of every connection); no locks.
// Lifetime: a TcpSession is owned by its pending operations (shared_ptr); the relay keeps
// weak_ptrs to reach them for cut/restore/stop.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "core/log.hpp"
#include "core/random.hpp"
#include "impair/options.hpp"
#include "impair/relay.hpp"

namespace hopgate::impair {

class TcpSession;

class TcpRelay final : public Relay {
  public:
    // Binds and starts accepting. Throws on bind failure.
    TcpRelay(boost::asio::io_context& io, const Options& options, core::Logger log);
    ~TcpRelay() override;

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    std::string_view mode() const override { return "tcp"; }
    void set_cut(bool cut) override;
    bool cut() const override { return cut_; }
    long rebind() override { return -1; }
    LinkParams params(Direction d) const override { return params_[index(d)]; }
    void set_params(Direction d, const LinkParams& p) override;
    bool supports(std::string_view param) const override;
    std::string stats_json() const override;
    void stop() override;

  private:
    friend class TcpSession;
    static std::size_t index(Direction d) { return static_cast<std::size_t>(d); }

    void do_accept();
    void forget(std::uint64_t id) { sessions_.erase(id); }
    // Release time of `bytes` read now in direction `d`, never before `not_before`.
    core::Instant schedule(Direction d, std::size_t bytes, core::Instant now,
                           core::Instant not_before);
    std::size_t read_chunk_limit(Direction d) const;

    Options options_;
    core::Logger log_;
    boost::asio::ip::tcp::endpoint target_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::array<LinkParams, 2> params_;
    std::array<core::Xoshiro256, 2> rng_;
    std::array<core::Instant, 2> link_free_at_{};
    std::array<DirectionStats, 2> stats_;
    std::unordered_map<std::uint64_t, std::weak_ptr<TcpSession>> sessions_;
    std::uint64_t next_id_ = 1;
    bool cut_ = false;
    bool stopped_ = false;
    std::uint64_t accepted_ = 0;
    std::uint64_t refused_ = 0;
    std::uint64_t connect_failed_ = 0;
    std::uint64_t closed_ = 0;
};

}  // namespace hopgate::impair
