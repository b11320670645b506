// Writes the seed corpora of the protocol fuzz targets (fuzz/corpus/{frame,meta,connection}).
// Usage: fuzz_corpus_gen <fuzz/corpus dir>. The output is committed; rerun after a wire change.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "proto/frame.hpp"
#include "proto/meta.hpp"
#include "proto/wire.hpp"

namespace {

using namespace hopgate::proto;
using Bytes = std::vector<std::uint8_t>;

Bytes frames(const std::vector<Frame>& fs) {
    Bytes b(8192);
    Writer w(b);
    for (const auto& f : fs) {
        if (!encode_frame(w, f)) {
            std::fprintf(stderr, "encode failed\n");
            std::exit(1);
        }
    }
    b.resize(w.size());
    return b;
}

Bytes packet(std::uint64_t pn, const std::vector<Frame>& fs) {
    Bytes b = {0x40};
    Bytes n(8);
    Writer w(n);
    w.varint(pn);
    b.insert(b.end(), n.begin(), n.begin() + static_cast<std::ptrdiff_t>(w.size()));
    const Bytes body = frames(fs);
    b.insert(b.end(), body.begin(), body.end());
    return b;
}

// Stream-mode record: varint length + frames.
Bytes record(const std::vector<Frame>& fs) {
    const Bytes body = frames(fs);
    Bytes b(8);
    Writer w(b);
    w.varint(body.size());
    b.resize(w.size());
    b.insert(b.end(), body.begin(), body.end());
    return b;
}

Bytes head(bool request) {
    StreamMeta m;
    m.request_id = "r1";
    if (request) {
        m.head = HeadType::kRequest;
        m.method = "GET";
        m.target = "/index.html";
        m.headers = {{"host", "app.example.com"}, {"accept", "*/*"}};
    } else {
        m.head = HeadType::kResponse;
        m.status = 200;
        m.headers = {{"content-length", "5"}};
    }
    Bytes out;
    encode_meta(m, out);
    return out;
}

// fuzz_connection script ops.
void op_data(Bytes& s, std::uint8_t op, const Bytes& payload) {
    s.push_back(op);
    s.push_back(static_cast<std::uint8_t>(payload.size() >> 8));
    s.push_back(static_cast<std::uint8_t>(payload.size()));
    s.insert(s.end(), payload.begin(), payload.end());
}
void op_wait(Bytes& s, std::uint16_t ms) {
    s.push_back(2);
    s.push_back(static_cast<std::uint8_t>(ms >> 8));
    s.push_back(static_cast<std::uint8_t>(ms));
}
void op_api(Bytes& s, bool stream_conn, std::uint16_t what) {
    s.push_back(stream_conn ? 7 : 3);
    s.push_back(static_cast<std::uint8_t>(what >> 8));
    s.push_back(static_cast<std::uint8_t>(what));
}

void write(const std::filesystem::path& p, const Bytes& b) {
    if (b.size() >= 4096) {
        std::fprintf(stderr, "%s is %zu bytes (limit 4 KiB)\n", p.c_str(), b.size());
        std::exit(1);
    }
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()),
                                             static_cast<std::streamsize>(b.size()));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <fuzz/corpus dir>\n", argv[0]);
        return 2;
    }
    const std::filesystem::path root = argv[1];
    for (const char* d : {"frame", "meta", "connection"}) {
        std::filesystem::create_directories(root / d);
    }
    static const std::string kData = "hello";
    const auto data = std::span(reinterpret_cast<const std::uint8_t*>(kData.data()), kData.size());
    AuthFrame auth;
    auth.domain = "app.example.com";
    auth.api_key = "s3cret";
    auth.client_version = "hopgate/0.1";
    const Bytes req = head(true);
    const Bytes resp = head(false);
    Bytes req_and_data = req;
    req_and_data.insert(req_and_data.end(), data.begin(), data.end());

    // ---- frame: one file per frame type, plus a packet-like sequence.
    const std::vector<std::pair<const char*, Frame>> singles = {
        {"padding", PaddingFrame{4}},
        {"ping", PingFrame{}},
        {"ack", AckFrame{250, {{90, 100}, {50, 80}, {0, 10}}}},
        {"reset_stream", ResetStreamFrame{4, 0x42, 1000}},
        {"stop_sending", StopSendingFrame{5, 7}},
        {"stream", StreamFrame{4, 0, false, data}},
        {"stream_off_fin", StreamFrame{8, 70000, true, data}},
        {"max_data", MaxDataFrame{1 << 20}},
        {"max_stream_data", MaxStreamDataFrame{8, 65536}},
        {"max_streams", MaxStreamsFrame{100}},
        {"data_blocked", DataBlockedFrame{63}},
        {"stream_data_blocked", StreamDataBlockedFrame{1, 64}},
        {"streams_blocked", StreamsBlockedFrame{3}},
        {"path_challenge", PathChallengeFrame{0x0102030405060708ULL}},
        {"path_response", PathResponseFrame{0x0102030405060708ULL}},
        {"connection_close", ConnectionCloseFrame{0x11, "bye"}},
        {"auth", auth},
        {"auth_ok", AuthOkFrame{}},
        {"auth_fail", AuthFailFrame{2, "unsupported version"}},
    };
    for (const auto& [name, f] : singles) {
        write(root / "frame" / name, frames({f}));
    }
    write(root / "frame" / "sequence",
          frames({AckFrame{3, {{0, 7}}}, StreamFrame{0, 0, true, std::span(req_and_data)},
                  MaxDataFrame{2 << 20}, PingFrame{}, PaddingFrame{3}}));
    write(root / "frame" / "stream_nolen", {0x0c, 0x04, 0x40, 0x64, 'd', 'a', 't', 'a'});

    // ---- meta: request, response, raw, and a head followed by stream data.
    write(root / "meta" / "request", req);
    write(root / "meta" / "response", resp);
    {
        StreamMeta raw;
        raw.kind = StreamKind::kRaw;
        Bytes b;
        encode_meta(raw, b);
        write(root / "meta" / "raw", b);
        StreamMeta up;
        up.kind = StreamKind::kUpgrade;
        up.head = HeadType::kResponse;
        up.status = 101;
        up.headers = {{"upgrade", "websocket"}, {"connection", "Upgrade"}};
        Bytes u;
        encode_meta(up, u);
        write(root / "meta" / "upgrade_101", u);
    }
    write(root / "meta" / "request_with_data", req_and_data);

    // ---- connection: scripts for the datagram and stream-mode servers.
    {
        // Datagram: AUTH, then a request stream with FIN, ACKs, flow control, timers.
        Bytes s;
        op_data(s, 0, packet(0, {auth}));
        op_wait(s, 30);
        op_data(s, 0, packet(1, {AckFrame{0, {{0, 0}}}, StreamFrame{0, 0, true, std::span(req_and_data)}}));
        op_wait(s, 30);
        op_data(s, 0, packet(2, {AckFrame{0, {{0, 1}}}, MaxDataFrame{2 << 20}, PingFrame{}}));
        op_data(s, 0, packet(4, {StreamFrame{2, 0, false, std::span(req)}}));  // reordered
        op_data(s, 0, packet(3, {StopSendingFrame{2, 5}, ResetStreamFrame{2, 5, req.size()}}));
        op_wait(s, 500);
        op_data(s, 0, packet(5, {AckFrame{0, {{0, 4}}}, ConnectionCloseFrame{0, "done"}}));
        write(root / "connection" / "dgram_request", s);
    }
    {
        // Datagram: AUTH then API calls and long waits (keepalive, PTO, idle timeout).
        Bytes s;
        op_data(s, 0, packet(0, {auth}));
        op_wait(s, 10);
        op_data(s, 0, packet(1, {StreamFrame{0, 0, false, std::span(req)}}));
        op_api(s, false, 0x0000);  // ping
        op_api(s, false, 0x0600);  // write on the stream
        op_api(s, false, 0x0300);  // finish
        op_api(s, false, 0x0500);  // open a server stream
        op_wait(s, 2000);
        op_wait(s, 40000);
        write(root / "connection" / "dgram_api_timers", s);
    }
    {
        // Datagram: a malformed packet right after AUTH.
        Bytes s;
        op_data(s, 0, packet(0, {auth}));
        op_data(s, 0, {0x40, 0x01, 0x1f, 0x00});
        write(root / "connection" / "dgram_garbage", s);
    }
    {
        // Stream mode: records split across chunks.
        Bytes stream = record({auth});
        const Bytes r2 = record({StreamFrame{0, 0, false, std::span(req_and_data)}});
        const Bytes r3 = record({StreamFrame{0, req_and_data.size(), true, {}}, PingFrame{}});
        stream.insert(stream.end(), r2.begin(), r2.end());
        stream.insert(stream.end(), r3.begin(), r3.end());
        Bytes s;
        std::size_t pos = 0;
        std::size_t k = 1;
        while (pos < stream.size()) {
            const std::size_t n = std::min(k, stream.size() - pos);
            op_data(s, 1, Bytes(stream.begin() + static_cast<std::ptrdiff_t>(pos),
                                stream.begin() + static_cast<std::ptrdiff_t>(pos + n)));
            pos += n;
            k = k * 3 + 1;
        }
        op_api(s, true, 0x0100);  // reset the stream
        op_wait(s, 100);
        write(root / "connection" / "stream_request", s);
    }
    {
        // Both: handshakes side by side, then closes.
        Bytes s;
        op_data(s, 0, packet(0, {auth}));
        op_data(s, 1, record({auth}));
        op_data(s, 1, record({StreamFrame{0, 0, true, std::span(req)}}));
        op_api(s, true, 0x077f);   // close
        op_api(s, false, 0x077f);  // close
        op_wait(s, 5000);
        write(root / "connection" / "both_close", s);
    }
    std::printf("corpus written to %s\n", root.c_str());
    return 0;
}
