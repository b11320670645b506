// Direct two-Connection tests of the tunnel state machine (proto/connection.hpp), without the
// simulator: a tiny in-test loop with a virtual clock moves datagrams (or byte-stream chunks)
// between a client and a server, and hand-crafted packets probe the error paths.
#include "proto/connection.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace hopgate::proto {
namespace {

using Bytes = std::vector<std::uint8_t>;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr Instant kStart = Instant{} + seconds(1000);

std::uint8_t pattern(std::uint64_t i) { return static_cast<std::uint8_t>(i * 131 + (i >> 9)); }

Bytes pattern_bytes(std::uint64_t from, std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) {
        b[i] = pattern(from + i);
    }
    return b;
}

ConnectionConfig client_config(Mode mode = Mode::kDatagram) {
    ConnectionConfig c;
    c.role = Role::kClient;
    c.mode = mode;
    c.domain = "app.example.com";
    c.api_key = "s3cret-key";
    return c;
}

ConnectionConfig server_config(Mode mode = Mode::kDatagram) {
    ConnectionConfig c;
    c.role = Role::kServer;
    c.mode = mode;
    return c;
}

StreamMeta request(std::string target = "/") {
    StreamMeta m;
    m.head = HeadType::kRequest;
    m.method = "GET";
    m.target = std::move(target);
    m.request_id = "req-1";
    m.headers = {{"host", "app.example.com"}};
    return m;
}

StreamMeta response(std::uint16_t status = 200) {
    StreamMeta m;
    m.head = HeadType::kResponse;
    m.status = status;
    return m;
}

bool has_error(const std::error_code& ec, Errc e) { return ec == make_error_code(e); }

// Builds a datagram-mode packet: flags 0x40, packet number, frames.
Bytes make_packet(std::uint64_t pn, const std::vector<Frame>& frames) {
    Bytes b(4096);
    Writer w(b);
    EXPECT_TRUE(w.u8(0x40) && w.varint(pn));
    for (const auto& f : frames) {
        EXPECT_TRUE(encode_frame(w, f));
    }
    b.resize(w.size());
    return b;
}

// Decodes the frames of a datagram-mode packet (views into `p`).
std::vector<Frame> frames_of(const Bytes& p) {
    std::vector<Frame> out;
    Reader r(p);
    std::uint8_t flags = 0;
    std::uint64_t pn = 0;
    EXPECT_TRUE(r.u8(flags) && r.varint(pn));
    while (!r.empty()) {
        Frame f;
        if (!decode_frame(r, f)) {
            ADD_FAILURE() << "our own packet does not decode";
            break;
        }
        out.push_back(f);
    }
    return out;
}

std::vector<Bytes> drain_datagrams(Connection& c, Instant now) {
    std::vector<Bytes> out;
    Bytes buf(2048);
    while (std::size_t n = c.write_datagram(buf, now)) {
        out.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        if (out.size() > 10000) {
            ADD_FAILURE() << "write_datagram never returns 0";
            break;
        }
    }
    return out;
}

std::vector<Event> drain_events(Connection& c) {
    std::vector<Event> out;
    Event e;
    while (c.poll_event(e)) {
        out.push_back(std::move(e));
    }
    return out;
}

const Event* find_event(const std::vector<Event>& evs, EventType t) {
    for (const auto& e : evs) {
        if (e.type == t) {
            return &e;
        }
    }
    return nullptr;
}

// ------------------------------------------------------------------------------------------
// Two connections joined by an in-memory path with a fixed one-way latency and a virtual clock.
class Pair {
public:
    struct Side {
        std::unique_ptr<Connection> conn;
        std::vector<Event> events;
        std::function<void(const Event&)> on_event;
        Instant last_rx{};                  // last time input was delivered to it
        std::optional<Instant> closed_at;   // when kConnectionClosed was polled
    };

    Pair(const ConnectionConfig& ccfg, const ConnectionConfig& scfg, std::uint64_t seed = 1)
        : mode_(ccfg.mode), rng_(seed) {
        client.conn = std::make_unique<Connection>(ccfg, now);
        server.conn = std::make_unique<Connection>(scfg, now);
        // Default: accept every AUTH.
        server.on_event = [this](const Event& e) {
            if (e.type == EventType::kAuthRequest) {
                server.conn->accept_auth();
            }
        };
    }

    Connection& c() { return *client.conn; }
    Connection& s() { return *server.conn; }

    // Runs until `done()` holds, nothing is left to do, or `limit` of virtual time passes.
    bool run_until(const std::function<bool()>& done, core::Duration limit = seconds(60)) {
        const Instant end = now + limit;
        for (int iter = 0; iter < 2'000'000; ++iter) {
            settle();
            if (done()) {
                return true;
            }
            Instant next = core::kInstantMax;
            if (!queue_.empty()) {
                next = queue_.front().at;
            }
            for (Side* sd : {&client, &server}) {
                if (auto t = sd->conn->next_timeout()) {
                    next = std::min(next, *t);
                }
            }
            if (next == core::kInstantMax || next > end) {
                return done();
            }
            now = std::max(now, next);
            while (!queue_.empty() && queue_.front().at <= now) {
                Item it = std::move(queue_.front());
                queue_.pop_front();
                Connection& to = it.to_server ? s() : c();
                (it.to_server ? server : client).last_rx = now;
                if (mode_ == Mode::kDatagram) {
                    to.on_datagram(it.bytes, now);
                } else {
                    to.on_stream_bytes(it.bytes, now);
                }
            }
            for (Side* sd : {&client, &server}) {
                if (auto t = sd->conn->next_timeout(); t && *t <= now) {
                    sd->conn->on_timeout(now);
                }
            }
        }
        ADD_FAILURE() << "event loop did not settle (iteration cap)";
        return false;
    }

    bool handshake() {
        return run_until([this] { return c().is_established() && s().is_established(); });
    }

    // Drains outputs and events until both connections are quiet at the current time.
    void settle() {
        for (int round = 0; round < 1000; ++round) {
            bool any = flush(client, true) | flush(server, false);
            any |= poll(client) | poll(server);
            if (tick) {
                tick();
            }
            any |= flush(client, true) | flush(server, false);
            if (!any) {
                return;
            }
        }
    }

    Instant now = kStart;
    Side client, server;
    core::Duration latency = milliseconds(10);
    bool deliver = true;                      // false: every datagram/byte is lost
    std::function<void(bool, const Bytes&)> tap;  // sees every datagram (to_server, bytes)
    std::function<void()> tick;               // application work after each settle round
    // Stream mode: how written bytes are split into delivered chunks (default: random sizes).
    std::function<std::size_t(std::size_t remaining)> chunker;

private:
    struct Item {
        Instant at;
        bool to_server;
        Bytes bytes;
    };

    bool poll(Side& sd) {
        bool any = false;
        Event e;
        while (sd.conn->poll_event(e)) {
            any = true;
            sd.events.push_back(e);
            if (e.type == EventType::kConnectionClosed && !sd.closed_at) {
                sd.closed_at = now;
            }
            if (sd.on_event) {
                sd.on_event(sd.events.back());
            }
        }
        return any;
    }

    bool flush(Side& sd, bool to_server) {
        bool any = false;
        Bytes buf(mode_ == Mode::kDatagram ? 2048 : 64 * 1024);
        for (;;) {
            const std::size_t n = mode_ == Mode::kDatagram ? sd.conn->write_datagram(buf, now)
                                                           : sd.conn->write_stream_bytes(buf, now);
            if (n == 0) {
                break;
            }
            any = true;
            Bytes out(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
            if (tap) {
                tap(to_server, out);
            }
            if (!deliver) {
                continue;
            }
            if (mode_ == Mode::kDatagram) {
                queue_.push_back({now + latency, to_server, std::move(out)});
            } else {
                std::size_t pos = 0;
                while (pos < out.size()) {
                    std::size_t k = chunker ? chunker(out.size() - pos)
                                            : 1 + rng_() % std::min<std::size_t>(
                                                               out.size() - pos, 3000);
                    k = std::clamp<std::size_t>(k, 1, out.size() - pos);
                    queue_.push_back({now + latency, to_server,
                                      Bytes(out.begin() + static_cast<std::ptrdiff_t>(pos),
                                            out.begin() + static_cast<std::ptrdiff_t>(pos + k))});
                    pos += k;
                }
            }
        }
        return any;
    }

    Mode mode_;
    std::mt19937_64 rng_;
    std::deque<Item> queue_;  // same latency both ways: FIFO order equals delivery order
};

// ------------------------------------------------------------------------------------------
// Handshake

// Pins the handshake: AUTH reaches the server with the client's domain/key/version, accept
// establishes both ends, and the peers learn each other's transport parameters.
TEST(Connection, HandshakeAcceptEstablishesBoth) {
    auto ccfg = client_config();
    ccfg.max_streams = 17;
    Pair p(ccfg, server_config());
    AuthInfo seen;
    int requests = 0;
    p.server.on_event = [&](const Event& e) {
        if (e.type == EventType::kAuthRequest) {
            ++requests;
            seen = e.auth;
            p.s().accept_auth();
        }
    };
    ASSERT_TRUE(p.handshake());
    EXPECT_EQ(requests, 1);
    EXPECT_EQ(seen.domain, "app.example.com");
    EXPECT_EQ(seen.api_key, "s3cret-key");
    EXPECT_EQ(seen.client_version, "hopgate/0.1");
    EXPECT_EQ(seen.version, kProtocolVersion);
    EXPECT_NE(find_event(p.client.events, EventType::kEstablished), nullptr);
    EXPECT_NE(find_event(p.server.events, EventType::kEstablished), nullptr);
    EXPECT_EQ(p.s().peer_params().initial_max_streams, 17u);
    EXPECT_EQ(p.c().peer_params().initial_max_data, server_config().initial_connection_window);
}

// Pins that a server does nothing before deciding: no kEstablished until accept_auth().
TEST(Connection, ServerWaitsForDecision) {
    Pair p(client_config(), server_config());
    p.server.on_event = nullptr;
    p.run_until([&] { return find_event(p.server.events, EventType::kAuthRequest) != nullptr; });
    ASSERT_NE(find_event(p.server.events, EventType::kAuthRequest), nullptr);
    p.run_until([] { return false; }, milliseconds(500));
    EXPECT_FALSE(p.c().is_established());
    EXPECT_FALSE(p.s().is_established());
    p.s().accept_auth();
    EXPECT_TRUE(p.handshake());
}

// Pins reject_auth: the client sees kConnectionClosed(kAuthFailed, by_peer) with the server's
// message and AUTH_FAIL reason; the server sees its own local close; both end closed.
TEST(Connection, RejectAuthClosesClientWithReason) {
    Pair p(client_config(), server_config());
    p.server.on_event = [&](const Event& e) {
        if (e.type == EventType::kAuthRequest) {
            p.s().reject_auth(AuthFailReason::kBadCredentials, "unknown domain or key");
        }
    };
    ASSERT_TRUE(p.run_until([&] { return p.c().is_closed() && p.s().is_closed(); }));
    const Event* ce = find_event(p.client.events, EventType::kConnectionClosed);
    ASSERT_NE(ce, nullptr);
    EXPECT_EQ(ce->code, static_cast<std::uint64_t>(WireError::kAuthFailed));
    EXPECT_EQ(ce->code, 0x11u);
    EXPECT_TRUE(ce->by_peer);
    EXPECT_EQ(ce->reason, "unknown domain or key");
    EXPECT_EQ(ce->auth_fail_reason, static_cast<std::uint64_t>(AuthFailReason::kBadCredentials));
    const Event* se = find_event(p.server.events, EventType::kConnectionClosed);
    ASSERT_NE(se, nullptr);
    EXPECT_EQ(se->code, 0x11u);
    EXPECT_FALSE(se->by_peer);
    EXPECT_EQ(find_event(p.client.events, EventType::kEstablished), nullptr);
}

// Pins automatic rejection of an unsupported protocol version: no kAuthRequest, and the reply
// carries AUTH_FAIL(kVersion) and CONNECTION_CLOSE(kAuthFailed).
TEST(Connection, VersionMismatchRejectedAutomatically) {
    Connection server(server_config(), kStart);
    AuthFrame auth;
    auth.version = kProtocolVersion + 1;
    auth.domain = "app.example.com";
    auth.api_key = "k";
    auth.client_version = "future/9";
    server.on_datagram(make_packet(0, {auth}), kStart);
    const auto evs = drain_events(server);
    EXPECT_EQ(find_event(evs, EventType::kAuthRequest), nullptr);
    const Event* close = find_event(evs, EventType::kConnectionClosed);
    ASSERT_NE(close, nullptr);
    EXPECT_EQ(close->code, static_cast<std::uint64_t>(WireError::kAuthFailed));
    const auto out = drain_datagrams(server, kStart);
    ASSERT_FALSE(out.empty());
    bool saw_fail = false, saw_close = false;
    for (const auto& pkt : out) {
        for (const auto& f : frames_of(pkt)) {
            if (const auto* af = std::get_if<AuthFailFrame>(&f)) {
                saw_fail = true;
                EXPECT_EQ(af->reason_code, static_cast<std::uint64_t>(AuthFailReason::kVersion));
            }
            if (const auto* cc = std::get_if<ConnectionCloseFrame>(&f)) {
                saw_close = true;
                EXPECT_EQ(cc->error_code, static_cast<std::uint64_t>(WireError::kAuthFailed));
            }
        }
    }
    EXPECT_TRUE(saw_fail);
    EXPECT_TRUE(saw_close);
    EXPECT_FALSE(server.is_established());
}

// Pins that no stream can be opened before the handshake completes (either side) or after close.
TEST(Connection, OpenStreamBeforeEstablishedNotReady) {
    Pair p(client_config(), server_config());
    p.server.on_event = nullptr;
    auto r = p.c().open_stream(request());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(has_error(r.error(), Errc::kNotReady));
    p.run_until([&] { return find_event(p.server.events, EventType::kAuthRequest) != nullptr; });
    auto rs = p.s().open_stream(request());
    ASSERT_FALSE(rs.ok());
    EXPECT_TRUE(has_error(rs.error(), Errc::kNotReady));
    p.s().accept_auth();
    ASSERT_TRUE(p.handshake());
    EXPECT_TRUE(p.c().open_stream(request()).ok());
    p.c().close(WireError::kNoError, "done");
    auto rc = p.c().open_stream(request());
    ASSERT_FALSE(rc.ok());
    EXPECT_TRUE(has_error(rc.error(), Errc::kClosed));
}

// ------------------------------------------------------------------------------------------
// Streams

// Pins that a peer-opened stream accepts no data before our head: kNotReady, then OK after
// send_meta; a second send_meta is kStreamState.
TEST(Connection, WriteBeforeSendMetaNotReady) {
    Pair p(client_config(), server_config());
    ASSERT_TRUE(p.handshake());
    auto id = p.c().open_stream(request("/x"));
    ASSERT_TRUE(id.ok());
    const Bytes data = pattern_bytes(0, 10);
    ASSERT_TRUE(p.run_until(
        [&] { return find_event(p.server.events, EventType::kStreamOpened) != nullptr; }));
    const Event* opened = find_event(p.server.events, EventType::kStreamOpened);
    EXPECT_EQ(opened->stream, *id);
    ASSERT_TRUE(opened->meta.has_value());
    EXPECT_EQ(opened->meta->target, "/x");
    auto w = p.s().stream_write(*id, data, false);
    ASSERT_FALSE(w.ok());
    EXPECT_TRUE(has_error(w.error(), Errc::kNotReady));
    EXPECT_TRUE(p.s().send_meta(*id, response()).ok());
    auto w2 = p.s().stream_write(*id, data, false);
    ASSERT_TRUE(w2.ok());
    EXPECT_EQ(*w2, data.size());
    auto again = p.s().send_meta(*id, response());
    EXPECT_TRUE(has_error(again.error(), Errc::kStreamState));
    auto unknown = p.s().stream_write(*id + 400, data, false);
    EXPECT_TRUE(has_error(unknown.error(), Errc::kUnknownStream));
}

// Reads everything readable on `id` into `sink`; returns true once FIN was read.
bool read_all(Connection& c, StreamId id, Bytes& sink) {
    std::array<std::uint8_t, 16384> buf{};
    for (;;) {
        auto r = c.stream_read(id, buf);
        if (!r.ok()) {
            return false;
        }
        sink.insert(sink.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r->bytes));
        if (r->fin) {
            return true;
        }
        if (r->bytes == 0) {
            return false;
        }
    }
}

std::size_t count_events(const std::vector<Event>& evs, EventType t, StreamId id) {
    return static_cast<std::size_t>(std::count_if(
        evs.begin(), evs.end(), [&](const Event& e) { return e.type == t && e.stream == id; }));
}

// Pins RESET_STREAM: the peer gets kStreamReset with our code; after it resets back, both ends
// free the stream (kStreamClosed exactly once each).
TEST(Connection, StreamResetPropagatesAndBothClose) {
    Pair p(client_config(), server_config());
    ASSERT_TRUE(p.handshake());
    auto id = p.c().open_stream(request());
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(p.c().stream_write(*id, pattern_bytes(0, 5000), false).ok());
    p.server.on_event = [&](const Event& e) {
        if (e.type == EventType::kStreamOpened) {
            ASSERT_TRUE(p.s().send_meta(e.stream, response()).ok());
        } else if (e.type == EventType::kStreamReset) {
            ASSERT_TRUE(p.s().stream_reset(e.stream, 0x43).ok());
        }
    };
    ASSERT_TRUE(p.run_until(
        [&] { return find_event(p.client.events, EventType::kStreamHead) != nullptr; }));
    ASSERT_TRUE(p.c().stream_reset(*id, 0x42).ok());
    auto w = p.c().stream_write(*id, pattern_bytes(0, 10), false);
    EXPECT_TRUE(has_error(w.error(), Errc::kStreamState));
    ASSERT_TRUE(p.run_until([&] {
        return count_events(p.client.events, EventType::kStreamClosed, *id) > 0 &&
               count_events(p.server.events, EventType::kStreamClosed, *id) > 0;
    }));
    const Event* sr = find_event(p.server.events, EventType::kStreamReset);
    ASSERT_NE(sr, nullptr);
    EXPECT_EQ(sr->stream, *id);
    EXPECT_EQ(sr->code, 0x42u);
    const Event* cr = find_event(p.client.events, EventType::kStreamReset);
    ASSERT_NE(cr, nullptr);
    EXPECT_EQ(cr->code, 0x43u);
    p.run_until([] { return false; }, seconds(1));
    EXPECT_EQ(count_events(p.client.events, EventType::kStreamClosed, *id), 1u);
    EXPECT_EQ(count_events(p.server.events, EventType::kStreamClosed, *id), 1u);
    EXPECT_EQ(p.c().open_streams(), 0u);
    EXPECT_EQ(p.s().open_streams(), 0u);
    EXPECT_TRUE(p.c().is_established());
}

// Pins STOP_SENDING: the sender gets kStreamStopSending with the code and answers with a
// RESET_STREAM carrying that code on its own; afterwards its writes fail and the stream closes.
TEST(Connection, StopSendingTriggersAutomaticReset) {
    Pair p(client_config(), server_config());
    ASSERT_TRUE(p.handshake());
    auto id = p.c().open_stream(request());
    ASSERT_TRUE(id.ok());
    bool reset_on_wire = false;
    std::uint64_t reset_code = 0;
    p.tap = [&](bool to_server, const Bytes& pkt) {
        if (to_server) {
            return;
        }
        for (const auto& f : frames_of(pkt)) {
            if (const auto* r = std::get_if<ResetStreamFrame>(&f); r && r->stream_id == *id) {
                reset_on_wire = true;
                reset_code = r->error_code;
            }
        }
    };
    Bytes server_got;
    bool server_fin = false;
    p.server.on_event = [&](const Event& e) {
        if (e.type == EventType::kAuthRequest) {
            p.s().accept_auth();
        } else if (e.type == EventType::kStreamOpened) {
            ASSERT_TRUE(p.s().send_meta(e.stream, response()).ok());
            ASSERT_TRUE(p.s().stream_write(e.stream, pattern_bytes(0, 100000), false).ok());
        } else if (e.type == EventType::kStreamReadable) {
            server_fin = read_all(p.s(), e.stream, server_got) || server_fin;
        }
    };
    ASSERT_TRUE(p.run_until(
        [&] { return find_event(p.client.events, EventType::kStreamHead) != nullptr; }));
    ASSERT_TRUE(p.c().stream_stop_sending(*id, 77).ok());
    ASSERT_TRUE(p.run_until(
        [&] { return find_event(p.server.events, EventType::kStreamStopSending) != nullptr; }));
    const Event* ss = find_event(p.server.events, EventType::kStreamStopSending);
    EXPECT_EQ(ss->stream, *id);
    EXPECT_EQ(ss->code, 77u);
    auto w = p.s().stream_write(*id, pattern_bytes(0, 10), false);
    EXPECT_TRUE(has_error(w.error(), Errc::kStreamState));
    ASSERT_TRUE(p.run_until([&] { return reset_on_wire; }));
    EXPECT_EQ(reset_code, 77u);
    // The client still finishes its own direction; then both ends free the stream.
    ASSERT_TRUE(p.c().stream_write(*id, pattern_bytes(0, 300), true).ok());
    ASSERT_TRUE(p.run_until([&] {
        return count_events(p.client.events, EventType::kStreamClosed, *id) > 0 &&
               count_events(p.server.events, EventType::kStreamClosed, *id) > 0;
    }));
    EXPECT_TRUE(server_fin);
    EXPECT_EQ(server_got, pattern_bytes(0, 300));
    // The client stopped reading: it must not be told about the reset it asked for.
    EXPECT_EQ(find_event(p.client.events, EventType::kStreamReset), nullptr);
}

// Closes `id` cleanly from both sides: client FIN, server head + FIN, both read to the end.
void finish_stream(Pair& p, StreamId id) {
    ASSERT_TRUE(p.c().stream_finish(id).ok());
    ASSERT_TRUE(p.run_until([&] { return count_events(p.client.events, EventType::kStreamClosed,
                                                      id) > 0 &&
                                         count_events(p.server.events, EventType::kStreamClosed,
                                                      id) > 0; }));
}

// Pins MAX_STREAMS: with max_streams=2 the third open fails with kStreamLimit until a stream
// closes and the server's MAX_STREAMS raises the limit.
TEST(Connection, MaxStreamsLimitsOpens) {
    auto scfg = server_config();
    scfg.max_streams = 2;
    Pair p(client_config(), scfg);
    Bytes sink;
    p.server.on_event = [&](const Event& e) {
        if (e.type == EventType::kAuthRequest) {
            p.s().accept_auth();
        } else if (e.type == EventType::kStreamOpened) {
            ASSERT_TRUE(p.s().send_meta(e.stream, response()).ok());
            ASSERT_TRUE(p.s().stream_finish(e.stream).ok());
        } else if (e.type == EventType::kStreamReadable) {
            read_all(p.s(), e.stream, sink);
        }
    };
    p.client.on_event = [&](const Event& e) {
        if (e.type == EventType::kStreamReadable) {
            read_all(p.c(), e.stream, sink);
        }
    };
    ASSERT_TRUE(p.handshake());
    auto a = p.c().open_stream(request());
    auto b = p.c().open_stream(request());
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(b.ok());
    auto c = p.c().open_stream(request());
    ASSERT_FALSE(c.ok());
    EXPECT_TRUE(has_error(c.error(), Errc::kStreamLimit));
    // Time passing alone does not lift the limit.
    p.run_until([] { return false; }, milliseconds(300));
    auto c2 = p.c().open_stream(request());
    EXPECT_TRUE(has_error(c2.error(), Errc::kStreamLimit));
    finish_stream(p, *a);
    ASSERT_TRUE(p.run_until([&] { return p.c().open_stream(request()).ok(); }, seconds(2)));
    auto d = p.c().open_stream(request());
    EXPECT_TRUE(has_error(d.error(), Errc::kStreamLimit));  // 2 open again (b and the new one)
}

// Pins the idle timeout: with the path cut, both ends report kConnectionClosed(kIdleTimeout)
// locally, not before idle_timeout and within idle_timeout plus a PTO margin.
TEST(Connection, IdleTimeoutClosesBothEnds) {
    auto ccfg = client_config();
    auto scfg = server_config();
    ccfg.idle_timeout = seconds(3);
    scfg.idle_timeout = seconds(3);
    Pair p(ccfg, scfg);
    ASSERT_TRUE(p.handshake());
    // Let the handshake's ACKs settle, then cut the path.
    p.run_until([] { return false; }, milliseconds(200));
    p.deliver = false;
    ASSERT_TRUE(p.run_until([&] { return p.c().is_closed() && p.s().is_closed(); }, seconds(30)));
    for (auto* sd : {&p.client, &p.server}) {
        const Event* e = find_event(sd->events, EventType::kConnectionClosed);
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->code, static_cast<std::uint64_t>(WireError::kIdleTimeout));
        EXPECT_FALSE(e->by_peer);
        ASSERT_TRUE(sd->closed_at.has_value());
        EXPECT_GE(*sd->closed_at - sd->last_rx, seconds(3));
        EXPECT_LE(*sd->closed_at - sd->last_rx, seconds(3) + milliseconds(500));
    }
    EXPECT_FALSE(p.c().next_timeout().has_value());
}

// Pins close(): CONNECTION_CLOSE reaches the peer, which reports by_peer with code and reason;
// the closer reports a local close; both end closed after draining.
TEST(Connection, CloseNotifiesPeer) {
    Pair p(client_config(), server_config());
    ASSERT_TRUE(p.handshake());
    p.c().close(WireError::kNoError, "client shutting down");
    EXPECT_TRUE(p.c().is_closing());
    ASSERT_TRUE(p.run_until([&] { return p.c().is_closed() && p.s().is_closed(); }));
    const Event* se = find_event(p.server.events, EventType::kConnectionClosed);
    ASSERT_NE(se, nullptr);
    EXPECT_TRUE(se->by_peer);
    EXPECT_EQ(se->code, 0u);
    EXPECT_EQ(se->reason, "client shutting down");
    const Event* ce = find_event(p.client.events, EventType::kConnectionClosed);
    ASSERT_NE(ce, nullptr);
    EXPECT_FALSE(ce->by_peer);
}

// ------------------------------------------------------------------------------------------
// Hostile input

// The AUTH packet a real client sends first.
Bytes first_client_packet() {
    Connection c(client_config(), kStart);
    auto out = drain_datagrams(c, kStart);
    EXPECT_EQ(out.size(), 1u);
    return out.empty() ? Bytes{} : out.front();
}

// Feeds `d` to a fresh server; returns its kConnectionClosed code, or -1 if still open.
std::int64_t close_code_after(const Bytes& d) {
    Connection s(server_config(), kStart);
    s.on_datagram(d, kStart);
    drain_datagrams(s, kStart);
    const auto evs = drain_events(s);
    const Event* e = find_event(evs, EventType::kConnectionClosed);
    if (!e) {
        EXPECT_FALSE(s.is_closing());
        return -1;
    }
    EXPECT_TRUE(s.is_closing());
    return static_cast<std::int64_t>(e->code);
}

constexpr auto kFrameEnc = static_cast<std::int64_t>(WireError::kFrameEncodingError);

// Pins that packets with a bad header (empty, bad flags, no packet number, no frames) close
// the connection with FRAME_ENCODING_ERROR.
TEST(ConnectionGarbage, BadHeaderIsFrameEncodingError) {
    EXPECT_EQ(close_code_after({}), kFrameEnc);
    for (const int flags : {0x00, 0x01, 0x80, 0xc0, 0xff, 0x3f}) {
        Bytes d = first_client_packet();
        d[0] = static_cast<std::uint8_t>(flags);
        EXPECT_EQ(close_code_after(d), kFrameEnc) << flags;
    }
    EXPECT_EQ(close_code_after({0x40}), kFrameEnc);        // no packet number
    EXPECT_EQ(close_code_after({0x40, 0x00}), kFrameEnc);  // no frames
    EXPECT_EQ(close_code_after({0x40, 0x80, 0x00}), kFrameEnc);  // truncated packet number
    EXPECT_EQ(close_code_after({0x40, 0x00, 0x03}), kFrameEnc);  // unknown frame type
    EXPECT_EQ(close_code_after({0x40, 0x00, 0x01, 0x1f}), kFrameEnc);  // PING, then garbage
}

// Pins that the client's AUTH packet truncated at every byte is rejected as a frame encoding
// error, and the whole packet is accepted.
TEST(ConnectionGarbage, TruncatedPacketsRejected) {
    const Bytes full = first_client_packet();
    ASSERT_GT(full.size(), 10u);
    for (std::size_t n = 0; n < full.size(); ++n) {
        EXPECT_EQ(close_code_after(Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n))),
                  kFrameEnc)
            << "prefix " << n;
    }
    EXPECT_EQ(close_code_after(full), -1);
}

bool known_wire_error(std::uint64_t c) {
    return c <= 0x8 || c == 0xa || (c >= 0x10 && c <= 0x14);
}

// Pins robustness against random datagrams, on fresh and on established servers: never a crash;
// a bad flags byte always closes with FRAME_ENCODING_ERROR; any other close uses a known code.
TEST(ConnectionGarbage, RandomDatagramsNeverCrash) {
    std::mt19937_64 rng(12345);
    for (int i = 0; i < 3000; ++i) {
        Bytes d(rng() % 64 + (i % 10 == 0 ? rng() % 1400 : 0));
        for (auto& b : d) {
            b = static_cast<std::uint8_t>(rng());
        }
        if (i % 2 == 0 && !d.empty()) {
            d[0] = 0x40;  // valid flags: the frames are exercised
            if (d.size() > 1) {
                d[1] &= 0x3f;
            }
        }
        const std::int64_t code = close_code_after(d);
        if (d.empty() || (d[0] & 0xc0) != 0x40) {
            EXPECT_EQ(code, kFrameEnc);
        } else if (code >= 0) {
            EXPECT_TRUE(known_wire_error(static_cast<std::uint64_t>(code))) << code;
        }
    }
    // Established connection: random packets after the handshake.
    for (int round = 0; round < 30; ++round) {
        Pair p(client_config(), server_config(), static_cast<std::uint64_t>(round));
        ASSERT_TRUE(p.handshake());
        for (int k = 0; k < 20 && !p.s().is_closing(); ++k) {
            Bytes d(1 + rng() % 200);
            for (auto& b : d) {
                b = static_cast<std::uint8_t>(rng());
            }
            d[0] = 0x40;
            p.s().on_datagram(d, p.now);
            p.settle();
        }
        p.run_until([] { return false; }, seconds(1));
        if (const Event* e = find_event(p.server.events, EventType::kConnectionClosed)) {
            EXPECT_TRUE(known_wire_error(e->code)) << e->code;
        }
    }
}

// Accepted server connection fed by a hand-crafted client (packet numbers from 0).
struct FakeClient {
    Connection server;
    std::uint64_t pn = 0;

    explicit FakeClient(ConnectionConfig scfg) : server(scfg, kStart) {
        AuthFrame a;
        a.domain = "app.example.com";
        a.api_key = "k";
        send({a});
        const auto evs = drain_events(server);
        EXPECT_NE(find_event(evs, EventType::kAuthRequest), nullptr);
        server.accept_auth();
        drain_datagrams(server, kStart);
        drain_events(server);
        EXPECT_TRUE(server.is_established());
    }
    void send(const std::vector<Frame>& frames) {
        server.on_datagram(make_packet(pn++, frames), kStart);
    }
    std::int64_t close_code() {
        const auto evs = drain_events(server);
        const Event* e = find_event(evs, EventType::kConnectionClosed);
        return e ? static_cast<std::int64_t>(e->code) : -1;
    }
};

const std::array<std::uint8_t, 64> kTen{};

// Pins stream-level flow control: a STREAM frame ending beyond the initial stream window closes
// with FLOW_CONTROL_ERROR; one ending exactly at it does not.
TEST(ConnectionFlowControl, StreamWindowExceeded) {
    const auto scfg = server_config();
    const std::uint64_t win = scfg.initial_stream_window;
    {
        FakeClient f(scfg);
        f.send({StreamFrame{0, win - 10, false, std::span(kTen).first(10)}});
        EXPECT_EQ(f.close_code(), -1);
    }
    {
        FakeClient f(scfg);
        f.send({StreamFrame{0, win - 10, false, std::span(kTen).first(11)}});
        EXPECT_EQ(f.close_code(), static_cast<std::int64_t>(WireError::kFlowControlError));
    }
    {
        // RESET_STREAM with a final size beyond the window is a flow control error too.
        FakeClient f(scfg);
        f.send({ResetStreamFrame{0, 1, win + 1}});
        EXPECT_EQ(f.close_code(), static_cast<std::int64_t>(WireError::kFlowControlError));
    }
}

// Pins connection-level flow control: two streams within their own windows but together beyond
// the connection window close with FLOW_CONTROL_ERROR.
TEST(ConnectionFlowControl, ConnectionWindowExceeded) {
    auto scfg = server_config();
    scfg.initial_stream_window = 256 * 1024;
    scfg.initial_connection_window = 256 * 1024;
    scfg.max_connection_window = 256 * 1024;  // no room to cover unread bytes: a fixed limit
    FakeClient f(scfg);
    f.send({StreamFrame{0, 200 * 1024 - 1, false, std::span(kTen).first(1)}});
    EXPECT_EQ(f.close_code(), -1);
    f.send({StreamFrame{4, 56 * 1024 - 1, false, std::span(kTen).first(1)}});
    EXPECT_EQ(f.close_code(), -1);  // exactly at the connection window (stream 2 opened too)
    f.send({StreamFrame{2, 0, false, std::span(kTen).first(1)}});
    EXPECT_EQ(f.close_code(), static_cast<std::int64_t>(WireError::kFlowControlError));
}

// Pins MAX_STREAMS enforcement on the receiver: a peer opening a stream beyond our limit closes
// with STREAM_LIMIT_ERROR.
TEST(ConnectionFlowControl, PeerBeyondStreamLimit) {
    auto scfg = server_config();
    scfg.max_streams = 3;
    FakeClient ok(scfg);
    ok.send({StreamFrame{4, 100, false, std::span(kTen).first(1)}});  // seq 2: allowed
    EXPECT_EQ(ok.close_code(), -1);
    FakeClient bad(scfg);
    bad.send({StreamFrame{6, 100, false, std::span(kTen).first(1)}});  // seq 3: beyond
    EXPECT_EQ(bad.close_code(), static_cast<std::int64_t>(WireError::kStreamLimitError));
}

// ------------------------------------------------------------------------------------------
// Transfers

struct Transfer {
    std::uint64_t total = 0;
    std::uint64_t written = 0;
    StreamId id = 0;
    bool opened = false;
    bool fin_sent = false;
    Bytes got;
    bool fin_read = false;
    bool corrupt = false;
    std::uint64_t read_limit = std::numeric_limits<std::uint64_t>::max();  // reader stops here
    Bytes chunk;  // the next pattern bytes to write, kept while the stream is blocked
    std::uint64_t chunk_at = std::numeric_limits<std::uint64_t>::max();
};

// Client → server transfer of `t.total` pattern bytes on one stream; returns when FIN is read.
void run_transfer(Pair& p, Transfer& t, core::Duration limit = seconds(120)) {
    p.server.on_event = [&](const Event& e) {
        if (e.type == EventType::kAuthRequest) {
            p.s().accept_auth();
        } else if (e.type == EventType::kStreamOpened) {
            ASSERT_TRUE(p.s().send_meta(e.stream, response()).ok());
            ASSERT_TRUE(p.s().stream_finish(e.stream).ok());
        } else if (e.type == EventType::kStreamReadable) {
            std::array<std::uint8_t, 32768> buf{};
            for (;;) {
                const std::uint64_t room = t.read_limit - t.got.size();
                if (room == 0) {
                    break;  // the reader pauses; the rest stays buffered
                }
                auto r = p.s().stream_read(
                    e.stream, std::span<std::uint8_t>(buf).first(
                                  static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), room))));
                ASSERT_TRUE(r.ok());
                for (std::size_t i = 0; i < r->bytes; ++i) {
                    if (buf[i] != pattern(t.got.size() + i)) {
                        t.corrupt = true;
                    }
                }
                t.got.insert(t.got.end(), buf.begin(),
                             buf.begin() + static_cast<std::ptrdiff_t>(r->bytes));
                if (r->fin) {
                    t.fin_read = true;
                    break;
                }
                if (r->bytes == 0) {
                    break;
                }
            }
        }
    };
    p.client.on_event = [&](const Event& e) {
        if (e.type == EventType::kStreamReadable) {
            Bytes sink;
            read_all(p.c(), e.stream, sink);
        }
    };
    p.tick = [&] {
        if (!p.c().is_established()) {
            return;
        }
        if (!t.opened) {
            auto id = p.c().open_stream(request("/upload"));
            ASSERT_TRUE(id.ok());
            t.id = *id;
            t.opened = true;
        }
        while (t.written < t.total) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(
                t.total - t.written, 64 * 1024));
            if (t.chunk_at != t.written || t.chunk.size() != n) {
                t.chunk = pattern_bytes(t.written, n);
                t.chunk_at = t.written;
            }
            auto r = p.c().stream_write(t.id, t.chunk, t.written + n == t.total);
            if (!r.ok()) {
                ASSERT_TRUE(has_error(r.error(), Errc::kWouldBlock));
                break;
            }
            t.written += *r;
            if (*r < n) {
                break;
            }
            t.fin_sent = t.written == t.total;
        }
    };
    p.run_until([&] { return t.fin_read; }, limit);
    p.tick = nullptr;
}

// Pins a 1 MiB datagram-mode transfer: every byte delivered once, in order, FIN last.
TEST(ConnectionTransfer, DatagramOneMiB) {
    Pair p(client_config(), server_config());
    Transfer t;
    t.total = 1 << 20;
    run_transfer(p, t);
    EXPECT_TRUE(t.fin_read);
    EXPECT_FALSE(t.corrupt);
    EXPECT_EQ(t.got.size(), t.total);
    EXPECT_EQ(p.c().stats().packets_lost, 0u);
}

// Pins pacing in quanta below a 1 ms smoothed RTT: on a 0.1 ms path a bulk sender is woken
// once per quantum and sends many packets each time (not one wake-up per pacing gap of a few
// microseconds, which starved loopback tunnels of CPU), and the transfer stays intact.
TEST(ConnectionPacing, SubMillisecondRttSendsInQuanta) {
    Pair p(client_config(), server_config());
    p.latency = std::chrono::microseconds(50);
    Instant last{};
    std::uint64_t wakeups = 0;
    std::uint64_t datagrams = 0;
    p.tap = [&](bool to_server, const Bytes&) {
        if (!to_server) {
            return;
        }
        ++datagrams;
        if (p.now != last) {
            ++wakeups;
            last = p.now;
        }
    };
    Transfer t;
    t.total = 16 << 20;
    run_transfer(p, t);
    ASSERT_TRUE(t.fin_read);
    EXPECT_FALSE(t.corrupt);
    EXPECT_EQ(t.got.size(), t.total);
    ASSERT_GT(wakeups, 0u);
    const double per_wakeup = static_cast<double>(datagrams) / static_cast<double>(wakeups);
    EXPECT_GE(per_wakeup, 12.0) << datagrams << " datagrams in " << wakeups << " sending instants";
    std::printf("[ pacing ] 0.1 ms RTT: %llu datagrams in %llu sending instants (%.1f each)\n",
                static_cast<unsigned long long>(datagrams),
                static_cast<unsigned long long>(wakeups), per_wakeup);
}

// Pins stream mode (TLS/TCP framing): handshake and a 1 MiB transfer with the byte stream
// delivered in random-sized chunks, several seeds.
TEST(ConnectionTransfer, StreamModeOneMiBRandomSplits) {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        SCOPED_TRACE(seed);
        Pair p(client_config(Mode::kStream), server_config(Mode::kStream), seed);
        ASSERT_TRUE(p.handshake());
        Transfer t;
        t.total = 1 << 20;
        run_transfer(p, t);
        EXPECT_TRUE(t.fin_read);
        EXPECT_FALSE(t.corrupt);
        EXPECT_EQ(t.got.size(), t.total);
    }
}

// Pins stream-mode record reassembly at the finest split: every byte delivered on its own.
TEST(ConnectionTransfer, StreamModeSplitAtEveryByte) {
    Pair p(client_config(Mode::kStream), server_config(Mode::kStream));
    p.chunker = [](std::size_t) { return std::size_t{1}; };
    Transfer t;
    t.total = 20000;
    run_transfer(p, t);
    EXPECT_TRUE(t.fin_read);
    EXPECT_FALSE(t.corrupt);
    EXPECT_EQ(t.got.size(), t.total);
    EXPECT_TRUE(p.c().is_established());
    EXPECT_TRUE(p.s().is_established());
}

// Pins stream-mode hostile input: a zero or oversized record length, or an ACK frame (which
// has no place on a reliable byte stream), closes the connection.
TEST(ConnectionGarbage, StreamModeBadRecords) {
    auto code_after = [](const Bytes& b) -> std::int64_t {
        Connection s(server_config(Mode::kStream), kStart);
        s.on_stream_bytes(b, kStart);
        const auto evs = drain_events(s);
        const Event* e = find_event(evs, EventType::kConnectionClosed);
        return e ? static_cast<std::int64_t>(e->code) : -1;
    };
    EXPECT_EQ(code_after({0x00}), kFrameEnc);                          // empty record
    EXPECT_EQ(code_after({0x80, 0x01, 0x00, 0x00}), kFrameEnc);         // 64 KiB > 16 KiB max
    EXPECT_EQ(code_after({0x02, 0x03, 0x00}), kFrameEnc);               // unknown frame type
    EXPECT_EQ(code_after({0x05, 0x02, 0x00, 0x00, 0x00, 0x00}),
              static_cast<std::int64_t>(WireError::kProtocolViolation));  // ACK in stream mode
    EXPECT_EQ(code_after({0x05, 0x01}), -1);  // partial record: waits for more
    // Random byte streams in random chunks: never a crash, any close uses a known code.
    std::mt19937_64 rng(99);
    for (int i = 0; i < 2000; ++i) {
        Connection s(server_config(Mode::kStream), kStart);
        Bytes b(rng() % 300);
        for (auto& x : b) {
            x = static_cast<std::uint8_t>(rng());
        }
        std::size_t pos = 0;
        while (pos < b.size()) {
            const std::size_t k = std::min<std::size_t>(1 + rng() % 50, b.size() - pos);
            s.on_stream_bytes(std::span(b).subspan(pos, k), kStart);
            pos += k;
        }
        Bytes out(65536);
        while (s.write_stream_bytes(out, kStart) > 0) {
        }
        for (const auto& e : drain_events(s)) {
            if (e.type == EventType::kConnectionClosed) {
                EXPECT_TRUE(known_wire_error(e.code)) << e.code;
            }
        }
    }
}

// Pins that bytes arriving on a stream after we sent STOP_SENDING (data in flight, and the
// RESET_STREAM final size) give their connection credit back: once every stream is closed the
// receiver holds no buffered bytes, and further streams still get through.
TEST(Connection, StoppedStreamReturnsConnectionCredit) {
    auto scfg = server_config();
    scfg.initial_connection_window = 512 * 1024;  // fixed windows: a leak cannot be masked
    scfg.max_connection_window = 512 * 1024;
    scfg.initial_stream_window = 256 * 1024;
    scfg.max_stream_window = 256 * 1024;
    Pair p(client_config(), scfg);
    p.server.on_event = [&](const Event& e) {
        if (e.type == EventType::kAuthRequest) {
            p.s().accept_auth();
        } else if (e.type == EventType::kStreamOpened) {
            // Refuse the upload at once while its data is still in flight.
            ASSERT_TRUE(p.s().stream_stop_sending(e.stream, 9).ok());
            ASSERT_TRUE(p.s().stream_reset(e.stream, 9).ok());
        }
    };
    ASSERT_TRUE(p.handshake());
    for (int i = 0; i < 8; ++i) {
        auto id = p.c().open_stream(request("/refused"));
        ASSERT_TRUE(id.ok());
        ASSERT_TRUE(p.c().stream_write(*id, pattern_bytes(0, 200 * 1024), true).ok());
        ASSERT_TRUE(p.run_until([&] {
            return count_events(p.client.events, EventType::kStreamClosed, *id) > 0 &&
                   count_events(p.server.events, EventType::kStreamClosed, *id) > 0;
        })) << "stream " << i;
    }
    p.run_until([] { return false; }, seconds(1));
    EXPECT_EQ(p.s().open_streams(), 0u);
    EXPECT_EQ(p.s().buffered_bytes(), 0u);
    // A normal upload must still complete.
    Transfer t;
    t.total = 1 << 20;
    run_transfer(p, t, seconds(30));
    EXPECT_TRUE(t.fin_read);
    EXPECT_EQ(t.got.size(), t.total);
}

// Pins that a RESET_STREAM on a stream we already stopped returns the connection credit of the
// bytes it declares but that never arrived (lost or abandoned in flight): after STOP_SENDING and
// the peer's reset, nothing is buffered for that stream any more.
TEST(ConnectionFlowControl, ResetAfterStopSendingReturnsCredit) {
    FakeClient f(server_config());
    Bytes head;
    ASSERT_TRUE(encode_meta(request(), head));
    f.send({StreamFrame{0, 0, false, head}});
    const auto evs = drain_events(f.server);
    ASSERT_NE(find_event(evs, EventType::kStreamOpened), nullptr);
    EXPECT_EQ(f.server.buffered_bytes(), 0u);  // the head was consumed
    ASSERT_TRUE(f.server.stream_stop_sending(0, 9).ok());
    f.send({ResetStreamFrame{0, 9, 100000}});
    EXPECT_EQ(f.close_code(), -1);
    EXPECT_EQ(f.server.buffered_bytes(), 0u);
}

// ------------------------------------------------------------------------------------------
// Stalled readers (issue 14): streams whose reader never reads must not take the connection
// credit or the send budget other streams need.

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;

struct StallRun {
    bool done = false;             // the normal stream's data was all read
    bool intact = true;
    core::Duration took{};         // virtual time for the normal stream, open to FIN read
    std::uint64_t rx_buffered = 0;  // receiver: peak buffered bytes
    std::uint64_t rx_cover = 0;     // receiver: unread cover while stalled
    std::uint64_t tx_ahead = 0;     // sender: bytes beyond stream credit while stalled
    std::uint64_t tx_buffered = 0;  // sender: peak buffered bytes
};

// The server opens `stalled` streams whose data is never read, lets them take what they can,
// then opens one normal stream carrying `normal` bytes that are read at once. Data flows client
// -> server on every stream (`download`: the responses, as in the gateway) or server -> client
// (uploads to a local service that does not read). The senders write as much as they are allowed:
// `stalled_bytes` per stalled stream.
// With `read_first`, the stalled streams are first read at full speed up to that many bytes each
// (their windows auto-tune), and only then stop.
StallRun stall_run(Mode mode, bool download, int stalled, std::uint64_t stalled_bytes,
                   std::uint64_t normal, ConnectionConfig ccfg, ConnectionConfig scfg,
                   std::uint64_t read_first = 0) {
    ccfg.mode = mode;
    scfg.mode = mode;
    Pair p(ccfg, scfg);
    Connection& tx = download ? p.c() : p.s();
    Connection& rx = download ? p.s() : p.c();
    struct Out {
        std::uint64_t total = 0;
        std::uint64_t written = 0;
    };
    std::map<StreamId, Out> out;  // the sender's streams
    const Bytes pat = pattern_bytes(0, static_cast<std::size_t>(std::max(normal, stalled_bytes)));
    StreamId normal_id = std::numeric_limits<StreamId>::max();
    std::uint64_t got = 0;
    bool fin = false;
    bool intact = true;
    std::map<StreamId, std::uint64_t> stalled_read;
    auto on_rx = [&](const Event& e) {
        if (e.type != EventType::kStreamReadable) {
            return;
        }
        std::array<std::uint8_t, 16384> buf{};
        if (e.stream != normal_id) {
            // A stalled stream: read up to read_first, then never again.
            std::uint64_t& done = stalled_read[e.stream];
            while (done < read_first) {
                auto r = rx.stream_read(e.stream, std::span(buf).first(static_cast<std::size_t>(
                                                      std::min<std::uint64_t>(buf.size(),
                                                                              read_first - done))));
                ASSERT_TRUE(r.ok());
                done += r->bytes;
                if (r->bytes == 0 || r->fin) {
                    break;
                }
            }
            return;
        }
        for (;;) {
            auto r = rx.stream_read(e.stream, buf);
            ASSERT_TRUE(r.ok());
            for (std::size_t i = 0; i < r->bytes; ++i) {
                intact = intact && buf[i] == pattern(got + i);
            }
            got += r->bytes;
            fin = fin || r->fin;
            if (r->fin || r->bytes == 0) {
                return;
            }
        }
    };
    p.server.on_event = [&](const Event& e) {
        if (e.type == EventType::kAuthRequest) {
            p.s().accept_auth();
        } else if (!download) {
            on_rx(e);
        } else if (e.type != EventType::kStreamHead) {
            on_rx(e);
        }
    };
    p.client.on_event = [&](const Event& e) {
        if (e.type == EventType::kStreamOpened) {
            ASSERT_TRUE(p.c().send_meta(e.stream, response()).ok());
            if (download) {
                out[e.stream].total = e.meta->target == "/normal" ? normal : stalled_bytes;
            }
        } else if (!download) {
            on_rx(e);
        }
    };
    p.tick = [&] {
        for (auto& [id, o] : out) {
            while (o.written < o.total) {
                const std::size_t n = static_cast<std::size_t>(
                    std::min<std::uint64_t>(o.total - o.written, 64 * 1024));
                auto r = tx.stream_write(id, std::span(pat).subspan(o.written, n),
                                         o.written + n == o.total);
                if (!r.ok()) {
                    EXPECT_TRUE(has_error(r.error(), Errc::kWouldBlock));
                    break;
                }
                o.written += *r;
                if (*r < n) {
                    break;
                }
            }
        }
    };
    StallRun res;
    if (!p.handshake()) {
        ADD_FAILURE() << "no handshake";
        return res;
    }
    for (int i = 0; i < stalled; ++i) {
        auto id = p.s().open_stream(request("/stall"));
        EXPECT_TRUE(id.ok());
        if (id.ok() && !download) {
            out[*id].total = stalled_bytes;
        }
    }
    p.run_until([] { return false; }, seconds(2));  // the stalled streams take what they can
    res.rx_cover = rx.stats().unread_cover;
    res.tx_ahead = tx.stats().send_ahead;
    const Instant t0 = p.now;
    auto id = p.s().open_stream(request("/normal"));
    EXPECT_TRUE(id.ok());
    if (!id.ok()) {
        return res;
    }
    normal_id = *id;
    if (!download) {
        out[normal_id].total = normal;
    }
    res.done = p.run_until([&] { return fin; }, seconds(30));
    res.took = p.now - t0;
    res.intact = intact && got == normal;
    res.rx_buffered = rx.stats().max_buffered_bytes;
    res.tx_buffered = tx.stats().max_buffered_bytes;
    p.tick = nullptr;
    return res;
}

class StalledReaders : public ::testing::TestWithParam<std::tuple<Mode, bool>> {};

// Pins the fix of the frozen domain: 20 streams whose reader never reads, each with 4 MiB to send
// (the sender's whole stream buffer), beside one normal 1 MiB stream. On the old code the
// unread bytes filled the receiver's 1 MiB connection window and the stalled streams' unsent bytes
// the sender's 32 MiB send budget, and the normal stream never finished. Now it finishes about as
// fast as without the stalled streams, the receiver buffers no more than max_connection_window,
// and the sender holds at most half its send budget beyond credit. Both modes, both directions.
TEST_P(StalledReaders, OthersStillTransferAtFullSpeed) {
    const auto [mode, download] = GetParam();
    const auto ccfg = client_config();
    const auto scfg = server_config();
    const StallRun base = stall_run(mode, download, 0, 0, kMiB, ccfg, scfg);
    ASSERT_TRUE(base.done);
    const StallRun r = stall_run(mode, download, 20, 4 * kMiB, kMiB, ccfg, scfg);
    EXPECT_TRUE(r.done) << "the normal stream did not finish beside 20 stalled streams";
    std::printf("[ stall ] 1 MiB: %lld ms alone, %lld ms beside 20 stalled streams; receiver "
                "buffered %llu KiB (cover %llu KiB), sender %llu KiB beyond credit\n",
                static_cast<long long>(std::chrono::duration_cast<milliseconds>(base.took).count()),
                static_cast<long long>(std::chrono::duration_cast<milliseconds>(r.took).count()),
                static_cast<unsigned long long>(r.rx_buffered / kKiB),
                static_cast<unsigned long long>(r.rx_cover / kKiB),
                static_cast<unsigned long long>(r.tx_ahead / kKiB));
    EXPECT_TRUE(r.intact);
    EXPECT_LE(r.took, 2 * base.took + milliseconds(100))
        << "stalled " << std::chrono::duration_cast<milliseconds>(r.took).count()
        << " ms, alone " << std::chrono::duration_cast<milliseconds>(base.took).count() << " ms";
    // Receiver memory: the stalled streams' windows (they never grow: nothing is read), the
    // normal stream, heads; never more than the connection maximum.
    const auto& rxcfg = download ? scfg : ccfg;
    EXPECT_LE(r.rx_buffered, rxcfg.max_connection_window);
    EXPECT_LE(r.rx_buffered, 20 * rxcfg.initial_stream_window + 2 * kMiB);
    EXPECT_GT(r.rx_cover, 0u);  // the unread bytes are beyond half the window: covered
    // Sender memory: bytes beyond credit capped at half the send budget.
    const auto& txcfg = download ? ccfg : scfg;
    EXPECT_LE(r.tx_ahead, txcfg.connection_send_buffer / 2);
    EXPECT_GT(r.tx_ahead, 0u);
    EXPECT_LE(r.tx_buffered, txcfg.connection_send_buffer);
}

// Pins each half of the fix on its own: (a) receive side: 8 stalled streams sending exactly their
// stream window (nothing beyond credit) hold 2 MiB of unread bytes, twice the 1 MiB connection
// window; (b) send side: with a receiver window too large to matter, 20 stalled streams with 4 MiB
// each would fill the sender's 32 MiB budget with bytes they may not send.
TEST_P(StalledReaders, EachLimitOnItsOwn) {
    const auto [mode, download] = GetParam();
    {
        const StallRun r = stall_run(mode, download, 8, 256 * kKiB, kMiB, client_config(),
                                     server_config());
        EXPECT_TRUE(r.done) << "unread bytes took the connection window";
        EXPECT_TRUE(r.intact);
        EXPECT_LT(r.tx_ahead, 8 * kKiB);  // the heads: nothing else beyond credit
    }
    {
        auto ccfg = client_config();
        auto scfg = server_config();
        for (auto* c : {&ccfg, &scfg}) {
            c->initial_connection_window = 64 * kMiB;
            c->max_connection_window = 64 * kMiB;
        }
        const StallRun r = stall_run(mode, download, 20, 4 * kMiB, kMiB, ccfg, scfg);
        EXPECT_TRUE(r.done) << "stalled streams took the send budget";
        EXPECT_TRUE(r.intact);
        EXPECT_EQ(r.rx_cover, 0u);  // under half the window: no cover needed
    }
}

// Pins the limits on streams that read fast at first and then stop (a visitor whose kernel
// buffers take megabytes before it stalls): their windows grew while they were read, and the
// credit they hold then must still leave the normal stream enough. Stream windows grow out of a
// pool of half max_connection_window, and the connection window shrinks to give the cover room.
TEST_P(StalledReaders, FastThenStalled) {
    const auto [mode, download] = GetParam();
    const auto ccfg = client_config();
    const auto scfg = server_config();
    const StallRun base = stall_run(mode, download, 0, 0, kMiB, ccfg, scfg);
    ASSERT_TRUE(base.done);
    const StallRun r = stall_run(mode, download, 20, 16 * kMiB, kMiB, ccfg, scfg, 3 * kMiB);
    EXPECT_TRUE(r.done) << "the normal stream did not finish beside 20 stalled streams";
    EXPECT_TRUE(r.intact);
    // The stalled streams hold the growth pool, so the normal stream keeps its initial 256 KiB
    // window: about 128 KiB per 20 ms round trip instead of an auto-tuned window.
    EXPECT_LE(r.took, 4 * base.took + milliseconds(300))
        << "stalled " << std::chrono::duration_cast<milliseconds>(r.took).count()
        << " ms, alone " << std::chrono::duration_cast<milliseconds>(base.took).count() << " ms";
    std::printf("[ stall ] 1 MiB: %lld ms alone, %lld ms beside 20 streams stalled after 3 MiB; "
                "receiver buffered %llu KiB\n",
                static_cast<long long>(std::chrono::duration_cast<milliseconds>(base.took).count()),
                static_cast<long long>(std::chrono::duration_cast<milliseconds>(r.took).count()),
                static_cast<unsigned long long>(r.rx_buffered / kKiB));
    const auto& rxcfg = download ? scfg : ccfg;
    EXPECT_LE(r.rx_buffered, rxcfg.max_connection_window);
    // The initial windows plus the growth pool.
    EXPECT_LE(r.rx_buffered, 21 * rxcfg.initial_stream_window + rxcfg.max_connection_window / 2 +
                                 kMiB);
}

INSTANTIATE_TEST_SUITE_P(, StalledReaders,
                         ::testing::Combine(::testing::Values(Mode::kDatagram, Mode::kStream),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                             return std::string(std::get<0>(param_info.param) == Mode::kDatagram
                                                    ? "Datagram"
                                                    : "Stream") +
                                    (std::get<1>(param_info.param) ? "Download" : "Upload");
                         });

// Pins the bound and the bookkeeping of the cover: with a shared budget, the cover is reserved
// there (used == what the connection holds), window + cover never exceed max_connection_window,
// and it all returns once the stalled streams are abandoned (STOP_SENDING) and the connection ends.
TEST(StalledReadersCover, ReservedInTheBudgetAndReturned) {
    auto budget = std::make_shared<CreditBudget>(64 * kMiB);
    auto scfg = server_config();
    scfg.credit_budget = budget;
    scfg.max_connection_window = 4 * kMiB;  // 40 x 256 KiB of unread bytes do not fit
    {
        Pair p(client_config(), scfg);
        std::vector<StreamId> ids;
        p.client.on_event = [&](const Event& e) {
            if (e.type == EventType::kStreamOpened) {
                ASSERT_TRUE(p.c().send_meta(e.stream, response()).ok());
                auto r = p.c().stream_write(e.stream, pattern_bytes(0, 256 * kKiB), false);
                ASSERT_TRUE(r.ok());
            }
        };
        ASSERT_TRUE(p.handshake());
        for (int i = 0; i < 40; ++i) {
            auto id = p.s().open_stream(request("/stall"));
            ASSERT_TRUE(id.ok());
            ids.push_back(*id);
        }
        p.run_until([] { return false; }, seconds(2));
        const auto& st = p.s().stats();
        EXPECT_GT(st.unread_cover, 0u);
        EXPECT_LE(st.connection_window + st.unread_cover, scfg.max_connection_window);
        EXPECT_LE(p.s().buffered_bytes(), scfg.max_connection_window);
        EXPECT_EQ(budget->used(), st.credit_reserved);
        EXPECT_GE(st.credit_reserved, st.unread_cover);
        for (StreamId id : ids) {
            ASSERT_TRUE(p.s().stream_stop_sending(id, 9).ok());
        }
        p.run_until([] { return false; }, seconds(1));
        EXPECT_EQ(p.s().buffered_bytes(), 0u);
        EXPECT_EQ(p.s().stats().unread_cover, 0u);
        EXPECT_EQ(budget->used(), p.s().stats().credit_reserved);
    }
    EXPECT_EQ(budget->used(), 0u);
    EXPECT_EQ(budget->members(), 0u);
}

// ------------------------------------------------------------------------------------------
// Shared receive-credit budget (SPEC §4: a global memory budget stops granting credit)

// Small windows keep these runs short: 256 KiB initial, auto-tuning up to 8 MiB.
ConnectionConfig budgeted_server(const std::shared_ptr<CreditBudget>& budget) {
    auto c = server_config();
    c.initial_connection_window = 256 * kKiB;
    c.max_connection_window = 8 * kMiB;
    c.credit_budget = budget;
    return c;
}

struct PausedUpload {
    std::uint64_t buffered = 0;  // the server's peak buffered bytes
    std::uint64_t window = 0;    // its connection window at the end
};

// The server reads 6 MiB of a 12 MiB upload at full speed (its window auto-tunes up), then its
// reader pauses: what it buffers from then on is bounded by the window it reached.
PausedUpload paused_upload(const std::shared_ptr<CreditBudget>& budget) {
    Pair p(client_config(), budgeted_server(budget));
    Transfer t;
    t.total = 12 * kMiB;
    t.read_limit = 6 * kMiB;
    run_transfer(p, t, seconds(5));
    EXPECT_EQ(t.got.size(), t.read_limit);
    EXPECT_FALSE(t.corrupt);
    return {p.s().stats().max_buffered_bytes, p.s().stats().connection_window};
}

// Pins the bound: with a budget, the connection window grows only by what the budget grants, so a
// paused reader buffers at most the initial window plus the budget. The same run without a budget
// shows the window would have grown well past that (so the check can fail).
TEST(CreditBudget, BoundsWhatAPausedReaderBuffers) {
    const std::uint64_t initial = budgeted_server(nullptr).initial_connection_window;
    const PausedUpload free = paused_upload(nullptr);
    EXPECT_GT(free.window, initial + 2 * kMiB);
    // (The paused stream's own window, grown from the pool of half the 8 MiB maximum, binds
    // what it buffers here.)
    EXPECT_GT(free.buffered, initial + kMiB);

    auto budget = std::make_shared<CreditBudget>(512 * kKiB);
    const PausedUpload capped = paused_upload(budget);
    EXPECT_LE(capped.window, initial + 512 * kKiB);
    EXPECT_LE(capped.buffered, initial + 512 * kKiB + 4 * kKiB);  // + the response head
    EXPECT_GT(budget->denied(), 0u);
    // The connection is gone: everything it reserved is back.
    EXPECT_EQ(budget->used(), 0u);
    EXPECT_EQ(budget->members(), 0u);
}

// Pins the sharing rule: a lone tunnel may use the whole budget; when a second one needs credit
// and the budget is under pressure, the first gives back down to its fair share at its next
// credit updates, the second then grows into what was freed, and nothing is left reserved when
// both end.
TEST(CreditBudget, BusyTunnelsShareIt) {
    auto budget = std::make_shared<CreditBudget>(2 * kMiB);
    const auto scfg = budgeted_server(budget);
    auto upload = [](Pair& p, std::uint64_t mib) {
        Transfer t;
        t.total = mib * kMiB;
        run_transfer(p, t, seconds(30));
        EXPECT_TRUE(t.fin_read);
        EXPECT_FALSE(t.corrupt);
    };
    {
        Pair a(client_config(), scfg);
        upload(a, 12);
        // Alone: 256 KiB -> 512 KiB -> 1 MiB -> 2 MiB, 1792 KiB reserved (4 MiB would not fit).
        EXPECT_EQ(a.s().stats().credit_reserved, 1792 * kKiB);
        EXPECT_EQ(budget->used(), 1792 * kKiB);
        {
            Pair b(client_config(), scfg);
            upload(b, 12);
            const std::uint64_t b_first = b.s().stats().credit_reserved;
            EXPECT_LE(b_first, 256 * kKiB);  // only what was left
            // A moves data again: over its share (1 MiB) under pressure, so it shrinks.
            upload(a, 4);
            EXPECT_LE(a.s().stats().credit_reserved, budget->fair_share());
            // B grows into the freed credit.
            upload(b, 12);
            EXPECT_GT(b.s().stats().credit_reserved, b_first);
            EXPECT_LE(budget->used(), budget->capacity());
            EXPECT_EQ(budget->used(),
                      a.s().stats().credit_reserved + b.s().stats().credit_reserved);
        }
        EXPECT_EQ(budget->members(), 1u);
        EXPECT_EQ(budget->used(), a.s().stats().credit_reserved);
    }
    EXPECT_EQ(budget->used(), 0u);
    EXPECT_EQ(budget->members(), 0u);
}

}  // namespace
}  // namespace hopgate::proto
