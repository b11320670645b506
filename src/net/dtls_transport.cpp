// DTLS/UDP transport: one socket serves every client (server) or one server (client).
#include <netinet/in.h>
#include <time.h>
// after <time.h>: linux/errqueue.h uses struct timespec
#include <linux/errqueue.h>
#include <openssl/rand.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "net/clock.hpp"
#include "net/half_open.hpp"
#include "net/transport.hpp"
#include "net/udp_io.hpp"
#include "tls/cookie.hpp"
#include "tls/dtls_engine.hpp"
#include "core/random.hpp"

namespace hopgate::net {
namespace {

using core::Instant;
using udp = asio::ip::udp;

constexpr std::size_t kBufSize = 65536;
constexpr int kMaxPacketsPerFlush = 512;

PeerAddr to_peer(const udp::endpoint& ep) {
    PeerAddr p;
    std::memcpy(&p.addr, ep.data(), ep.size());
    p.len = static_cast<socklen_t>(ep.size());
    return p;
}

std::uint64_t random_cid() {
    std::uint64_t v = 0;
    while (v == 0) {
        RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v);
        v &= (1ULL << 62) - 1;  // a varint-encodable transport parameter
    }
    return v;
}

void put_be64(std::uint8_t* p, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        p[i] = static_cast<std::uint8_t>(v);
        v >>= 8;
    }
}
std::uint64_t get_be64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
        v = (v << 8) | p[i];
    }
    return v;
}

void size_socket(int fd, int bytes) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

proto::ConnectionConfig datagram_config(const TransportOptions& o, proto::Role role,
                                         std::size_t overhead) {
    proto::ConnectionConfig c = o.conn;
    c.role = role;
    c.mode = proto::Mode::kDatagram;
    // The client's datagrams carry the connection-ID prefix once it has one.
    const std::size_t prefix = role == proto::Role::kClient ? kCidPrefixLen : 0;
    c.base_packet_size = o.udp_payload_base - overhead - prefix;
    c.max_packet_size = std::max(c.base_packet_size, o.udp_payload_max - overhead - prefix);
    c.handshake_timeout = o.handshake_timeout;
    return c;
}

// One packet from `conn` written into `record` (a slot of the send batch, past any prefix) at
// its record's plaintext offset and sealed there by `engine`, which must be sealing its own
// records with nothing queued. `record` is the record's size, 0 when the core had nothing to
// send; on a library failure `record` is 0 and the packet's `plaintext` bytes were copied to
// `plain` for engine.write() (OpenSSL's record layer) instead.
struct SealedPacket {
    std::size_t record = 0;
    std::size_t plaintext = 0;
};

SealedPacket write_sealed(proto::Connection& conn, tls::DtlsEngine& engine,
                          std::span<std::uint8_t> record, std::span<std::uint8_t> plain,
                          Instant now) {
    const std::span<std::uint8_t> body = record.subspan(
        tls::DtlsEngine::kSealOffset, record.size() - engine.record_overhead());
    const std::size_t n = conn.write_datagram(body, now);
    if (n == 0) {
        return {};
    }
    if (const std::size_t m = engine.seal_in_place(record, n); m > 0) {
        return {m, 0};
    }
    std::memcpy(plain.data(), body.data(), n);
    return {0, n};
}

}  // namespace

// ============================================================================ server

class ServerSession;

struct DtlsServer::Impl : std::enable_shared_from_this<DtlsServer::Impl> {
    asio::io_context& io;
    udp::socket sock;
    tls::ContextPtr ctx;
    TransportOptions opts;
    NewTunnel on_tunnel;
    tls::CookieGuard cookies;
    HalfOpenTable half_open;  // handshakes in progress, by age and source
    UdpReceiver rx;
    UdpSender tx;
    std::vector<std::uint8_t> reply;
    std::unordered_map<PeerAddr, std::shared_ptr<ServerSession>, PeerAddrHash> by_addr;
    std::unordered_map<std::uint64_t, std::shared_ptr<ServerSession>> by_cid;
    std::vector<std::shared_ptr<ServerSession>> dirty;
    std::unordered_set<ServerSession*> dirty_set;
    bool tx_blocked = false;
    bool stopped = false;
    ServerStats st;

    Impl(asio::io_context& io_, const udp::endpoint& listen, tls::ContextPtr c,
         TransportOptions o, NewTunnel cb)
        : io(io_), sock(io_), ctx(std::move(c)), opts(std::move(o)), on_tunnel(std::move(cb)),
          cookies(std::chrono::seconds(60), core::steady_now()),
          half_open(HalfOpenLimits{.max_total = opts.max_half_open,
                                   .max_per_source = opts.max_half_open_per_source,
                                   .pressure_age = opts.half_open_pressure_age}) {
        sock.open(listen.protocol());
        // No SO_REUSEADDR: on UDP it would let a second server bind the same port silently
        // (and take part of the datagrams); a port in use must fail start-up.
        sock.bind(listen);
        sock.non_blocking(true);
        size_socket(sock.native_handle(), opts.socket_buffer_bytes);
        UdpReceiver::try_enable_gro(sock.native_handle());
        // ICMP errors (port unreachable: a client process died) arrive on the error queue.
        int one = 1;
        (void)setsockopt(sock.native_handle(), IPPROTO_IP, IP_RECVERR, &one, sizeof one);
        (void)setsockopt(sock.native_handle(), IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
    }

    void wait_read();
    void drain_error_queue();
    void on_readable();
    void handle(std::span<const std::uint8_t> d, const PeerAddr& from, Instant now);
    bool send(std::span<const std::uint8_t> d, const PeerAddr& to);
    // Zero-copy send (UdpSender::reserve/commit); an empty slot means the socket would block.
    std::span<std::uint8_t> reserve(std::size_t max_size, const PeerAddr& to);
    void commit(std::size_t n);
    void flush_dirty();
    void mark_dirty(const std::shared_ptr<ServerSession>& s);
    void remove(ServerSession& s);
    void wait_write();
};

class ServerSession final : public Tunnel, private tls::DatagramSink {
public:
    ServerSession(const std::shared_ptr<DtlsServer::Impl>& srv, const PeerAddr& addr,
                  std::unique_ptr<tls::DtlsEngine> engine)
        : Tunnel(TransportKind::kDtls, addr.to_string()), srv_(srv), addr_(addr),
          cid_(random_cid()), engine_(std::move(engine)), timer_(srv->io),
          started_(core::steady_now()), plain_(kBufSize), cipher_(kBufSize) {}

    const PeerAddr& addr() const { return addr_; }
    void set_addr(const PeerAddr& a) {
        addr_ = a;
        peer_ = a.to_string();
    }
    std::uint64_t cid() const { return cid_; }

    // Path validation (RFC 9000 §8.2 and §9, adapted). A datagram carrying this session's
    // connection ID and at least one authenticated, non-replayed record (`records` > 0) from an
    // address other than the current one moves sending there at once, so a rebound client keeps
    // its throughput, but only up to three times the bytes received from that address (anti-
    // amplification) until the client echoes one of up to three PATH_CHALLENGEs. Without an
    // echo the session goes back to the last validated address and ignores the candidate for a
    // while; a record from the validated address meanwhile cancels the probe.
    void on_peer_datagram(DtlsServer::Impl& srv, const PeerAddr& from, std::size_t bytes,
                          int records) {
        if (closed_ || !conn_) {
            return;
        }
        if (from == addr_) {
            if (probe_) {
                probe_->rx_bytes += bytes;
            }
            return;
        }
        if (records <= 0) {
            return;
        }
        const Instant now = core::steady_now();
        if (probe_ && from == probe_->validated) {
            end_probe(srv, false);
            return;
        }
        const PeerAddr validated = probe_ ? probe_->validated : addr_;
        if (probe_) {
            erase_mapping(srv, probe_->candidate);
        }
        probe_.emplace();
        probe_->candidate = from;
        probe_->validated = validated;
        probe_->rx_bytes = bytes;
        set_addr(from);
        srv.by_addr[from] = std::static_pointer_cast<ServerSession>(shared_from_this());
        send_challenge(srv, now);
    }

    // Drops this session's address mappings (current and, while probing, the validated one).
    void forget_addresses(DtlsServer::Impl& srv) {
        erase_mapping(srv, addr_);
        if (probe_) {
            erase_mapping(srv, probe_->validated);
        }
    }

    // Feeds one datagram received at `now`; returns the number of application records it
    // carried (so the server can tell an authenticated datagram from noise when an address
    // changes).
    int on_datagram(std::span<const std::uint8_t> d, Instant now) {
        if (closed_) {
            return 0;
        }
        engine_->on_datagram_view(d);  // read to the end below, before `d` changes
        if (!conn_ && engine_->handshake_done()) {
            auto srv = srv_.lock();
            proto::ConnectionConfig c =
                datagram_config(srv->opts, proto::Role::kServer, engine_->record_overhead());
            c.connection_id = cid_;
            // Handshake flights fit the safe size; records may then grow up to the PMTUD ceiling.
            (void)engine_->set_mtu(srv->opts.udp_payload_max);
            conn_ = std::make_unique<proto::Connection>(c, core::steady_now());
            srv->half_open.remove(cid_);
            ++srv->st.handshakes_ok;
            if (srv->on_tunnel) {
                srv->on_tunnel(std::static_pointer_cast<Tunnel>(shared_from_this()));
            }
        }
        last_rx_ = now;
        icmp_errors_ = 0;
        icmp_ping_wanted_ = false;
        int records = 0;
        if (conn_) {
            for (;;) {
                auto r = engine_->read(plain_);
                if (!r || *r == 0) {
                    break;
                }
                ++records;
                conn_->on_datagram(std::span<const std::uint8_t>(plain_).first(*r), now);
            }
        }
        return records;
    }

    // ICMP port unreachable for our peer's address. Only a hint (ICMP can be forged): the
    // session closes when such errors keep coming and the peer has been silent for over a second;
    // otherwise a PING is queued (at most one per max(srtt, 100 ms), later ones by the timer) so
    // that a dead peer produces another error soon. Nothing is sent here: the caller marks the
    // session dirty and the receive loop flushes it once. (Sending per error was a feedback
    // loop: every datagram to a port that just closed, e.g. an old NAT mapping, came back as an
    // error that sent another datagram, ~20,000 a second, starving the receive path of the
    // client's new address.)
    void on_port_unreachable(Instant now) {
        if (closed_ || !conn_) {
            return;
        }
        ++icmp_errors_;
        if (icmp_errors_ >= 2 && now - last_rx_ > std::chrono::seconds(1)) {
            conn_->on_transport_closed("client unreachable (ICMP port unreachable)");
            return;
        }
        icmp_ping_wanted_ = true;
        maybe_icmp_ping(now);
    }

    void maybe_icmp_ping(Instant now) {
        if (!icmp_ping_wanted_ || now < next_icmp_ping_) {
            return;
        }
        icmp_ping_wanted_ = false;
        conn_->ping();
        next_icmp_ping_ = now + std::max<core::Duration>(conn_->stats().smoothed_rtt,
                                                         std::chrono::milliseconds(100));
    }

    void flush() override {
        if (closed_) {
            return;
        }
        auto srv = srv_.lock();
        if (!srv) {
            return;
        }
        // While flushing, records go from OpenSSL's buffer straight into the send batch.
        SinkScope sink(*this, *srv);
        dispatch_events();
        pump_engine(*srv);
        if (conn_) {
            const Instant now = core::steady_now();
            for (int i = 0; i < kMaxPacketsPerFlush && !srv->tx_blocked; ++i) {
                if (probe_ && probe_->tx_bytes + srv->opts.udp_payload_max >
                                  kAmplificationFactor * probe_->rx_bytes + kProbeAllowance) {
                    ++srv->st.amplification_limited;  // 3x anti-amplification toward a candidate
                    break;
                }
                if (!send_packet(*srv, now)) {
                    break;
                }
            }
            dispatch_events();
        }
        // Send what was queued now: flush() also runs outside the receive loop (the front door
        // after a stream write), and nothing else would push those datagrams out before a timer.
        if (!srv->tx_blocked && !srv->tx.flush(srv->sock.native_handle())) {
            srv->tx_blocked = true;
            srv->wait_write();
        }
        if (engine_->failed() || (conn_ && conn_->is_closed())) {
            finish(*srv);
            return;
        }
        if (!conn_ && core::steady_now() > started_ + srv->opts.handshake_timeout) {
            ++srv->st.handshakes_failed;
            finish(*srv);
            return;
        }
        arm_timer(*srv);
    }

    void abort() override {
        if (auto srv = srv_.lock()) {
            if (conn_ && !conn_->is_closing()) {
                conn_->close(proto::WireError::kNoError, "server closing tunnel");
                flush();
            }
            finish(*srv);
        }
    }

private:
    // Attaches this session as the engine's sink for the duration of a flush (the server is
    // known to be alive then).
    struct SinkScope {
        SinkScope(ServerSession& s, DtlsServer::Impl& srv) : self(s) {
            self.sink_srv_ = &srv;
            self.engine_->set_sink(&self);
        }
        ~SinkScope() {
            self.engine_->set_sink(nullptr);
            self.sink_srv_ = nullptr;
        }
        SinkScope(const SinkScope&) = delete;
        SinkScope& operator=(const SinkScope&) = delete;
        ServerSession& self;
    };

    // A declined datagram stays in the engine's queue until the socket is writable.
    bool accept(std::span<const std::uint8_t> d) override { return send_to_peer(*sink_srv_, d); }

    bool send_to_peer(DtlsServer::Impl& srv, std::span<const std::uint8_t> d) {
        if (!srv.send(d, addr_)) {
            return false;
        }
        if (probe_) {
            probe_->tx_bytes += d.size();
        }
        return true;
    }

    // One packet from the core. While the engine seals its own records and has nothing queued,
    // the packet is written into the send batch at its record's plaintext offset and sealed
    // there (no copy); otherwise it goes through plain_ and the engine. False when the core
    // had nothing to send or the datagram could not go.
    bool send_packet(DtlsServer::Impl& srv, Instant now) {
        std::size_t n = 0;
        if (engine_->own_records_sealing() && engine_->pending_datagrams() == 0) {
            const std::span<std::uint8_t> slot = srv.reserve(srv.opts.udp_payload_max, addr_);
            if (slot.empty()) {
                return false;
            }
            const SealedPacket p = write_sealed(*conn_, *engine_, slot, plain_, now);
            srv.commit(p.record);
            if (probe_) {
                probe_->tx_bytes += p.record;
            }
            if (p.plaintext == 0) {
                return p.record > 0;
            }
            n = p.plaintext;
        } else {
            n = conn_->write_datagram(plain_, now);
            if (n == 0) {
                return false;
            }
        }
        if (!engine_->write(std::span<const std::uint8_t>(plain_).first(n))) {
            return false;
        }
        pump_engine(srv);
        return true;
    }

    void pump_engine(DtlsServer::Impl& srv) {
        while (!srv.tx_blocked) {
            const std::size_t m = engine_->pop_datagram(cipher_);
            if (m == 0) {
                break;
            }
            if (!send_to_peer(srv, std::span<const std::uint8_t>(cipher_).first(m))) {
                ++srv.st.dropped;  // already out of the engine's queue
            }
        }
    }

    static constexpr int kMaxChallenges = 3;
    static constexpr std::uint64_t kAmplificationFactor = 3;
    // Lets the first datagram (with the PATH_CHALLENGE) out even when the client's datagram
    // that triggered the probe was a small ACK.
    static constexpr std::uint64_t kProbeAllowance = 1500;

    struct Probe {
        PeerAddr candidate;  // where we send now, unvalidated
        PeerAddr validated;  // where we go back to when validation fails
        std::array<std::uint64_t, kMaxChallenges> challenges{};
        int sent = 0;
        Instant next{};
        std::uint64_t rx_bytes = 0;
        std::uint64_t tx_bytes = 0;
    };

    bool on_transport_event(const proto::Event& ev) override {
        if (ev.type != proto::EventType::kPathResponse) {
            return false;
        }
        if (probe_) {
            const auto begin = probe_->challenges.begin();
            const auto end = begin + probe_->sent;
            if (std::find(begin, end, ev.code) != end) {
                if (auto srv = srv_.lock()) {
                    end_probe(*srv, true);
                }
            }
        }
        return true;  // a stale or unknown echo is dropped
    }

    void send_challenge(DtlsServer::Impl& srv, Instant now) {
        std::uint64_t c = 0;
        RAND_bytes(reinterpret_cast<unsigned char*>(&c), sizeof c);
        probe_->challenges[static_cast<std::size_t>(probe_->sent++)] = c;
        // Three attempts, each allowed a few round trips (and at least 100 ms).
        const auto rtt = conn_->stats().smoothed_rtt;
        probe_->next = now + std::max<core::Duration>(3 * rtt, std::chrono::milliseconds(100));
        conn_->send_path_challenge(c);
        ++srv.st.path_challenges;
    }

    // The probe's timer: another challenge, or give up and go back to the validated address.
    void check_probe(DtlsServer::Impl& srv, Instant now) {
        if (!probe_ || now < probe_->next) {
            return;
        }
        if (probe_->sent < kMaxChallenges) {
            send_challenge(srv, now);
            return;
        }
        // No echo in this round. Stay on the candidate, still capped at 3x what it sends, and
        // start another round: a NAT-rebound client whose probes were lost is not stranded on
        // a dead address, and an address that never answers only ever gets the capped share.
        // A record from the validated address ends the probe (on_peer_datagram).
        ++srv.st.path_validations_failed;
        probe_->sent = 0;
        send_challenge(srv, now);
    }

    // Success: the candidate becomes the validated address. Failure: back to the validated one.
    void end_probe(DtlsServer::Impl& srv, bool validated) {
        if (validated) {
            erase_mapping(srv, probe_->validated);
            ++srv.st.migrations;
        } else {
            erase_mapping(srv, probe_->candidate);
            set_addr(probe_->validated);
            srv.by_addr[addr_] = std::static_pointer_cast<ServerSession>(shared_from_this());
        }
        probe_.reset();
    }

    void erase_mapping(DtlsServer::Impl& srv, const PeerAddr& a) {
        if (auto it = srv.by_addr.find(a); it != srv.by_addr.end() && it->second.get() == this) {
            srv.by_addr.erase(it);
        }
    }

    void arm_timer(DtlsServer::Impl& srv) {
        Instant t = core::kInstantMax;
        if (conn_) {
            if (auto n = conn_->next_timeout()) {
                t = *n;
            }
        } else {
            t = started_ + srv.opts.handshake_timeout;
        }
        if (probe_) {
            t = std::min(t, probe_->next);
        }
        if (icmp_ping_wanted_) {
            t = std::min(t, next_icmp_ping_);
        }
        if (auto e = engine_->timeout()) {
            t = std::min(t, core::steady_now() + *e);
        }
        timer_.arm(t, shared_from_this(),
                   [](Tunnel& self) { static_cast<ServerSession&>(self).on_timer(); });
    }

    void on_timer() {
        if (closed_) {
            return;
        }
        const Instant now = core::steady_now();
        if (auto e = engine_->timeout(); e && e->count() <= 0) {
            engine_->on_timeout();
        }
        if (conn_) {
            if (auto n = conn_->next_timeout(); n && *n <= now) {
                conn_->on_timeout(now);
            }
            if (auto srv = srv_.lock()) {
                check_probe(*srv, now);
            }
            maybe_icmp_ping(now);
        }
        flush();
        if (auto srv = srv_.lock()) {
            if (!srv->tx.flush(srv->sock.native_handle())) {
                srv->wait_write();
            }
        }
    }

    void finish(DtlsServer::Impl& srv) {
        if (closed_) {
            return;
        }
        closed_ = true;
        timer_.cancel();
        dispatch_events();
        srv.remove(*this);
    }

    std::weak_ptr<DtlsServer::Impl> srv_;
    DtlsServer::Impl* sink_srv_ = nullptr;  // set while a flush runs (SinkScope)
    PeerAddr addr_;
    std::uint64_t cid_;
    std::unique_ptr<tls::DtlsEngine> engine_;
    LazyTimer timer_;
    Instant started_;
    Instant last_rx_{core::steady_now()};
    int icmp_errors_ = 0;
    bool icmp_ping_wanted_ = false;  // an ICMP hint came in; ping when next_icmp_ping_ is due
    Instant next_icmp_ping_{};
    std::optional<Probe> probe_;
    std::vector<std::uint8_t> plain_;
    std::vector<std::uint8_t> cipher_;
};

void DtlsServer::Impl::drain_error_queue() {
    const Instant now = core::steady_now();
    for (int i = 0; i < 256; ++i) {
        std::uint8_t data[64];
        alignas(cmsghdr) char control[512];
        sockaddr_storage name{};
        iovec iov{data, sizeof data};
        msghdr h{};
        h.msg_name = &name;
        h.msg_namelen = sizeof name;
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        h.msg_control = control;
        h.msg_controllen = sizeof control;
        if (recvmsg(sock.native_handle(), &h, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
            return;
        }
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
            const bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
            const bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
            if (!v4 && !v6) {
                continue;
            }
            sock_extended_err ee{};
            std::memcpy(&ee, CMSG_DATA(c), sizeof ee);
            const bool unreachable =
                (ee.ee_origin == SO_EE_ORIGIN_ICMP && ee.ee_type == 3 && ee.ee_code == 3) ||
                (ee.ee_origin == SO_EE_ORIGIN_ICMP6 && ee.ee_type == 1 && ee.ee_code == 4);
            if (!unreachable) {
                continue;
            }
            PeerAddr p;
            std::memcpy(&p.addr, &name, std::min<std::size_t>(h.msg_namelen, sizeof name));
            p.len = h.msg_namelen;
            if (auto it = by_addr.find(p); it != by_addr.end()) {
                auto sess = it->second;
                sess->on_port_unreachable(now);
                mark_dirty(sess);
            }
        }
    }
}

void DtlsServer::Impl::wait_read() {
    if (stopped) {
        return;
    }
    std::weak_ptr<Impl> weak = shared_from_this();
    sock.async_wait(udp::socket::wait_read, [weak](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec || self->stopped) {
            return;
        }
        self->on_readable();
    });
}

void DtlsServer::Impl::on_readable() {
    cookies.maybe_rotate(core::steady_now());
    for (int round = 0; round < 16; ++round) {
        int err = 0;
        const auto& batch = rx.receive(sock.native_handle(), err);
        if (err != 0) {
            drain_error_queue();
            continue;
        }
        if (batch.empty()) {
            break;
        }
        // One clock read per batch: they all arrived by now.
        const Instant now = core::steady_now();
        for (const auto& d : batch) {
            handle(d.data, *d.from, now);
        }
    }
    // No error-queue read here: every ICMP error also sets the socket error, which the next
    // recvmmsg returns (err above) and epoll reports, so the queue is drained when it has news.
    flush_dirty();
    if (!tx.flush(sock.native_handle())) {
        wait_write();
    }
    wait_read();
}

void DtlsServer::Impl::mark_dirty(const std::shared_ptr<ServerSession>& s) {
    // A batch mostly comes from one session: skip the set for the one marked last.
    if (!dirty.empty() && dirty.back().get() == s.get()) {
        return;
    }
    if (dirty_set.insert(s.get()).second) {
        dirty.push_back(s);
    }
}

void DtlsServer::Impl::flush_dirty() {
    auto list = std::move(dirty);
    dirty.clear();
    dirty_set.clear();
    for (auto& s : list) {
        s->flush();
    }
}

void DtlsServer::Impl::handle(std::span<const std::uint8_t> d, const PeerAddr& from,
                              Instant now) {
    ++st.datagrams_in;
    if (d.empty()) {
        ++st.dropped;
        return;
    }
    if (d[0] == kCidMarker) {
        if (d.size() <= kCidPrefixLen) {
            ++st.dropped;
            return;
        }
        auto it = by_cid.find(get_be64(d.data() + 1));
        if (it == by_cid.end()) {
            ++st.dropped;
            return;
        }
        auto s = it->second;
        const int records = s->on_datagram(d.subspan(kCidPrefixLen), now);
        // An authenticated, non-replayed record from a new address starts path validation
        // (the client may have moved: NAT rebinding); noise never moves anything.
        s->on_peer_datagram(*this, from, d.size(), records);
        mark_dirty(s);
        return;
    }
    if (auto it = by_addr.find(from); it != by_addr.end()) {
        auto s = it->second;
        s->on_datagram(d, now);
        mark_dirty(s);
        return;
    }
    // A new peer: nothing is allocated before a ClientHello echoes a valid cookie.
    const auto decision = cookies.check_client_hello(d, from.key(), reply);
    if (decision == tls::CookieGuard::Decision::kReplyAndDrop) {
        ++st.cookies_sent;
        if (!send(reply, from)) {
            ++st.dropped;  // the client sends its ClientHello again
        }
        return;
    }
    if (decision != tls::CookieGuard::Decision::kAccept) {
        ++st.dropped;
        return;
    }
    if (by_cid.size() >= opts.max_sessions) {
        ++st.dropped;
        return;
    }
    // A valid cookie proves only that the peer receives at this address and port: one host
    // with many ports must not take every handshake slot (net/half_open.hpp).
    const SourceKey src = source_key(from.addr);
    auto admission = half_open.admit(src, now);
    if (admission.verdict != HalfOpenTable::Verdict::kAdmit) {
        ++st.dropped;  // the peer retransmits its ClientHello
        return;
    }
    for (const std::uint64_t id : admission.evict) {
        if (auto it = by_cid.find(id); it != by_cid.end()) {
            auto victim = it->second;
            ++st.handshakes_failed;
            victim->abort();  // half-open: nothing to send; remove() forgets it
        }
        half_open.remove(id);
    }
    tls::DtlsOptions dopts;
    dopts.mtu = opts.udp_payload_base;
    auto engine = tls::DtlsEngine::server(ctx, dopts, &cookies, from.key());
    if (!engine) {
        ++st.dropped;
        return;
    }
    auto s = std::make_shared<ServerSession>(shared_from_this(), from, std::move(engine));
    by_addr[from] = s;
    by_cid[s->cid()] = s;
    half_open.add(s->cid(), src, now);
    s->on_datagram(d, now);
    mark_dirty(s);
}

bool DtlsServer::Impl::send(std::span<const std::uint8_t> d, const PeerAddr& to) {
    if (tx_blocked) {
        return false;
    }
    if (!tx.send(sock.native_handle(), d, to)) {
        tx_blocked = true;
        wait_write();
        return false;
    }
    ++st.datagrams_out;
    return true;
}

std::span<std::uint8_t> DtlsServer::Impl::reserve(std::size_t max_size, const PeerAddr& to) {
    if (tx_blocked) {
        return {};
    }
    const std::span<std::uint8_t> slot = tx.reserve(sock.native_handle(), max_size, to);
    if (slot.empty()) {
        tx_blocked = true;
        wait_write();
    }
    return slot;
}

void DtlsServer::Impl::commit(std::size_t n) {
    tx.commit(n);
    if (n > 0) {
        ++st.datagrams_out;
    }
}

void DtlsServer::Impl::wait_write() {
    if (stopped) {
        return;
    }
    std::weak_ptr<Impl> weak = shared_from_this();
    sock.async_wait(udp::socket::wait_write, [weak](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self || ec || self->stopped) {
            return;
        }
        if (!self->tx.flush(self->sock.native_handle())) {
            self->wait_write();
            return;
        }
        self->tx_blocked = false;
        // Let every session continue writing.
        for (auto& [cid, s] : self->by_cid) {
            self->mark_dirty(s);
        }
        self->flush_dirty();
        if (!self->tx.flush(self->sock.native_handle())) {
            self->wait_write();
        }
    });
}

void DtlsServer::Impl::remove(ServerSession& s) {
    auto it = by_cid.find(s.cid());
    if (it == by_cid.end()) {
        return;
    }
    auto keep = it->second;  // keep alive until this function returns
    s.forget_addresses(*this);
    half_open.remove(s.cid());
    by_cid.erase(it);
}

DtlsServer::DtlsServer(asio::io_context& io, const udp::endpoint& listen, tls::ContextPtr ctx,
                       TransportOptions opts, NewTunnel on_tunnel)
    : impl_(std::make_shared<Impl>(io, listen, std::move(ctx), std::move(opts),
                                   std::move(on_tunnel))) {}

DtlsServer::~DtlsServer() { stop(); }

udp::endpoint DtlsServer::local_endpoint() const { return impl_->sock.local_endpoint(); }

void DtlsServer::start() { impl_->wait_read(); }

void DtlsServer::stop() {
    if (impl_->stopped) {
        return;
    }
    impl_->stopped = true;
    boost::system::error_code ec;
    impl_->sock.close(ec);
    auto sessions = impl_->by_cid;
    for (auto& [cid, s] : sessions) {
        s->abort();
    }
    impl_->by_cid.clear();
    impl_->by_addr.clear();
}

ServerStats DtlsServer::stats() const {
    ServerStats s = impl_->st;
    s.sessions = impl_->by_cid.size();
    s.half_open = impl_->half_open.size();
    const auto& h = impl_->half_open.stats();
    s.half_open_evicted_same_source = h.evicted_same_source;
    s.half_open_evicted_pressure = h.evicted_pressure;
    s.half_open_refused_source = h.refused_source;
    s.half_open_refused_full = h.refused_full;
    s.send_syscalls = impl_->tx.syscalls();
    return s;
}

// ============================================================================ client

namespace {

class ClientTunnel final : public Tunnel, private tls::DatagramSink {
public:
    ClientTunnel(asio::io_context& io, const udp::endpoint& server,
                 std::unique_ptr<tls::DtlsEngine> engine, TransportOptions opts,
                 TunnelEvents* events, DialDone done)
        : Tunnel(TransportKind::kDtls, server.address().to_string() + ":" +
                                           std::to_string(server.port())),
          sock_(io), server_(server), engine_(std::move(engine)), opts_(std::move(opts)),
          done_(std::move(done)), timer_(io), started_(core::steady_now()),
          to_(to_peer(server)), plain_(kBufSize),
          cipher_(kBufSize + kCidPrefixLen) {
        events_ = events;
        boost::system::error_code ec;
        if (!open_socket(sock_, ec)) {
            throw boost::system::system_error(ec);
        }
        // Records go from OpenSSL's buffer straight into the send batch.
        engine_->set_sink(this);
    }

    ~ClientTunnel() override { engine_->set_sink(nullptr); }

    std::uint64_t rebinds() const override { return rebinds_; }
    ClientTunnel(const ClientTunnel&) = delete;
    ClientTunnel& operator=(const ClientTunnel&) = delete;

    void start() {
        wait_read();
        flush();
    }

    void flush() override {
        if (closed_) {
            return;
        }
        dispatch_events();
        if (conn_ && cid_ == 0 && conn_->is_established()) {
            cid_ = conn_->peer_params().connection_id;
        }
        pump_engine();
        if (conn_) {
            const Instant now = core::steady_now();
            for (int i = 0; i < kMaxPacketsPerFlush && !tx_blocked_; ++i) {
                if (!send_packet(now)) {
                    break;
                }
            }
            dispatch_events();
        }
        if (!tx_.flush(sock_.native_handle())) {
            wait_write();
        }
        if (const int err = tx_.take_error(); err != 0) {
            on_send_error(err);
        }
        if (engine_->failed()) {
            fail("DTLS handshake failed: " + engine_->error());
            return;
        }
        if (conn_ && conn_->is_closed()) {
            finish();
            return;
        }
        if (!conn_ && core::steady_now() > started_ + opts_.handshake_timeout) {
            fail("DTLS handshake timed out");
            return;
        }
        arm_timer();
    }

    void abort() override {
        if (conn_ && !conn_->is_closing()) {
            conn_->close(proto::WireError::kNoError, "client closing tunnel");
            flush();
        }
        finish();
    }

private:
    bool accept(std::span<const std::uint8_t> d) override {
        if (tx_blocked_) {
            return false;  // stays in the engine's queue until the socket is writable
        }
        std::array<std::uint8_t, kCidPrefixLen> prefix{};
        std::span<const std::uint8_t> p;
        if (cid_ != 0) {
            prefix[0] = kCidMarker;
            put_be64(prefix.data() + 1, cid_);
            p = prefix;
        }
        if (!tx_.send(sock_.native_handle(), p, d, to_)) {
            tx_blocked_ = true;
            wait_write();
            return false;
        }
        return true;
    }

    // One packet from the core, sealed in the send batch when possible (as the server's
    // ServerSession::send_packet); after a connection ID is known it is prefixed.
    bool send_packet(Instant now) {
        std::size_t n = 0;
        if (engine_->own_records_sealing() && engine_->pending_datagrams() == 0) {
            const std::span<std::uint8_t> slot =
                tx_.reserve(sock_.native_handle(), opts_.udp_payload_max, to_);
            if (slot.empty()) {
                tx_blocked_ = true;
                wait_write();
                return false;
            }
            const std::size_t prefix = cid_ != 0 ? kCidPrefixLen : 0;
            const SealedPacket p = write_sealed(*conn_, *engine_, slot.subspan(prefix), plain_, now);
            if (p.record > 0 && prefix > 0) {
                slot[0] = kCidMarker;
                put_be64(slot.data() + 1, cid_);
            }
            tx_.commit(p.record > 0 ? prefix + p.record : 0);
            if (p.plaintext == 0) {
                return p.record > 0;
            }
            n = p.plaintext;
        } else {
            n = conn_->write_datagram(plain_, now);
            if (n == 0) {
                return false;
            }
        }
        if (!engine_->write(std::span<const std::uint8_t>(plain_).first(n))) {
            return false;
        }
        pump_engine();
        return true;
    }

    void pump_engine() {
        while (!tx_blocked_) {
            std::uint8_t* out = cipher_.data() + kCidPrefixLen;
            const std::size_t m = engine_->pop_datagram({out, kBufSize});
            if (m == 0) {
                break;
            }
            std::span<const std::uint8_t> d(out, m);
            if (cid_ != 0) {
                cipher_[0] = kCidMarker;
                put_be64(cipher_.data() + 1, cid_);
                d = std::span<const std::uint8_t>(cipher_).first(m + kCidPrefixLen);
            }
            if (!tx_.send(sock_.native_handle(), d, to_)) {
                tx_blocked_ = true;
                wait_write();
                break;
            }
        }
    }

    // The pending read holds the tunnel alive while its socket is open (and is destroyed with
    // the io_context, so nothing leaks); closing the socket ends it.
    void wait_read() {
        sock_.async_wait(udp::socket::wait_read, [self = shared_from_this(), gen = sock_gen_](
                                                     const boost::system::error_code& ec) {
            auto* c = static_cast<ClientTunnel*>(self.get());
            if (!ec && gen == c->sock_gen_) {  // not for a socket replaced by rebind()
                c->on_readable();
            }
        });
    }

    void wait_write() {
        if (write_waiting_) {
            return;
        }
        write_waiting_ = true;
        std::weak_ptr<Tunnel> weak = shared_from_this();
        sock_.async_wait(udp::socket::wait_write, [weak, gen = sock_gen_](
                                                      const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (!self || ec) {
                return;
            }
            auto* c = static_cast<ClientTunnel*>(self.get());
            if (gen != c->sock_gen_) {
                return;  // rebind() replaced the socket and reset the write state
            }
            c->write_waiting_ = false;
            c->tx_blocked_ = false;
            c->flush();
        });
    }

    void on_readable() {
        if (closed_) {
            return;
        }
        for (int round = 0; round < 16; ++round) {
            int err = 0;
            const auto& batch = rx_.receive(sock_.native_handle(), err);
            if (err == ECONNREFUSED && !conn_) {
                // ICMP port unreachable before the handshake: nobody listens there.
                fail("connection refused (no DTLS listener at " + peer_ + ")");
                return;
            }
            if (batch.empty()) {
                break;
            }
            // One clock read per batch: they all arrived by now.
            const Instant now = core::steady_now();
            last_rx_ = now;
            for (const auto& d : batch) {
                on_datagram(d.data, now);
            }
        }
        flush();
        if (!closed_) {
            wait_read();
        }
    }

    void on_datagram(std::span<const std::uint8_t> d, Instant now) {
        engine_->on_datagram_view(d);  // read to the end below, before `d` changes
        if (!conn_ && engine_->handshake_done()) {
            proto::ConnectionConfig c =
                datagram_config(opts_, proto::Role::kClient, engine_->record_overhead());
            (void)engine_->set_mtu(opts_.udp_payload_max - kCidPrefixLen);
            conn_ = std::make_unique<proto::Connection>(c, core::steady_now());
            if (done_) {
                auto cb = std::move(done_);
                done_ = nullptr;
                cb(shared_from_this(), "");
            }
        }
        if (!conn_) {
            return;
        }
        for (;;) {
            auto r = engine_->read(plain_);
            if (!r || *r == 0) {
                break;
            }
            conn_->on_datagram(std::span<const std::uint8_t>(plain_).first(*r), now);
        }
    }

    void arm_timer() {
        Instant t = conn_ ? conn_->next_timeout().value_or(core::kInstantMax)
                          : started_ + opts_.handshake_timeout;
        if (auto e = engine_->timeout()) {
            t = std::min(t, core::steady_now() + *e);
        }
        timer_.arm(t, shared_from_this(),
                   [](Tunnel& self) { static_cast<ClientTunnel&>(self).on_timer(); });
    }

    void on_timer() {
        if (closed_) {
            return;
        }
        const Instant now = core::steady_now();
        if (auto e = engine_->timeout(); e && e->count() <= 0) {
            engine_->on_timeout();
        }
        if (conn_) {
            if (auto n = conn_->next_timeout(); n && *n <= now) {
                conn_->on_timeout(now);
            }
            if (path_silent(now)) {
                (void)rebind(now);
            }
        }
        flush();
    }

    // ---- moving to a fresh socket (client-side migration, docs/protocol.md §14.2)
    //
    // A connected UDP socket keeps the source address and port it got at connect(): after the
    // host's address changes (another network), or when a middlebox drops the flow's state and
    // blackholes it, its datagrams go nowhere for good. Waiting for the idle timeout and a new
    // handshake would cut every request in flight. Instead the tunnel opens a fresh socket (new
    // port, new route and source address) and carries on: the server finds the session by its
    // connection ID and adopts the new address after path validation, as for a NAT rebinding.

    bool open_socket(udp::socket& s, boost::system::error_code& ec) const {
        s.open(server_.protocol(), ec);
        if (!ec) {
            s.connect(server_, ec);
        }
        if (!ec) {
            s.non_blocking(true, ec);
        }
        if (ec) {
            return false;
        }
        size_socket(s.native_handle(), opts_.socket_buffer_bytes);
        UdpReceiver::try_enable_gro(s.native_handle());
        return true;
    }

    // The server can follow a move: it issued a connection ID, and the session is in use.
    bool can_rebind() const {
        return conn_ && cid_ != 0 && conn_->is_established() && !conn_->is_closing();
    }

    // Nothing received for `client_rebind_after` while packets await acknowledgement.
    bool path_silent(Instant now) const {
        if (opts_.client_rebind_after.count() <= 0 || !can_rebind()) {
            return false;
        }
        const Instant since = std::max(last_rx_, last_rebind_);
        return now - since >= opts_.client_rebind_after && conn_->stats().bytes_in_flight > 0;
    }

    // The local address is gone or has no route: a fresh socket gets a new one (at most one
    // move per second for these).
    void on_send_error(int err) {
        if ((err == EADDRNOTAVAIL || err == ENETUNREACH || err == EHOSTUNREACH ||
             err == ENETDOWN) &&
            can_rebind()) {
            const Instant now = core::steady_now();
            if (now - last_rebind_ >= std::chrono::seconds(1)) {
                (void)rebind(now);
            }
        }
    }

    bool rebind(Instant now) {
        udp::socket fresh(sock_.get_executor());
        boost::system::error_code ec;
        if (!open_socket(fresh, ec)) {
            return false;  // keep the old one; the idle timeout still bounds a dead path
        }
        sock_.close(ec);  // its pending waits complete with an error (and a stale generation)
        sock_ = std::move(fresh);
        ++sock_gen_;
        write_waiting_ = false;
        tx_blocked_ = false;
        last_rebind_ = now;
        ++rebinds_;
        conn_->ping();  // something to send at once on the new path
        wait_read();
        return true;
    }

    void fail(const std::string& why) {
        if (done_) {
            auto cb = std::move(done_);
            done_ = nullptr;
            finish();
            cb(nullptr, why);
            return;
        }
        finish();
    }

    void finish() {
        if (closed_) {
            return;
        }
        closed_ = true;
        timer_.cancel();
        dispatch_events();
        boost::system::error_code ec;
        sock_.close(ec);
    }

    udp::socket sock_;
    udp::endpoint server_;
    std::uint64_t sock_gen_ = 0;  // bumped by rebind(); stale socket waits compare it
    Instant last_rx_ = core::steady_now();
    Instant last_rebind_{};
    std::uint64_t rebinds_ = 0;
    std::unique_ptr<tls::DtlsEngine> engine_;
    TransportOptions opts_;
    DialDone done_;
    LazyTimer timer_;
    Instant started_;
    PeerAddr to_;
    UdpReceiver rx_{16};
    UdpSender tx_;
    bool tx_blocked_ = false;
    bool write_waiting_ = false;
    std::uint64_t cid_ = 0;
    std::vector<std::uint8_t> plain_;
    std::vector<std::uint8_t> cipher_;
};

}  // namespace

void dial_dtls(asio::io_context& io, const udp::endpoint& server, tls::ContextPtr ctx,
               const std::string& server_name, TransportOptions opts, TunnelEvents* events,
               DialDone done) {
    tls::DtlsOptions dopts;
    dopts.mtu = opts.udp_payload_base - kCidPrefixLen;
    auto engine = tls::DtlsEngine::client(ctx, server_name, dopts);
    if (!engine) {
        asio::post(io, [done] { done(nullptr, "cannot create a DTLS client engine"); });
        return;
    }
    std::shared_ptr<ClientTunnel> t;
    try {
        t = std::make_shared<ClientTunnel>(io, server, std::move(engine), std::move(opts), events,
                                           done);
    } catch (const boost::system::system_error& e) {
        asio::post(io, [done, msg = std::string(e.what())] { done(nullptr, msg); });
        return;
    }
    asio::post(io, [t] { t->start(); });
}

}  // namespace hopgate::net
