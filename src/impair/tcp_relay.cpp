#include "impair/tcp_relay.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <deque>

#include "impair/address.hpp"

namespace hopgate::impair {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxReadChunk = 64 * 1024;
constexpr std::size_t kMinReadChunk = 1460;
constexpr std::uint64_t kDownSeedSalt = 0xd1b54a32d192ed03ULL;

asio::steady_timer::time_point to_steady(core::Instant t) {
    return asio::steady_timer::time_point(
        std::chrono::duration_cast<asio::steady_timer::duration>(t.time_since_epoch()));
}

}  // namespace

// One relayed connection: the client socket, the target socket and a Pipe per direction.
class TcpSession : public std::enable_shared_from_this<TcpSession> {
  public:
    TcpSession(TcpRelay& relay, std::uint64_t id, tcp::socket client)
        : relay_(relay),
          id_(id),
          client_(std::move(client)),
          server_(client_.get_executor()),
          connect_timer_(client_.get_executor()),
          up_(Direction::kUp, &client_, &server_),
          down_(Direction::kDown, &server_, &client_) {}

    void start() {
        connect_timer_.expires_after(relay_.options_.connect_timeout);
        connect_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
            if (!ec && !self->connected_ && !self->closed_) {
                ++self->relay_.connect_failed_;
                self->relay_.log_.warn("connect to target timed out");
                self->close();
            }
        });
        server_.async_connect(relay_.target_, [self = shared_from_this()](const error_code& ec) {
            self->on_connected(ec);
        });
    }

    // Re-evaluates both directions (after restore or a parameter change).
    void kick() {
        for (Pipe* p : {&up_, &down_}) {
            release_due(*p);
            arm(*p);
        }
    }

    // Aborts the connection: closes both sockets and cancels every wait.
    void close() {
        if (closed_) {
            return;
        }
        closed_ = true;
        error_code ignored;
        client_.close(ignored);
        server_.close(ignored);
        connect_timer_.cancel();
        up_.timer.cancel();
        down_.timer.cancel();
        ++relay_.closed_;
        relay_.forget(id_);
    }

  private:
    struct Mark {
        core::Instant release;
        std::uint64_t end;  // read_total after the chunk
    };
    struct Pipe {
        Pipe(Direction d, tcp::socket* f, tcp::socket* t)
            : dir(d), from(f), to(t), timer(f->get_executor()) {}
        Direction dir;
        tcp::socket* from;
        tcp::socket* to;
        std::unique_ptr<std::byte[]> ring;  // allocated once connected
        std::size_t cap = 0;
        // Cumulative byte counts: written <= released <= read, read - written <= cap.
        std::uint64_t read_total = 0;
        std::uint64_t released_total = 0;
        std::uint64_t written_total = 0;
        std::deque<Mark> marks;  // bounded: one per read, and reads are bounded by cap
        asio::steady_timer timer;
        core::Instant armed = core::kInstantMax;
        core::Instant last_release{};
        bool reading = false;
        bool writing = false;
        bool eof = false;   // `from` sent FIN
        bool shut = false;  // FIN passed on to `to`
    };

    DirectionStats& stats(const Pipe& p) { return relay_.stats_[TcpRelay::index(p.dir)]; }

    void on_connected(const error_code& ec) {
        if (closed_) {
            return;
        }
        if (ec) {
            ++relay_.connect_failed_;
            relay_.log_.warn("connect to target failed", {{"error", ec.message()}});
            return close();
        }
        connected_ = true;
        connect_timer_.cancel();
        error_code ignored;
        client_.set_option(tcp::no_delay(true), ignored);
        server_.set_option(tcp::no_delay(true), ignored);
        for (Pipe* p : {&up_, &down_}) {
            p->cap = relay_.options_.tcp_buffer_bytes;
            p->ring = std::make_unique_for_overwrite<std::byte[]>(p->cap);
            do_read(*p);
        }
    }

    void do_read(Pipe& p) {
        if (p.reading || p.eof || closed_ || !connected_) {
            return;
        }
        const std::size_t buffered = static_cast<std::size_t>(p.read_total - p.written_total);
        const std::size_t free = p.cap - buffered;
        if (free == 0) {
            return;  // backpressure: resumes when a write frees space
        }
        const std::size_t pos = static_cast<std::size_t>(p.read_total % p.cap);
        const std::size_t len = std::min({free, p.cap - pos, relay_.read_chunk_limit(p.dir)});
        p.reading = true;
        p.from->async_read_some(
            asio::buffer(p.ring.get() + pos, len),
            [self = shared_from_this(), &p](const error_code& ec, std::size_t n) {
                self->on_read(p, ec, n);
            });
    }

    void on_read(Pipe& p, const error_code& ec, std::size_t n) {
        p.reading = false;
        if (closed_) {
            return;
        }
        if (ec == asio::error::eof) {
            p.eof = true;
            return maybe_finish(p);
        }
        if (ec) {
            relay_.log_.debug("read failed",
                              {{"direction", to_string(p.dir)}, {"error", ec.message()}});
            return close();
        }
        const core::Instant now = core::steady_now();
        p.read_total += n;
        stats(p).rx_bytes += n;
        p.last_release = relay_.schedule(p.dir, n, now, p.last_release);
        p.marks.push_back(Mark{p.last_release, p.read_total});
        release_due(p);
        arm(p);
        do_read(p);
    }

    void do_write(Pipe& p) {
        if (p.writing || closed_) {
            return;
        }
        const std::size_t pending = static_cast<std::size_t>(p.released_total - p.written_total);
        if (pending == 0) {
            return maybe_finish(p);
        }
        const std::size_t pos = static_cast<std::size_t>(p.written_total % p.cap);
        const std::size_t len = std::min(pending, p.cap - pos);
        p.writing = true;
        p.to->async_write_some(
            asio::buffer(p.ring.get() + pos, len),
            [self = shared_from_this(), &p](const error_code& ec, std::size_t n) {
                self->on_write(p, ec, n);
            });
    }

    void on_write(Pipe& p, const error_code& ec, std::size_t n) {
        p.writing = false;
        if (closed_) {
            return;
        }
        if (ec) {
            relay_.log_.debug("write failed",
                              {{"direction", to_string(p.dir)}, {"error", ec.message()}});
            return close();
        }
        p.written_total += n;
        stats(p).tx_bytes += n;
        do_read(p);
        do_write(p);
    }

    // Passes the FIN on once every byte before it has been written; closes when both are done.
    void maybe_finish(Pipe& p) {
        if (!p.eof || p.shut || p.writing || p.written_total != p.read_total) {
            return;
        }
        error_code ignored;
        p.to->shutdown(tcp::socket::shutdown_send, ignored);
        p.shut = true;
        if (up_.shut && down_.shut) {
            close();
        }
    }

    void release_due(Pipe& p) {
        if (closed_ || relay_.cut_) {
            return;
        }
        const core::Instant now = core::steady_now();
        while (!p.marks.empty() && p.marks.front().release <= now) {
            p.released_total = p.marks.front().end;
            p.marks.pop_front();
        }
        do_write(p);
    }

    void arm(Pipe& p) {
        if (closed_ || relay_.cut_ || p.marks.empty() || p.marks.front().release >= p.armed) {
            return;
        }
        p.armed = p.marks.front().release;
        p.timer.expires_at(to_steady(p.armed));
        p.timer.async_wait([self = shared_from_this(), &p](const error_code& ec) {
            if (ec == asio::error::operation_aborted || self->closed_) {
                return;
            }
            p.armed = core::kInstantMax;
            self->release_due(p);
            self->arm(p);
        });
    }

    TcpRelay& relay_;
    std::uint64_t id_;
    tcp::socket client_;
    tcp::socket server_;
    asio::steady_timer connect_timer_;
    Pipe up_;
    Pipe down_;
    bool connected_ = false;
    bool closed_ = false;
};

TcpRelay::TcpRelay(asio::io_context& io, const Options& options, core::Logger log)
    : options_(options),
      log_(std::move(log)),
      acceptor_(io),
      params_{options.up, options.down},
      rng_{core::Xoshiro256(options.seed), core::Xoshiro256(options.seed ^ kDownSeedSalt)} {
    target_ = tcp::endpoint(resolve_host(io, options.target.host), options.target.port);
    const tcp::endpoint ep(resolve_host(io, options.listen.host), options.listen.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    do_accept();
    log_.info("tcp relay listening", {{"listen", format_endpoint(acceptor_.local_endpoint())},
                                      {"target", format_endpoint(target_)}});
}

TcpRelay::~TcpRelay() { stop(); }

void TcpRelay::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    // close() erases from sessions_, so collect first.
    std::vector<std::shared_ptr<TcpSession>> live;
    for (auto& [id, w] : sessions_) {
        if (auto s = w.lock()) {
            live.push_back(std::move(s));
        }
    }
    for (auto& s : live) {
        s->close();
    }
    sessions_.clear();
}

void TcpRelay::do_accept() {
    acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || stopped_) {
            return;
        }
        if (ec) {
            log_.warn("accept failed", {{"error", ec.message()}});
        } else if (sessions_.size() >= options_.max_connections) {
            ++refused_;
            log_.warn("connection refused: too many", {{"max", options_.max_connections}});
            error_code ignored;
            socket.close(ignored);
        } else {
            ++accepted_;
            const std::uint64_t id = next_id_++;
            auto s = std::make_shared<TcpSession>(*this, id, std::move(socket));
            sessions_.emplace(id, s);
            s->start();
        }
        do_accept();
    });
}

void TcpRelay::set_cut(bool cut) {
    cut_ = cut;
    log_.info(cut ? "cut" : "restored");
    if (!cut) {
        std::vector<std::shared_ptr<TcpSession>> live;
        for (auto& [id, w] : sessions_) {
            if (auto s = w.lock()) {
                live.push_back(std::move(s));
            }
        }
        for (auto& s : live) {
            s->kick();
        }
    }
}

void TcpRelay::set_params(Direction d, const LinkParams& p) {
    if (auto why = p.validate(); !why.empty()) {
        throw std::invalid_argument(why);
    }
    params_[index(d)] = p;
}

bool TcpRelay::supports(std::string_view param) const {
    return param == "delay-ms" || param == "jitter-ms" || param == "rate-mbit";
}

core::Instant TcpRelay::schedule(Direction d, std::size_t bytes, core::Instant now,
                                 core::Instant not_before) {
    const std::size_t i = index(d);
    const LinkParams& p = params_[i];
    core::Instant departs = now;
    if (p.rate_mbit > 0.0) {
        const double us = static_cast<double>(bytes) * 8.0 / p.rate_mbit;
        departs = std::max(now, link_free_at_[i]) +
                  core::Duration(static_cast<std::int64_t>(std::ceil(us)));
        link_free_at_[i] = departs;
    }
    const double u = rng_[i].unit();  // drawn always, so the sequence does not depend on params
    return std::max(departs + p.delay + scale(p.jitter, u), not_before);
}

std::size_t TcpRelay::read_chunk_limit(Direction d) const {
    const double rate = params_[index(d)].rate_mbit;
    if (rate <= 0.0) {
        return kMaxReadChunk;
    }
    // About 10 ms of serialization per chunk, so a rate-limited stream flows rather than bursts.
    const auto ten_ms = static_cast<std::size_t>(rate * 1e6 / 8.0 / 100.0);
    return std::clamp(ten_ms, kMinReadChunk, kMaxReadChunk);
}

std::string TcpRelay::stats_json() const {
    std::string out = "{\"mode\":\"tcp\",\"cut\":";
    out += cut_ ? "true" : "false";
    out += ",\"up\":" + stats_[0].to_json();
    out += ",\"down\":" + stats_[1].to_json();
    out += ",\"connections\":" + std::to_string(sessions_.size());
    out += ",\"connections_accepted\":" + std::to_string(accepted_);
    out += ",\"connections_refused\":" + std::to_string(refused_);
    out += ",\"connections_closed\":" + std::to_string(closed_);
    out += ",\"connect_failed\":" + std::to_string(connect_failed_);
    out += '}';
    return out;
}

}  // namespace hopgate::impair
