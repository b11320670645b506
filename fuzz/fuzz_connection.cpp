// libFuzzer target for the tunnel state machine (proto/connection.hpp), server role.
//
// The input is a script of records: `op` (1 byte), `len` (2 bytes, big endian), then `len`
// payload bytes for ops that carry data:
//   op % 4 == 0: payload is one datagram for the datagram-mode server;
//   op % 4 == 1: payload is a chunk of the byte stream for the stream-mode server;
//   op % 4 == 2: no payload; advance the clock by `len` ms and fire due timers;
//   op % 4 == 3: no payload; application call chosen by `len` (ping, close, resets, ...).
// After every record both connections are drained: write_*() until 0, every event handled
// (AUTH accepted, streams answered and read), timers fired. The check is "no crash, no sanitizer
// report, bounded work and memory"; each drain loop is capped so a livelock shows up as a failure.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "proto/connection.hpp"

namespace {

using namespace hopgate::proto;
using hopgate::core::Instant;

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

ConnectionConfig config(Mode mode) {
    ConnectionConfig c;
    c.role = Role::kServer;
    c.mode = mode;
    // Small windows keep the memory a hostile peer can pin well under the RSS limit.
    c.initial_stream_window = 128 * 1024;
    c.max_stream_window = 256 * 1024;
    c.initial_connection_window = 256 * 1024;
    c.max_connection_window = 1024 * 1024;
    c.max_streams = 16;
    c.stream_send_buffer = 256 * 1024;
    c.connection_send_buffer = 1024 * 1024;
    c.idle_timeout = std::chrono::seconds(30);
    return c;
}

struct Harness {
    Connection conn;
    Mode mode;
    std::vector<std::uint8_t> out;
    std::vector<std::uint8_t> scratch = std::vector<std::uint8_t>(4096);
    std::vector<StreamId> streams;  // peer streams seen (for API ops)

    Harness(Mode m, Instant now) : conn(config(m), now), mode(m), out(m == Mode::kDatagram ? 1500 : 65536) {}

    void drain(Instant now) {
        for (int round = 0; round < 64; ++round) {
            bool any = false;
            for (int i = 0; i < 4096; ++i) {
                const std::size_t n = mode == Mode::kDatagram ? conn.write_datagram(out, now)
                                                              : conn.write_stream_bytes(out, now);
                if (n == 0) {
                    break;
                }
                check(n <= out.size());
                any = true;
                check(i < 4095);  // write_*() must eventually return 0
            }
            Event e;
            while (conn.poll_event(e)) {
                any = true;
                handle(e);
            }
            if (auto t = conn.next_timeout(); t && *t <= now) {
                conn.on_timeout(now);
                any = true;
            }
            if (!any) {
                return;
            }
        }
    }

    void handle(const Event& e) {
        switch (e.type) {
            case EventType::kAuthRequest: conn.accept_auth(); break;
            case EventType::kStreamOpened: {
                if (streams.size() < 64) {
                    streams.push_back(e.stream);
                }
                StreamMeta head;
                head.head = HeadType::kResponse;
                head.status = 200;
                (void)conn.send_meta(e.stream, head);
                static const std::array<std::uint8_t, 3000> body{};
                (void)conn.stream_write(e.stream, body, true);
                break;
            }
            case EventType::kStreamReadable: {
                for (int i = 0; i < 1024; ++i) {
                    auto r = conn.stream_read(e.stream, scratch);
                    if (!r || r->bytes == 0) {
                        break;
                    }
                }
                break;
            }
            default: break;
        }
    }

    void api(std::uint16_t what) {
        const StreamId id = streams.empty() ? what : streams[what % streams.size()];
        switch ((what >> 8) % 8) {
            case 0: conn.ping(); break;
            case 1: (void)conn.stream_reset(id, what & 0xff); break;
            case 2: (void)conn.stream_stop_sending(id, what & 0xff); break;
            case 3: (void)conn.stream_finish(id); break;
            case 4: conn.send_path_challenge(what); break;
            case 5: {
                StreamMeta m;
                m.head = HeadType::kRequest;
                m.method = "GET";
                m.target = "/";
                (void)conn.open_stream(m);
                break;
            }
            case 6: (void)conn.stream_write(id, scratch, false); break;
            case 7:
                if ((what & 0xff) == 0x7f) {
                    conn.close(WireError::kNoError, "fuzz");
                }
                break;
        }
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Instant now = Instant{} + std::chrono::seconds(1000);
    Harness dgram(Mode::kDatagram, now);
    Harness stream(Mode::kStream, now);
    std::size_t pos = 0;
    while (pos + 3 <= size) {
        const std::uint8_t op = data[pos];
        const auto len = static_cast<std::uint16_t>((data[pos + 1] << 8) | data[pos + 2]);
        pos += 3;
        switch (op % 4) {
            case 0:
            case 1: {
                const std::size_t n = std::min<std::size_t>(len, size - pos);
                const std::span<const std::uint8_t> payload(data + pos, n);
                pos += n;
                if (op % 4 == 0) {
                    dgram.conn.on_datagram(payload, now);
                } else {
                    stream.conn.on_stream_bytes(payload, now);
                }
                break;
            }
            case 2:
                now += std::chrono::milliseconds(len);
                for (Harness* h : {&dgram, &stream}) {
                    if (auto t = h->conn.next_timeout(); t && *t <= now) {
                        h->conn.on_timeout(now);
                    }
                }
                break;
            case 3:
                (op & 4 ? stream : dgram).api(len);
                break;
        }
        dgram.drain(now);
        stream.drain(now);
        // Memory stays within the configured windows and send buffers (plus bookkeeping).
        for (Harness* h : {&dgram, &stream}) {
            check(h->conn.buffered_bytes() <= 4u * 1024 * 1024);
            check(h->conn.open_streams() <= 64);
        }
    }
    // Let every timer run out: the connections must reach a quiet or closed state.
    for (int i = 0; i < 64; ++i) {
        now += std::chrono::seconds(5);
        for (Harness* h : {&dgram, &stream}) {
            if (auto t = h->conn.next_timeout(); t && *t <= now) {
                h->conn.on_timeout(now);
            }
            h->drain(now);
        }
    }
    return 0;
}
