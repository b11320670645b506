// Micro-benchmarks of the protocol core (hopgate::proto), all in memory: varints, STREAM and
// ACK frames, stream heads, and whole-connection CPU cost per transferred byte (two Connections
// joined by an in-memory path with a virtual clock: no sockets, no loss, no crypto).
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "proto/connection.hpp"
#include "proto/frame.hpp"
#include "proto/meta.hpp"
#include "proto/wire.hpp"

namespace {

using namespace hopgate::proto;
using hopgate::core::Instant;

// ------------------------------------------------------------------ varints
std::vector<std::uint64_t> varint_values() {
    // A mix of the four size classes, as frames carry them (mostly small).
    std::mt19937_64 rng(1);
    std::vector<std::uint64_t> v(1024);
    for (auto& x : v) {
        const auto r = rng() % 16;
        x = r < 8 ? rng() % 64 : r < 12 ? rng() % 16384 : r < 15 ? rng() % (1u << 30) : rng() % kVarintMax;
    }
    return v;
}

void BM_VarintEncode(benchmark::State& state) {
    const auto values = varint_values();
    std::vector<std::uint8_t> buf(values.size() * 8);
    for (auto _ : state) {
        Writer w(buf);
        for (const auto v : values) {
            w.varint(v);
        }
        benchmark::DoNotOptimize(buf.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * values.size()));
}
BENCHMARK(BM_VarintEncode);

void BM_VarintDecode(benchmark::State& state) {
    const auto values = varint_values();
    std::vector<std::uint8_t> buf(values.size() * 8);
    Writer w(buf);
    for (const auto v : values) {
        w.varint(v);
    }
    const auto enc = w.written();
    for (auto _ : state) {
        Reader r(enc);
        std::uint64_t sum = 0, v = 0;
        while (r.varint(v)) {
            sum += v;
        }
        benchmark::DoNotOptimize(sum);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * values.size()));
}
BENCHMARK(BM_VarintDecode);

// ------------------------------------------------------------------ frames
const std::array<std::uint8_t, 1024> kPayload = [] {
    std::array<std::uint8_t, 1024> a{};
    for (std::size_t i = 0; i < a.size(); ++i) {
        a[i] = static_cast<std::uint8_t>(i * 7);
    }
    return a;
}();

void BM_StreamFrameEncode(benchmark::State& state) {
    std::array<std::uint8_t, 1200> buf{};
    std::uint64_t off = 1 << 20;
    for (auto _ : state) {
        Writer w(buf);
        benchmark::DoNotOptimize(encode_frame(w, StreamFrame{4, off, false, kPayload}));
        off += kPayload.size();
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPayload.size()));
}
BENCHMARK(BM_StreamFrameEncode);

void BM_StreamFrameDecode(benchmark::State& state) {
    std::array<std::uint8_t, 1200> buf{};
    Writer w(buf);
    encode_frame(w, StreamFrame{4, 1 << 20, false, kPayload});
    const auto enc = w.written();
    Frame f;
    for (auto _ : state) {
        Reader r(enc);
        benchmark::DoNotOptimize(decode_frame(r, f));
        benchmark::DoNotOptimize(std::get<StreamFrame>(f).data.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPayload.size()));
}
BENCHMARK(BM_StreamFrameDecode);

AckFrame ack32() {
    AckFrame a;
    a.ack_delay_us = 1234;
    std::uint64_t hi = 1'000'000;
    for (int i = 0; i < 32; ++i) {
        a.ranges.push_back({hi - 20, hi});
        hi -= 23;
    }
    return a;
}

void BM_AckFrameEncode32(benchmark::State& state) {
    const Frame f = ack32();
    std::array<std::uint8_t, 512> buf{};
    for (auto _ : state) {
        Writer w(buf);
        benchmark::DoNotOptimize(encode_frame(w, f));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AckFrameEncode32);

void BM_AckFrameDecode32(benchmark::State& state) {
    std::array<std::uint8_t, 512> buf{};
    Writer w(buf);
    encode_frame(w, ack32());
    const auto enc = w.written();
    Frame f = AckFrame{};  // reused, as Connection does: no allocation in steady state
    for (auto _ : state) {
        Reader r(enc);
        benchmark::DoNotOptimize(decode_frame(r, f));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AckFrameDecode32);

// ------------------------------------------------------------------ stream heads
StreamMeta typical_request() {
    StreamMeta m;
    m.kind = StreamKind::kHttp;
    m.request_id = "01J9ZQ4K7V3M8X2B5N6P0R1S2T";
    m.head = HeadType::kRequest;
    m.method = "GET";
    m.target = "/api/v2/projects/4711/issues?state=open&sort=updated&page=3";
    m.headers = {
        {"host", "app.example.com"},
        {"user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
        {"accept", "application/json, text/plain, */*"},
        {"accept-language", "en-US,en;q=0.5"},
        {"accept-encoding", "gzip, deflate, br, zstd"},
        {"referer", "https://app.example.com/projects/4711"},
        {"cookie", "session=9f8e7d6c5b4a39281706f5e4d3c2b1a0; theme=dark; tz=Europe%2FBerlin"},
        {"x-forwarded-for", "203.0.113.42"},
        {"x-forwarded-proto", "https"},
        {"x-request-id", "01J9ZQ4K7V3M8X2B5N6P0R1S2T"},
        {"sec-fetch-mode", "cors"},
        {"connection", "keep-alive"},
    };
    return m;
}

void BM_MetaEncode(benchmark::State& state) {
    const StreamMeta m = typical_request();
    std::vector<std::uint8_t> out;
    out.reserve(4096);
    for (auto _ : state) {
        out.clear();
        benchmark::DoNotOptimize(encode_meta(m, out));
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["head_bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_MetaEncode);

void BM_MetaDecode(benchmark::State& state) {
    std::vector<std::uint8_t> enc;
    encode_meta(typical_request(), enc);
    for (auto _ : state) {
        StreamMeta m;
        std::size_t consumed = 0;
        benchmark::DoNotOptimize(decode_meta(enc, kDefaultMaxMetaSize, m, consumed));
        benchmark::DoNotOptimize(m.headers.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MetaDecode);

// ------------------------------------------------------------------ connection CPU per MiB
// Client uploads `total` bytes on one stream to the server; returns false if it did not finish.
class InMemoryPair {
public:
    InMemoryPair(Mode mode, CcAlgorithm cc) : mode_(mode) {
        ConnectionConfig c;
        c.mode = mode;
        c.cc = cc;
        c.role = Role::kClient;
        c.domain = "bench.example.com";
        c.api_key = "k";
        ConnectionConfig s = c;
        s.role = Role::kServer;
        client_ = std::make_unique<Connection>(c, now_);
        server_ = std::make_unique<Connection>(s, now_);
        buf_.resize(mode == Mode::kDatagram ? 1500 : 64 * 1024);
        sink_.resize(64 * 1024);
        chunk_.assign(64 * 1024, 0x5a);
    }

    bool upload(std::uint64_t total) {
        bool opened = false, fin_read = false;
        StreamId id = 0;
        std::uint64_t written = 0, received = 0;
        for (std::uint64_t iter = 0; iter < 50'000'000 && !fin_read; ++iter) {
            // Application work.
            if (!opened && client_->is_established()) {
                StreamMeta m;
                m.head = HeadType::kRequest;
                m.method = "PUT";
                m.target = "/blob";
                id = *client_->open_stream(m);
                opened = true;
            }
            while (opened && written < total) {
                const std::size_t n =
                    static_cast<std::size_t>(std::min<std::uint64_t>(total - written, chunk_.size()));
                auto r = client_->stream_write(id, std::span(chunk_).first(n), written + n == total);
                if (!r || *r == 0) {
                    break;
                }
                written += *r;
            }
            // Outputs, then events.
            bool any = flush(*client_, true) | flush(*server_, false);
            Event e;
            while (server_->poll_event(e)) {
                any = true;
                if (e.type == EventType::kAuthRequest) {
                    server_->accept_auth();
                } else if (e.type == EventType::kStreamOpened) {
                    StreamMeta h;
                    h.head = HeadType::kResponse;
                    h.status = 200;
                    (void)server_->send_meta(e.stream, h);
                    (void)server_->stream_finish(e.stream);
                } else if (e.type == EventType::kStreamReadable) {
                    for (;;) {
                        auto r = server_->stream_read(e.stream, sink_);
                        if (!r) {
                            break;
                        }
                        received += r->bytes;
                        if (r->fin) {
                            fin_read = true;
                        }
                        if (r->bytes == 0 || r->fin) {
                            break;
                        }
                    }
                }
            }
            while (client_->poll_event(e)) {
                any = true;
                if (e.type == EventType::kStreamReadable) {
                    while (true) {
                        auto r = client_->stream_read(e.stream, sink_);
                        if (!r || r->bytes == 0 || r->fin) {
                            break;
                        }
                    }
                }
            }
            if (any) {
                continue;
            }
            // Quiet: advance the virtual clock to the next delivery or timer.
            Instant next = hopgate::core::kInstantMax;
            if (!queue_.empty()) {
                next = queue_.front().at;
            }
            for (Connection* c : {client_.get(), server_.get()}) {
                if (auto t = c->next_timeout()) {
                    next = std::min(next, *t);
                }
            }
            if (next == hopgate::core::kInstantMax) {
                return false;
            }
            now_ = std::max(now_, next);
            while (!queue_.empty() && queue_.front().at <= now_) {
                Item& it = queue_.front();
                Connection& to = it.to_server ? *server_ : *client_;
                const std::span<const std::uint8_t> b(it.bytes.data(), it.len);
                if (mode_ == Mode::kDatagram) {
                    to.on_datagram(b, now_);
                } else {
                    to.on_stream_bytes(b, now_);
                }
                queue_.pop_front();
            }
            for (Connection* c : {client_.get(), server_.get()}) {
                if (auto t = c->next_timeout(); t && *t <= now_) {
                    c->on_timeout(now_);
                }
            }
        }
        return fin_read && received == total;
    }

    double virtual_seconds() const { return hopgate::core::to_seconds(now_ - start_); }

private:
    struct Item {
        Instant at;
        bool to_server;
        std::size_t len;
        std::vector<std::uint8_t> bytes;
    };

    bool flush(Connection& c, bool to_server) {
        bool any = false;
        for (;;) {
            const std::size_t n = mode_ == Mode::kDatagram ? c.write_datagram(buf_, now_)
                                                           : c.write_stream_bytes(buf_, now_);
            if (n == 0) {
                return any;
            }
            any = true;
            queue_.push_back({now_ + kLatency, to_server, n, {buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n)}});
        }
    }

    static constexpr hopgate::core::Duration kLatency = std::chrono::milliseconds(1);
    Mode mode_;
    Instant start_ = Instant{} + std::chrono::seconds(1);
    Instant now_ = start_;
    std::unique_ptr<Connection> client_, server_;
    std::vector<std::uint8_t> buf_, sink_, chunk_;
    std::deque<Item> queue_;
};

constexpr std::uint64_t kTransfer = 64ull << 20;

void connection_transfer(benchmark::State& state, Mode mode, CcAlgorithm cc) {
    double vsec = 0;
    for (auto _ : state) {
        InMemoryPair p(mode, cc);
        if (!p.upload(kTransfer)) {
            state.SkipWithError("transfer did not complete");
            return;
        }
        vsec = p.virtual_seconds();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kTransfer));
    state.counters["virtual_s"] = vsec;
}

void BM_Connection64MiB_DatagramBbr(benchmark::State& state) {
    connection_transfer(state, Mode::kDatagram, CcAlgorithm::kBbr);
}
BENCHMARK(BM_Connection64MiB_DatagramBbr)->Unit(benchmark::kMillisecond);

void BM_Connection64MiB_Stream(benchmark::State& state) {
    connection_transfer(state, Mode::kStream, CcAlgorithm::kBbr);
}
BENCHMARK(BM_Connection64MiB_Stream)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
