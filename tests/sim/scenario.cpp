#include "sim/scenario.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/random.hpp"
#include "sim/network.hpp"

namespace hopgate::sim {

using core::Duration;
using core::Instant;
using proto::Connection;
using proto::Event;
using proto::EventType;
using proto::StreamId;

std::uint8_t pattern_byte(std::uint64_t idx, int dir, std::uint64_t offset) {
    std::uint64_t x = offset * 0x9e3779b97f4a7c15ULL + idx * 0xbf58476d1ce4e5b9ULL +
                      static_cast<std::uint64_t>(dir) * 0x94d049bb133111ebULL;
    x ^= x >> 29;
    return static_cast<std::uint8_t>(x >> 24);
}

namespace {

constexpr std::size_t kChunk = 16 * 1024;
constexpr Duration kSlowTick = std::chrono::milliseconds(10);

struct StreamApp {
    std::uint64_t idx = 0;
    std::uint64_t sent = 0;
    bool fin_sent = false;
    std::uint64_t received = 0;
    bool fin_received = false;
    bool head_seen = false;
    bool closed = false;
    bool blocked = false;
    bool aborted = false;
};

class Peer final : public Endpoint {
public:
    Peer(const ScenarioConfig& cfg, proto::Role role, std::string& error)
        : cfg_(cfg), role_(role), error_(error), rng_(cfg.seed * 7 + (role == proto::Role::kServer)) {
        proto::ConnectionConfig c;
        c.role = role;
        c.mode = cfg.mode;
        c.domain = "app.example.com";
        c.api_key = std::string(64, 'k');
        c.cc = cfg.cc;
        c.max_packet_size = cfg.max_packet_size;
        c.max_connection_window = cfg.max_connection_window;
        c.max_stream_window = cfg.max_stream_window;
        c.idle_timeout = cfg.idle_timeout;
        c.keepalive_interval = cfg.idle_timeout / 3;
        c.max_streams = std::max<std::uint64_t>(100, cfg.streams);
        c.connection_send_buffer = cfg.connection_send_buffer;
        c.stream_send_buffer = std::min<std::uint64_t>(c.stream_send_buffer, cfg.connection_send_buffer);
        ccfg_ = c;
        const std::string problem = proto::validate(c);
        if (!problem.empty()) {
            error_ = "bad connection config: " + problem;
        }
        conn_ = std::make_unique<Connection>(c, Instant{});
        out_.resize(cfg.mode == proto::Mode::kDatagram ? 65536 : 256 * 1024);
        scratch_.resize(kChunk);
    }

    Connection& conn() { return *conn_; }
    const proto::ConnectionConfig& ccfg() const { return ccfg_; }

    void on_datagram(std::span<const std::uint8_t> d, Instant now) override {
        now_ = now;
        if (cfg_.mode == proto::Mode::kDatagram) {
            conn_->on_datagram(d, now);
        } else {
            conn_->on_stream_bytes(d, now);
        }
        pump();
    }
    void on_timeout(Instant now) override {
        now_ = now;
        conn_->on_timeout(now);
        pump();
    }
    std::optional<Instant> next_timeout() const override {
        auto t = conn_->next_timeout();
        if (slow_wait_) {
            const Instant tick = last_slow_read_ + kSlowTick;
            t = t ? std::min(*t, tick) : tick;
        }
        return t;
    }
    void flush(Instant now,
               const std::function<void(std::span<const std::uint8_t>)>& send) override {
        now_ = now;
        pump();
        if (cfg_.mode == proto::Mode::kDatagram) {
            for (;;) {
                const std::size_t n = conn_->write_datagram(out_, now);
                if (n == 0) {
                    break;
                }
                ++datagrams_;
                send(std::span<const std::uint8_t>(out_).first(n));
            }
        } else {
            for (;;) {
                const std::size_t n = conn_->write_stream_bytes(out_, now);
                if (n == 0) {
                    break;
                }
                ++datagrams_;
                // Deliver in random fragments: the receiver must reassemble records.
                std::size_t pos = 0;
                while (pos < n) {
                    std::size_t len = n - pos;
                    if (cfg_.fragment_stream) {
                        len = std::min<std::size_t>(len, 1 + rng_.uniform(3000));
                    }
                    send(std::span<const std::uint8_t>(out_).subspan(pos, len));
                    pos += len;
                }
            }
        }
        pump();
    }

    bool done() const {
        if (!error_.empty()) {
            return true;
        }
        // Streams reset before their head arrived are invisible to the client: count those
        // the application knows about, and require every non-reset stream to be complete.
        const std::size_t expected_known =
            role_ == proto::Role::kServer ? cfg_.streams : apps_.size();
        return intact_streams_ == cfg_.streams - cfg_.reset_streams &&
               apps_.size() == expected_known && closed_streams_ == apps_.size() &&
               (role_ == proto::Role::kClient || apps_.size() == cfg_.streams);
    }
    bool closed() const { return closed_; }
    std::uint64_t close_code() const { return close_code_; }
    Instant closed_at() const { return closed_at_; }
    std::uint64_t payload_received() const { return payload_received_; }
    std::uint64_t datagrams() const { return datagrams_; }
    const std::vector<Instant>& completion_times() const { return completion_times_; }

private:
    void fail(const std::string& what) {
        if (error_.empty()) {
            error_ = std::string(role_ == proto::Role::kServer ? "server: " : "client: ") + what;
        }
    }

    int recv_dir() const { return role_ == proto::Role::kServer ? 1 : 0; }
    int send_dir() const { return role_ == proto::Role::kServer ? 0 : 1; }
    std::uint64_t send_total() const {
        return role_ == proto::Role::kServer || cfg_.echo ? cfg_.bytes : 0;
    }
    std::uint64_t recv_total() const {
        return role_ == proto::Role::kClient || cfg_.echo ? cfg_.bytes : 0;
    }

    void pump() {
        for (int round = 0; round < 4; ++round) {
            handle_events();
            open_streams();
            write_all();
            read_slow();
            if (!has_events()) {
                break;
            }
        }
        handle_events();
    }

    bool has_events() {
        Event e;
        if (conn_->poll_event(e)) {
            pending_.push_back(std::move(e));
            return true;
        }
        return !pending_.empty();
    }

    void handle_events() {
        Event e;
        for (;;) {
            if (!pending_.empty()) {
                e = std::move(pending_.front());
                pending_.erase(pending_.begin());
            } else if (!conn_->poll_event(e)) {
                break;
            }
            handle(e);
        }
    }

    void handle(const Event& e) {
        switch (e.type) {
            case EventType::kAuthRequest:
                if (e.auth.domain != "app.example.com" || e.auth.api_key != std::string(64, 'k')) {
                    fail("wrong credentials received");
                }
                conn_->accept_auth();
                break;
            case EventType::kEstablished:
                established_ = true;
                if (role_ == proto::Role::kServer) {
                    to_open_ = cfg_.streams;
                }
                break;
            case EventType::kStreamOpened: {
                if (!e.meta || e.meta->head != proto::HeadType::kRequest) {
                    fail("stream opened without a request head");
                    return;
                }
                StreamApp app;
                app.idx = std::stoull(e.meta->target.substr(3));
                app.head_seen = true;
                if (e.meta->request_id != "req-" + std::to_string(app.idx)) {
                    fail("request id mismatch");
                }
                apps_[e.stream] = app;
                proto::StreamMeta resp;
                resp.head = proto::HeadType::kResponse;
                resp.status = 200;
                resp.request_id = e.meta->request_id;
                resp.headers = {{"content-type", "application/octet-stream"}};
                if (auto st = conn_->send_meta(e.stream, resp); !st) {
                    fail("send_meta: " + st.error().message());
                }
                writers_.insert(e.stream);
                break;
            }
            case EventType::kStreamHead: {
                auto it = apps_.find(e.stream);
                if (it == apps_.end() || !e.meta || e.meta->status != 200) {
                    fail("bad response head");
                    return;
                }
                it->second.head_seen = true;
                break;
            }
            case EventType::kStreamReadable: read_stream(e.stream); break;
            case EventType::kStreamWritable: {
                auto it = apps_.find(e.stream);
                if (it != apps_.end()) {
                    it->second.blocked = false;
                    writers_.insert(e.stream);
                }
                break;
            }
            case EventType::kStreamReset:
            case EventType::kStreamStopSending: {
                auto it = apps_.find(e.stream);
                if (it == apps_.end() || !is_reset_stream(it->second.idx) || e.code != kResetCode) {
                    fail("unexpected stream reset/stop on stream " + std::to_string(e.stream));
                    return;
                }
                if (!it->second.aborted) {
                    it->second.aborted = true;
                    ++completed_streams_;
                }
                break;
            }
            case EventType::kStreamClosed: {
                auto it = apps_.find(e.stream);
                if (it == apps_.end()) {
                    fail("close of unknown stream");
                    return;
                }
                if (!it->second.aborted && (!it->second.fin_received || !it->second.fin_sent)) {
                    fail("stream closed before both directions finished");
                }
                it->second.closed = true;
                ++closed_streams_;
                break;
            }
            case EventType::kPathResponse: break;
            case EventType::kConnectionClosed:
                closed_ = true;
                close_code_ = e.code;
                closed_at_ = now_;
                if (cfg_.cut_at.count() == 0) {
                    fail("connection closed: code " + std::to_string(e.code) + " " + e.reason);
                }
                break;
        }
    }

    void open_streams() {
        while (to_open_ > 0 && established_) {
            proto::StreamMeta m;
            m.head = proto::HeadType::kRequest;
            m.method = "POST";
            const std::uint64_t idx = cfg_.streams - to_open_;
            m.target = "/s/" + std::to_string(idx);
            m.request_id = "req-" + std::to_string(idx);
            m.headers = {{"host", "app.example.com"}, {"x-test", "1"}};
            auto r = conn_->open_stream(m);
            if (!r) {
                if (r.error() != proto::Errc::kStreamLimit && r.error() != proto::Errc::kWouldBlock) {
                    fail("open_stream: " + r.error().message());
                }
                return;
            }
            StreamApp app;
            app.idx = idx;
            apps_[*r] = app;
            writers_.insert(*r);
            --to_open_;
        }
    }

    void write_all() {
        for (auto it = writers_.begin(); it != writers_.end();) {
            auto a = apps_.find(*it);
            if (a == apps_.end() || !write_stream(*it, a->second)) {
                it = writers_.erase(it);
            } else {
                ++it;
            }
        }
    }

    bool is_reset_stream(std::uint64_t idx) const {
        return idx + cfg_.reset_streams >= cfg_.streams;
    }

    // Returns true while the stream still has something to write and is not blocked.
    bool write_stream(StreamId id, StreamApp& app) {
        const std::uint64_t total = send_total();
        while (!app.fin_sent && !app.aborted) {
            if (role_ == proto::Role::kServer && is_reset_stream(app.idx) &&
                app.sent >= total / 2) {
                app.aborted = true;
                ++completed_streams_;
                if (!conn_->stream_reset(id, kResetCode) ||
                    !conn_->stream_stop_sending(id, kResetCode)) {
                    fail("reset failed");
                }
                return false;
            }
            std::uint64_t limit = total;
            if (role_ == proto::Role::kServer && is_reset_stream(app.idx)) {
                limit = total / 2;
            }
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, limit - app.sent));
            for (std::size_t i = 0; i < n; ++i) {
                scratch_[i] = pattern_byte(app.idx, send_dir(), app.sent + i);
            }
            const bool last = app.sent + n == total && limit == total;
            auto r = conn_->stream_write(id, std::span<const std::uint8_t>(scratch_).first(n), last);
            if (!r) {
                if (r.error() == proto::Errc::kWouldBlock) {
                    app.blocked = true;
                    return false;
                }
                fail("stream_write: " + r.error().message());
                return false;
            }
            app.sent += *r;
            if (last && *r == n) {
                app.fin_sent = true;
            }
            if (limit != total && app.sent >= limit) {
                continue;  // reaches the reset branch above
            }
            if (*r < n) {
                app.blocked = true;
                return false;
            }
        }
        return false;
    }

    bool is_slow(const StreamApp& app) const {
        return cfg_.slow_reader_bps > 0 && role_ == proto::Role::kClient && app.idx == 0;
    }

    void read_stream(StreamId id) {
        auto it = apps_.find(id);
        if (it == apps_.end()) {
            fail("data on unknown stream");
            return;
        }
        StreamApp& app = it->second;
        if (is_slow(app)) {
            slow_id_ = id;
            slow_wait_ = true;
            read_slow();
            return;
        }
        read_some(id, app, std::numeric_limits<std::uint64_t>::max());
    }

    void read_slow() {
        if (!slow_wait_) {
            return;
        }
        if (now_ < last_slow_read_ + kSlowTick) {
            return;
        }
        auto it = apps_.find(slow_id_);
        if (it == apps_.end()) {
            slow_wait_ = false;
            return;
        }
        const std::uint64_t budget = std::max<std::uint64_t>(
            1, cfg_.slow_reader_bps * static_cast<std::uint64_t>(kSlowTick.count()) / 1000000);
        last_slow_read_ = now_;
        read_some(slow_id_, it->second, budget);
        slow_wait_ = !it->second.fin_received;
    }

    void read_some(StreamId id, StreamApp& app, std::uint64_t budget) {
        std::vector<std::uint8_t> buf(64 * 1024);
        while (budget > 0) {
            const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), budget));
            auto r = conn_->stream_read(id, std::span<std::uint8_t>(buf).first(want));
            if (!r) {
                if (r.error() == proto::Errc::kUnknownStream) {
                    return;  // already closed after FIN was read
                }
                fail("stream_read: " + r.error().message());
                return;
            }
            for (std::size_t i = 0; i < r->bytes; ++i) {
                if (buf[i] != pattern_byte(app.idx, recv_dir(), app.received + i)) {
                    fail("corrupt byte at offset " + std::to_string(app.received + i) +
                         " of stream " + std::to_string(app.idx));
                    return;
                }
            }
            app.received += r->bytes;
            payload_received_ += r->bytes;
            budget -= r->bytes;
            if (app.received > recv_total()) {
                fail("more bytes than sent on stream " + std::to_string(app.idx));
                return;
            }
            if (r->fin) {
                if (app.fin_received) {
                    fail("FIN reported twice");
                }
                app.fin_received = true;
                if (app.received != recv_total()) {
                    fail("FIN after " + std::to_string(app.received) + " of " +
                         std::to_string(recv_total()) + " bytes");
                }
                ++completed_streams_;
                ++intact_streams_;
                completion_times_.push_back(now_);
                return;
            }
            if (r->bytes == 0) {
                return;
            }
        }
    }

    const ScenarioConfig& cfg_;
    proto::Role role_;
    std::string& error_;
    core::Xoshiro256 rng_;
    proto::ConnectionConfig ccfg_;
    std::unique_ptr<Connection> conn_;
    std::vector<std::uint8_t> out_;
    std::vector<std::uint8_t> scratch_;
    std::vector<Event> pending_;
    std::unordered_map<StreamId, StreamApp> apps_;
    std::set<StreamId> writers_;
    Instant now_{};
    bool established_ = false;
    std::uint64_t to_open_ = 0;
    std::size_t completed_streams_ = 0;
    std::size_t intact_streams_ = 0;
    std::size_t closed_streams_ = 0;
    std::uint64_t payload_received_ = 0;
    std::uint64_t datagrams_ = 0;
    std::vector<Instant> completion_times_;
    bool closed_ = false;
    std::uint64_t close_code_ = 0;
    Instant closed_at_{};
    bool slow_wait_ = false;
    StreamId slow_id_ = 0;
    Instant last_slow_read_{};
};

}  // namespace

std::string ScenarioResult::to_json() const {
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "{\"ok\":%s,\"completed\":%s,\"sim_seconds\":%.6f,\"goodput_mbit\":%.3f,"
                  "\"payload_bytes\":%llu,\"retransmitted_bytes\":%llu,\"max_buffered_bytes\":%llu,"
                  "\"buffer_bound\":%llu,\"packets_lost\":%llu,\"datagrams\":%llu,\"pmtu\":%zu",
                  ok ? "true" : "false", completed ? "true" : "false", sim_seconds, goodput_mbit,
                  static_cast<unsigned long long>(payload_bytes),
                  static_cast<unsigned long long>(retransmitted_bytes),
                  static_cast<unsigned long long>(max_buffered_bytes),
                  static_cast<unsigned long long>(buffer_bound),
                  static_cast<unsigned long long>(packets_lost),
                  static_cast<unsigned long long>(datagrams), server_pmtu);
    std::string s(buf);
    if (!error.empty()) {
        std::string esc;
        for (char c : error) {
            if (c == '"' || c == '\\') {
                esc.push_back('\\');
            }
            esc.push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
        }
        s += ",\"error\":\"" + esc + "\"";
    }
    s += "}";
    return s;
}

ScenarioResult run_scenario(const ScenarioConfig& cfg) {
    ScenarioResult res;
    std::string error;
    Peer server(cfg, proto::Role::kServer, error);
    Peer client(cfg, proto::Role::kClient, error);
    LinkConfig link = cfg.link;
    if (cfg.mode == proto::Mode::kStream) {
        // A reliable byte stream: no loss, duplication or reordering.
        link.loss = 0;
        link.burst_enter = 0;
        link.dup = 0;
        link.jitter = Duration{0};
        link.mtu = 0;
        link.queue_bytes = 0;
        link.queue_packets = 0;
    }
    // Client is side A (it speaks first), server side B.
    Network net(client, server, link, link, cfg.seed);
    if (cfg.trace) {
        net.set_trace([](std::string_view s) { std::fprintf(stderr, "%.*s\n", int(s.size()), s.data()); });
    }
    if (cfg.mtu_drop_at.count() > 0) {
        net.schedule(Instant{} + cfg.mtu_drop_at, [&net, &cfg] {
            LinkConfig l = net.link_ab().config();
            l.mtu = cfg.mtu_drop_to;
            net.link_ab().set_config(l);
            LinkConfig r = net.link_ba().config();
            r.mtu = cfg.mtu_drop_to;
            net.link_ba().set_config(r);
        });
    }
    const Instant deadline = Instant{} + cfg.deadline;
    if (cfg.cut_at.count() > 0) {
        net.schedule(Instant{} + cfg.cut_at, [&net] {
            LinkConfig l = net.link_ab().config();
            l.cut = true;
            net.link_ab().set_config(l);
            LinkConfig r = net.link_ba().config();
            r.cut = true;
            net.link_ba().set_config(r);
        });
        net.run_until([&] { return server.closed() && client.closed(); }, deadline);
        res.server_closed = server.closed();
        res.client_closed = client.closed();
        res.server_close_code = server.close_code();
        res.client_close_code = client.close_code();
        res.close_seconds = core::to_seconds(
            std::max(server.closed_at(), client.closed_at()) - Instant{});
        res.ok = res.server_closed && res.client_closed && error.empty();
        res.error = error;
        if (!res.ok && res.error.empty()) {
            res.error = "connections did not notice the cut";
        }
        return res;
    }
    res.completed = net.run_until([&] { return server.done() && client.done(); }, deadline) &&
                    error.empty();
    if (net.stalled()) {
        error = "simulation stalled: " + net.stall_reason();
    }
    const Instant end = net.now();
    res.sim_seconds = core::to_seconds(end - Instant{});
    res.payload_bytes = server.payload_received() + client.payload_received();
    const auto& ss = server.conn().stats();
    const auto& cs = client.conn().stats();
    res.retransmitted_bytes = ss.retransmitted_bytes + cs.retransmitted_bytes;
    res.packets_lost = ss.packets_lost + cs.packets_lost;
    res.max_buffered_bytes = std::max(ss.max_buffered_bytes, cs.max_buffered_bytes);
    const auto& pc = server.ccfg();
    res.buffer_bound = pc.max_connection_window + pc.connection_send_buffer;
    res.datagrams = server.datagrams() + client.datagrams();
    res.server_pmtu = ss.path_mtu;
    if (res.sim_seconds > 0) {
        res.goodput_mbit = static_cast<double>(client.payload_received()) * 8 / res.sim_seconds / 1e6;
    }
    // Slow-consumer bookkeeping: completion times of the client's streams.
    const auto& times = client.completion_times();
    if (!times.empty()) {
        res.first_stream_done_s = core::to_seconds(times.front() - Instant{});
        res.last_other_stream_done_s = core::to_seconds(
            (times.size() >= 2 ? times[times.size() - 2] : times.back()) - Instant{});
    }
    if (!res.completed && error.empty()) {
        error = "did not complete within " + std::to_string(core::to_seconds(cfg.deadline)) +
                " s of simulated time";
    }
    if (error.empty() && res.max_buffered_bytes > res.buffer_bound) {
        error = "buffered bytes exceeded the bound";
    }
    res.error = error;
    res.ok = res.completed && error.empty();
    return res;
}

}  // namespace hopgate::sim
