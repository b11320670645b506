// hopgate-hostile-client (test only): authenticates like hopgate-client, then answers every
// request stream with a response head or body a well-behaved client never sends, chosen by the
// request path, so the end-to-end tests can check what the gateway lets through to the visitor:
//   /crlf-value  a header value with CR LF and an injected Set-Cookie
//   /crlf-name   a header name with CR LF
//   /space-name  a header name with a space
//   /nul-value   a NUL in a header value
//   /status-100  an interim status as the final head; /status-600 and /status-999 odd ones
//   /cl-bad      a non-numeric Content-Length; /cl-two two different ones
//   /cl-long     Content-Length: 2 and a longer body carrying a second response
//   /cl-short    Content-Length: 10 and a 2-byte body, then FIN
//   /no-content  204 with a body carrying a second response (also sent to HEAD requests)
//   anything else: 200 with "fine" (Content-Length 4)
//
// Usage: hopgate-hostile-client <server-ip> <tls|dtls> <port> <ca-file> <domain> <api-key>
// Prints "ready" once the tunnel is up; exits 0 on SIGTERM/SIGINT, 1 when the tunnel fails.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/transport.hpp"
#include "tls/context.hpp"

namespace {

namespace asio = boost::asio;
using namespace hopgate;

struct Answer {
    std::uint16_t status = 200;
    std::vector<proto::Header> headers;
    std::string body;
};

Answer answer_for(const std::string& target) {
    if (target == "/crlf-value") {
        return {200, {{"X-Evil", "a\r\nSet-Cookie: evil=1"}, {"Content-Length", "2"}}, "no"};
    }
    if (target == "/crlf-name") {
        return {200, {{"X-Evil\r\nSet-Cookie", "evil=1"}, {"Content-Length", "2"}}, "no"};
    }
    if (target == "/space-name") {
        return {200, {{"Set-Cookie evil", "1"}, {"Content-Length", "2"}}, "no"};
    }
    if (target == "/nul-value") {
        return {200, {{"X-Evil", std::string("a\0evil", 6)}, {"Content-Length", "2"}}, "no"};
    }
    if (target == "/status-100") {
        return {100, {}, "evil"};
    }
    if (target == "/status-600") {
        return {600, {{"Content-Length", "4"}}, "evil"};
    }
    if (target == "/status-999") {
        return {999, {{"Content-Length", "4"}}, "evil"};
    }
    if (target == "/cl-bad") {
        return {200, {{"Content-Length", "4x"}}, "evil"};
    }
    if (target == "/cl-two") {
        return {200, {{"Content-Length", "2"}, {"Content-Length", "40"}}, "no"};
    }
    if (target == "/cl-long") {
        return {200,
                {{"Content-Length", "2"}},
                "okHTTP/1.1 200 OK\r\nSet-Cookie: evil=1\r\nContent-Length: 4\r\n\r\nevil"};
    }
    if (target == "/no-content") {
        return {204, {}, "HTTP/1.1 200 OK\r\nSet-Cookie: evil=1\r\nContent-Length: 4\r\n\r\nevil"};
    }
    if (target == "/cl-short") {
        return {200, {{"Content-Length", "10"}}, "ok"};
    }
    return {200, {{"Content-Length", "4"}}, "fine"};
}

class Hostile : public net::TunnelEvents {
  public:
    explicit Hostile(asio::io_context& io) : io_(io) {}

    void on_tunnel_event(net::Tunnel& t, proto::Event& ev) override {
        auto& c = t.conn();
        switch (ev.type) {
            case proto::EventType::kEstablished:
                std::printf("ready\n");
                std::fflush(stdout);
                break;
            case proto::EventType::kStreamOpened: {
                if (!ev.meta || ev.meta->head != proto::HeadType::kRequest) {
                    (void)c.stream_reset(ev.stream, 0x105);
                    break;
                }
                Answer a = answer_for(ev.meta->target);
                if (ev.meta->method == "HEAD") {
                    a = answer_for("/no-content");
                    a.status = 200;
                }
                proto::StreamMeta m;
                m.kind = ev.meta->kind;
                m.request_id = ev.meta->request_id;
                m.head = proto::HeadType::kResponse;
                m.status = a.status;
                m.headers = a.headers;
                if (!c.send_meta(ev.stream, m)) {
                    (void)c.stream_reset(ev.stream, 0x103);
                    break;
                }
                pending_[ev.stream] = a.body;
                write(c, ev.stream);
                break;
            }
            case proto::EventType::kStreamWritable:
                write(c, ev.stream);
                break;
            case proto::EventType::kStreamReadable: {
                std::uint8_t buf[4096];
                while (c.stream_read(ev.stream, buf)) {
                    if (c.stream_readable(ev.stream) == 0) {
                        break;
                    }
                }
                break;
            }
            case proto::EventType::kStreamClosed:
                pending_.erase(ev.stream);
                break;
            case proto::EventType::kConnectionClosed:
                std::fprintf(stderr, "tunnel closed: %s\n", ev.reason.c_str());
                failed_ = true;
                io_.stop();
                break;
            default:
                break;
        }
    }

    bool failed() const { return failed_; }

  private:
    void write(proto::Connection& c, proto::StreamId id) {
        auto it = pending_.find(id);
        if (it == pending_.end()) {
            return;
        }
        std::string& rest = it->second;
        auto r = c.stream_write(
            id, {reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size()}, true);
        if (r) {
            rest.erase(0, *r);
            if (rest.empty() && *r > 0) {
                pending_.erase(it);
            } else if (rest.empty()) {
                (void)c.stream_finish(id);
                pending_.erase(it);
            }
        }
    }

    asio::io_context& io_;
    std::map<proto::StreamId, std::string> pending_;  // body bytes not yet taken
    bool failed_ = false;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 7) {
        std::fprintf(stderr,
                     "usage: %s <server-ip> <tls|dtls> <port> <ca-file> <domain> <api-key>\n",
                     argv[0]);
        return 2;
    }
    asio::io_context io;
    const auto addr = asio::ip::make_address(argv[1]);
    const bool dtls = std::string(argv[2]) == "dtls";
    const auto port = static_cast<std::uint16_t>(std::atoi(argv[3]));
    const tls::ClientTrust trust{argv[4], false};
    auto ctx = tls::make_client_context(trust, dtls ? tls::Protocol::kDtls : tls::Protocol::kTls);
    net::TransportOptions o;
    o.conn.domain = argv[5];
    o.conn.api_key = argv[6];
    o.conn.client_version = "hopgate-hostile-client/0";
    Hostile events(io);
    std::shared_ptr<net::Tunnel> tunnel;
    auto done = [&](std::shared_ptr<net::Tunnel> t, const std::string& err) {
        if (!t) {
            std::fprintf(stderr, "dial failed: %s\n", err.c_str());
            io.stop();
            return;
        }
        tunnel = std::move(t);
    };
    if (dtls) {
        net::dial_dtls(io, {addr, port}, ctx, "localhost", o, &events, done);
    } else {
        net::dial_tls(io, {addr, port}, ctx, "localhost", o, &events, done);
    }
    bool stopped = false;
    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec) {
            stopped = true;
            io.stop();
        }
    });
    io.run();
    // A test tool: no orderly teardown of the tunnel, just the exit status.
    std::fflush(stdout);
    std::_Exit(stopped && !events.failed() ? 0 : 1);
}
