#include "tunnel_harness.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace hopgate::testing {

using proto::EventType;

std::uint8_t pattern(std::uint64_t idx, int dir, std::uint64_t off) {
    std::uint64_t x = off * 0x9e3779b97f4a7c15ULL + idx * 0xbf58476d1ce4e5b9ULL +
                      static_cast<std::uint64_t>(dir) * 0x94d049bb133111ebULL;
    x ^= x >> 29;
    return static_cast<std::uint8_t>(x >> 24);
}

TransferApp::TransferApp(bool server, TransferSpec spec, std::string key)
    : server_(server), spec_(std::move(spec)), key_(std::move(key)), buf_(64 * 1024) {}

std::uint64_t TransferApp::size_of(std::uint64_t idx) const {
    return idx < spec_.sizes.size() ? spec_.sizes[idx] : spec_.bytes;
}

bool TransferApp::done() const {
    if (!error_.empty()) {
        return true;
    }
    return completed_ == spec_.streams && closed_streams_ == spec_.streams;
}

void TransferApp::write_some(net::Tunnel& t, proto::StreamId id, S& s) {
    // The pattern for the bytes after `sent` is generated once per chunk and kept until the
    // connection has taken all of it (writes are often partial when the send budget is full).
    while (!s.fin_sent) {
        if (s.chunk_off == s.chunk.size()) {
            const std::size_t n = static_cast<std::size_t>(
                std::min<std::uint64_t>(buf_.size(), s.to_send - s.sent));
            s.chunk.resize(n);
            for (std::size_t i = 0; i < n; ++i) {
                s.chunk[i] = pattern(s.idx, server_ ? 0 : 1, s.sent + i);
            }
            s.chunk_off = 0;
        }
        const std::size_t n = s.chunk.size() - s.chunk_off;
        const bool last = s.sent + n == s.to_send;
        auto r = t.conn().stream_write(
            id, std::span<const std::uint8_t>(s.chunk).subspan(s.chunk_off, n), last);
        if (!r) {
            if (r.error() != proto::Errc::kWouldBlock) {
                fail("stream_write: " + r.error().message());
            }
            return;
        }
        s.sent += *r;
        s.chunk_off += *r;
        if (*r < n) {
            return;
        }
        if (last) {
            s.fin_sent = true;
            s.chunk = {};
            s.chunk_off = 0;
        }
    }
}

void TransferApp::read_some(net::Tunnel& t, proto::StreamId id, S& s) {
    for (;;) {
        auto r = t.conn().stream_read(id, buf_);
        if (!r) {
            return;
        }
        for (std::size_t i = 0; i < r->bytes; ++i) {
            if (buf_[i] != pattern(s.idx, server_ ? 1 : 0, s.recvd + i)) {
                fail("corrupt byte at " + std::to_string(s.recvd + i) + " of stream " +
                     std::to_string(s.idx));
                return;
            }
        }
        s.recvd += r->bytes;
        received_ += r->bytes;
        if (r->fin) {
            if (s.recvd != s.to_recv) {
                fail("short stream " + std::to_string(s.idx));
            }
            s.fin_recvd = true;
            ++completed_;
            return;
        }
        if (r->bytes == 0) {
            return;
        }
    }
}

void TransferApp::on_tunnel_event(net::Tunnel& t, proto::Event& ev) {
    if (std::getenv("HG_TRACE")) {
        std::fprintf(stderr, "[%s] %s stream=%llu code=%llu %s\n", server_ ? "server" : "client",
                     proto::event_type_name(ev.type), static_cast<unsigned long long>(ev.stream),
                     static_cast<unsigned long long>(ev.code), ev.reason.c_str());
    }
    switch (ev.type) {
        case EventType::kAuthRequest:
            if (ev.auth.domain == "app.example.com" && ev.auth.api_key == key_) {
                t.conn().accept_auth();
            } else {
                t.conn().reject_auth(proto::AuthFailReason::kBadCredentials,
                                     "unknown domain or wrong API key");
            }
            break;
        case EventType::kEstablished:
            established_ = true;
            if (server_) {
                for (std::size_t i = 0; i < spec_.streams; ++i) {
                    proto::StreamMeta m;
                    m.head = proto::HeadType::kRequest;
                    m.method = "POST";
                    m.target = "/" + std::to_string(i);
                    m.request_id = std::to_string(i);
                    auto r = t.conn().open_stream(m);
                    if (!r) {
                        fail("open_stream: " + r.error().message());
                        return;
                    }
                    S s;
                    s.idx = i;
                    s.to_send = size_of(i);
                    s.to_recv = spec_.echo_bytes;
                    auto& ref = streams_[*r] = s;
                    write_some(t, *r, ref);
                }
            }
            if (on_established) {
                on_established(t);
            }
            break;
        case EventType::kStreamOpened: {
            S s;
            s.idx = std::stoull(ev.meta->request_id);
            s.to_recv = size_of(s.idx);
            s.to_send = spec_.echo_bytes;
            auto& ref = streams_[ev.stream] = s;
            proto::StreamMeta resp;
            resp.head = proto::HeadType::kResponse;
            resp.status = 200;
            resp.request_id = ev.meta->request_id;
            if (auto st = t.conn().send_meta(ev.stream, resp); !st) {
                fail("send_meta");
                return;
            }
            write_some(t, ev.stream, ref);
            break;
        }
        case EventType::kStreamHead:
            if (!ev.meta || ev.meta->status != 200) {
                fail("bad head");
            }
            break;
        case EventType::kStreamReadable:
            if (auto it = streams_.find(ev.stream); it != streams_.end()) {
                read_some(t, ev.stream, it->second);
            }
            break;
        case EventType::kStreamWritable:
            if (auto it = streams_.find(ev.stream); it != streams_.end()) {
                write_some(t, ev.stream, it->second);
            }
            // A connection-wide budget wake-up may unblock others too.
            for (auto& [id, s] : streams_) {
                if (!s.fin_sent && s.sent < s.to_send) {
                    write_some(t, id, s);
                }
            }
            break;
        case EventType::kStreamReset:
        case EventType::kStreamStopSending: fail("unexpected reset"); break;
        case EventType::kStreamClosed:
            if (auto it = streams_.find(ev.stream); it != streams_.end()) {
                if (!it->second.fin_recvd || !it->second.fin_sent) {
                    fail("stream closed early");
                }
                ++closed_streams_;
            }
            break;
        case EventType::kPathResponse: break;
        case EventType::kConnectionClosed:
            closed_ = true;
            close_code_ = ev.code;
            close_reason_ = ev.reason;
            break;
    }
}

Harness::Harness(TransferSpec spec, net::TransportOptions o)
    : opts(std::move(o)), server_app(true, spec) {
    auto pem = tls::generate_self_signed({"localhost", "127.0.0.1"});
    char path[] = "/tmp/hopgate-ca-XXXXXX";
    const int fd = mkstemp(path);
    if (fd >= 0) {
        ::close(fd);
    }
    ca_file = path;
    std::ofstream(ca_file) << pem.cert_pem;
    auto dtls_srv = tls::make_server_context(pem.cert_pem, pem.key_pem, tls::Protocol::kDtls);
    auto tls_srv = tls::make_server_context(pem.cert_pem, pem.key_pem, tls::Protocol::kTls);
    tls::ClientTrust trust;
    trust.ca_file = ca_file;
    dtls_client_ctx = tls::make_client_context(trust, tls::Protocol::kDtls);
    tls_client_ctx = tls::make_client_context(trust, tls::Protocol::kTls);
    auto on_tunnel = [this](const std::shared_ptr<net::Tunnel>& t) {
        t->set_events(&server_app);
        server_tunnels.push_back(t);
    };
    dtls = std::make_unique<net::DtlsServer>(
        io, boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
        dtls_srv, opts, on_tunnel);
    tls_server = std::make_unique<net::TlsServer>(
        io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
        tls_srv, opts, on_tunnel);
    dtls->start();
    tls_server->start();
}

Harness::~Harness() {
    dtls->stop();
    tls_server->stop();
    std::remove(ca_file.c_str());
}

boost::asio::ip::udp::endpoint Harness::dtls_endpoint() const { return dtls->local_endpoint(); }
boost::asio::ip::tcp::endpoint Harness::tls_endpoint() const {
    return tls_server->local_endpoint();
}

bool Harness::run_until(const std::function<bool()>& done, double seconds) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::microseconds(static_cast<std::int64_t>(seconds * 1e6));
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.run_for(std::chrono::milliseconds(10));
        if (io.stopped()) {
            io.restart();
        }
    }
    return done();
}

std::shared_ptr<net::Tunnel> Harness::dial(net::TransportKind kind, TransferApp& app,
                                           const std::string& domain, const std::string& key,
                                           std::string* error, std::uint16_t port_override) {
    net::TransportOptions o = opts;
    o.conn.domain = domain;
    o.conn.api_key = key;
    std::shared_ptr<net::Tunnel> out;
    bool finished = false;
    auto done = [&](std::shared_ptr<net::Tunnel> t, const std::string& e) {
        out = std::move(t);
        if (error) {
            *error = e;
        }
        finished = true;
    };
    const auto addr = boost::asio::ip::make_address("127.0.0.1");
    if (kind == net::TransportKind::kDtls) {
        const std::uint16_t port = port_override ? port_override : dtls_endpoint().port();
        net::dial_dtls(io, {addr, port}, dtls_client_ctx, "localhost", o, &app, done);
    } else {
        const std::uint16_t port = port_override ? port_override : tls_endpoint().port();
        net::dial_tls(io, {addr, port}, tls_client_ctx, "localhost", o, &app, done);
    }
    run_until([&] { return finished; }, 15);
    return out;
}

}  // namespace hopgate::testing
