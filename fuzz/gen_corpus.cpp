// Writes the seed corpora of the protocol fuzz targets (fuzz/corpus/{frame,meta,connection}) and
// of the front door's head paths (fuzz/corpus/{request_head,response_head}).
// Usage: fuzz_corpus_gen <fuzz/corpus dir>. The output is committed; rerun after a wire change.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
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

// fuzz_request_head: a split byte (where the input is cut between two reads), then what a
// visitor sends. The smuggling shapes of issue 14 and their well-formed neighbours.
// fuzz_response_head: response heads as a client could send them, hostile ones included.
void write_head_corpora(const std::filesystem::path& root) {
    const std::vector<std::pair<const char*, std::string>> requests = {
        {"get", "GET /a?b=c HTTP/1.1\r\nHost: app.example\r\nAccept: */*\r\n\r\n"},
        {"post_cl", "POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello"},
        {"post_chunked",
         "POST /up HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\n\r\n"},
        {"chunk_ext",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;name=value;x\r\nhello\r\n0;y=\"q\"\r\nTrailer: t\r\n\r\n"},
        {"absolute_form", "GET http://app.example:80/x HTTP/1.1\r\nHost: app.example\r\n\r\n"},
        {"upgrade",
         "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
        {"pipelined", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"},
        {"cl_te",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
        {"te_cl",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
         "8\r\nSMUGGLED\r\n0\r\n\r\n"},
        {"te_xchunked",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"
         "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
        {"te_chunked_identity",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
         "0\r\n\r\n"},
        {"te_gzip_chunked",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
        {"te_twice",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
         "0\r\n\r\n"},
        {"te_http10", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
        {"cl_twice_differ",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
        {"cl_twice_same",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"},
        {"cl_list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nab"},
        {"bare_lf", "GET / HTTP/1.1\nHost: a\n\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
        {"bare_cr", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n"},
        {"obs_fold", "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n"},
        {"huge_chunk",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
        {"max_chunk",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "ffffffffffffffff\r\nhello"},
        {"bad_chunk_crlf",
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"},
        {"long_method", std::string(40, 'M') + " / HTTP/1.1\r\nHost: a\r\n\r\n"},
        {"long_name", "GET / HTTP/1.1\r\nHost: a\r\n" + std::string(1100, 'n') + ": v\r\n\r\n"},
        {"xff", "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: "
                "abcdefgh12\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\r\n"},
    };
    for (const auto& [name, text] : requests) {
        Bytes b = {0x80};  // cut in the middle
        b.insert(b.end(), text.begin(), text.end());
        write(root / "request_head" / name, b);
    }
    std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 260; ++i) {
        many += "X-" + std::to_string(i) + ": v\r\n";
    }
    many += "\r\n";
    Bytes b = {0xff};
    b.insert(b.end(), many.begin(), many.end());
    write(root / "request_head" / "many_headers", b);

    auto response = [&](const char* name, std::uint16_t status, StreamKind kind,
                        std::vector<Header> headers) {
        StreamMeta m;
        m.kind = kind;
        m.request_id = "0123456789abcdef";
        m.head = HeadType::kResponse;
        m.status = status;
        m.headers = std::move(headers);
        Bytes out;
        if (!encode_meta(m, out)) {
            std::fprintf(stderr, "encode failed\n");
            std::exit(1);
        }
        write(root / "response_head" / name, out);
    };
    response("ok", 200, StreamKind::kHttp,
             {{"Content-Type", "text/html"}, {"Content-Length", "5"}, {"Set-Cookie", "a=1"}});
    response("chunked", 200, StreamKind::kHttp,
             {{"Transfer-Encoding", "chunked"}, {"Connection", "close, X-Hop"}, {"X-Hop", "1"}});
    response("upgrade_101", 101, StreamKind::kUpgrade,
             {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}});
    response("obs_text", 200, StreamKind::kHttp, {{"X-Latin1", "caf\xe9\tok"}});
    response("crlf_value", 200, StreamKind::kHttp, {{"X", "a\r\nSet-Cookie: evil=1"}});
    response("crlf_name", 200, StreamKind::kHttp, {{"X\r\nEvil", "1"}});
    response("colon_name", 200, StreamKind::kHttp, {{"X: y", "1"}});
    response("nul_value", 200, StreamKind::kHttp, {{"X", std::string("a\0b", 3)}});
    response("status_999", 999, StreamKind::kHttp, {});
    response("status_100", 100, StreamKind::kHttp, {});
    response("status_101_plain", 101, StreamKind::kHttp, {});
    response("two_lengths", 200, StreamKind::kHttp,
             {{"Content-Length", "5"}, {"Content-Length", "6"}});
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <fuzz/corpus dir>\n", argv[0]);
        return 2;
    }
    const std::filesystem::path root = argv[1];
    for (const char* d : {"frame", "meta", "connection", "request_head", "response_head"}) {
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
    write_head_corpora(root);
    std::printf("corpus written to %s\n", root.c_str());
    return 0;
}
