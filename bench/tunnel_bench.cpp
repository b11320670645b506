// Transport benchmark (issue 3): bulk throughput and CPU cost of the tunnel transports on
// loopback, side by side with raw references, in ONE run so that ratios are meaningful on a
// noisy shared machine.
//
// Rows (each bounded by bytes and by time; see --help):
//   raw TCP            plain blocking sockets, 64 KiB writes
//   raw TLS 1.3        OpenSSL over blocking TCP sockets, 64 KiB SSL_write (no tunnel)
//   raw DTLS 1.2       OpenSSL records over UDP with GSO/recvmmsg, no flow or congestion
//                      control (goodput at the receiver; the "raw DTLS" reference)
//   TLS tunnel x1/x8   net::TlsServer + dial_tls, 1 or 8 streams
//   DTLS tunnel x1/x8  net::DtlsServer + dial_dtls
//   DTLS via relay     the DTLS tunnel through hopgate-impair --loss 1 --delay-ms 10 (20 ms RTT)
//   handshakes/s       dial + DTLS handshake + AUTH accepted, sequential and 4 in parallel
//                      (and the TLS tunnel sequentially, for comparison)
//
// Every row runs its server and its client on two threads (two io_contexts for the tunnels),
// so both cores are used as in a deployment. The client uploads a preallocated buffer; the
// server reads and discards, checking only byte counts and FINs (byte correctness is tested by
// tests/integration). CPU is the whole process's CPU time (CLOCK_PROCESS_CPUTIME_ID) between
// the client's first write and the server's last read; the relay's CPU (another process) is
// reported separately.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/transport.hpp"
#include "net/udp_io.hpp"
#include "tls/certs.hpp"
#include "tls/context.hpp"
#include "tls/dtls_engine.hpp"

#ifndef HG_IMPAIR_BIN
#define HG_IMPAIR_BIN ""
#endif

namespace {

namespace asio = boost::asio;
namespace net = hopgate::net;
namespace proto = hopgate::proto;
namespace tls = hopgate::tls;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kChunk = 64 * 1024;  // application write size
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// ------------------------------------------------------------------ options

struct Options {
    bool quick = false;
    double seconds = 5.0;                      // time bound of each bulk row's sending phase
    std::uint64_t bytes = 1024ull << 20;        // byte bound of each bulk row
    double hs_seconds = 3.0;                   // each handshake row
    std::string impair_bin = HG_IMPAIR_BIN;
    std::vector<std::string> only;             // row keys to run (empty = all)
    bool trace = false;                        // print ConnectionStats samples
    unsigned ack_every = 0;                    // experiment: ack_eliciting_threshold (0 = default)
    bool selected(const std::string& key) const {
        return only.empty() || std::find(only.begin(), only.end(), key) != only.end();
    }
};

void usage() {
    std::puts(
        "usage: tunnel_bench [--quick] [--seconds S] [--mib N] [--hs-seconds S]\n"
        "                    [--impair PATH] [--only KEY[,KEY...]] [--trace]\n"
        "  --quick        short run: 256 MiB / 1.5 s per bulk row, 1 s per handshake row\n"
        "  --seconds S    time bound of each bulk row's sending phase (default 5)\n"
        "  --mib N        byte bound of each bulk row (default 1024)\n"
        "  --hs-seconds S duration of each handshake row (default 3)\n"
        "  --impair PATH  hopgate-impair binary (default: the build's, or next to this binary)\n"
        "  --only KEYS    rows to run: tcp tls dtls-raw dtls-raw-own tls1 tls8 dtls1 dtls8 relay1\n"
        "                 relay8 hs-dtls hs-dtls4 hs-tls (e.g. --only dtls1 for perf record)\n"
        "  --trace        print the sender's ConnectionStats every 100 ms on tunnel rows\n"
        "  --ack-every N  experiment: the tunnels' ack_eliciting_threshold (default: proto's)");
}

// ------------------------------------------------------------------ time and CPU

double clock_s(clockid_t id) {
    timespec t{};
    clock_gettime(id, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

struct Mark {
    Clock::time_point wall{};
    double proc = 0;     // process CPU seconds
    double srv = 0;      // server thread CPU seconds
    double cli = 0;      // client thread CPU seconds
    double srv_rq = 0;   // seconds the server thread was runnable but not running
    double cli_rq = 0;
};

// Run-queue delay of a thread (second field of schedstat, ns): on a shared machine this tells
// "waiting for a CPU" apart from "idle, waiting for I/O or a timer".
double runq_delay_s(pid_t tid) {
    if (tid <= 0) {
        return 0;
    }
    std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/schedstat");
    double run = 0;
    double delay = 0;
    if (!(f >> run >> delay)) {
        return 0;
    }
    return delay * 1e-9;
}

// Thread CPU clocks of the two workers of a row, registered by the workers themselves.
class Meter {
public:
    void set(bool server) {
        clockid_t id{};
        pthread_getcpuclockid(pthread_self(), &id);
        (server ? srv_ : cli_) = id;
        (server ? srv_tid_ : cli_tid_) = static_cast<pid_t>(gettid());
    }
    Mark take() const {
        Mark m;
        m.wall = Clock::now();
        m.proc = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        m.srv = clock_s(srv_);
        m.cli = clock_s(cli_);
        m.srv_rq = runq_delay_s(srv_tid_);
        m.cli_rq = runq_delay_s(cli_tid_);
        return m;
    }

private:
    clockid_t srv_ = CLOCK_THREAD_CPUTIME_ID;
    clockid_t cli_ = CLOCK_THREAD_CPUTIME_ID;
    pid_t srv_tid_ = 0;
    pid_t cli_tid_ = 0;
};

// What the main thread waits for: the client marks the start, the server (or whoever sees the
// end) marks the end. Thread-safe.
class Progress {
public:
    explicit Progress(const Meter& m) : meter_(m) {}
    void mark_start() {
        start_ = meter_.take();
        started_.store(true, std::memory_order_release);
    }
    bool started() const { return started_.load(std::memory_order_acquire); }
    const Mark& start() const { return start_; }  // after started()
    void finish() {
        const Mark m = meter_.take();
        std::lock_guard lk(mu_);
        if (!done_) {
            end_ = m;
            done_ = true;
        }
        cv_.notify_all();
    }
    void fail(const std::string& why) {
        const Mark m = meter_.take();
        std::lock_guard lk(mu_);
        if (!done_) {
            end_ = m;
            done_ = true;
            error_ = why;
        }
        cv_.notify_all();
    }
    // Waits until finished or `deadline`; false on timeout.
    bool wait(Clock::time_point deadline) {
        std::unique_lock lk(mu_);
        return cv_.wait_until(lk, deadline, [&] { return done_; });
    }
    bool done() const {
        std::lock_guard lk(mu_);
        return done_;
    }
    Mark end() const {
        std::lock_guard lk(mu_);
        return end_;
    }
    std::string error() const {
        std::lock_guard lk(mu_);
        return error_;
    }
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> sent{0};

private:
    const Meter& meter_;
    Mark start_;
    std::atomic<bool> started_{false};
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    Mark end_;
    std::string error_;
};

// ------------------------------------------------------------------ results

struct Row {
    std::string key;
    std::string name;
    bool handshake = false;  // rate is handshakes/s, cost is CPU ms per handshake
    bool ok = false;
    double amount = 0;       // bytes (bulk) or handshakes
    double wall = 0;
    double cpu = 0;
    double srv_cpu = 0;
    double cli_cpu = 0;
    double srv_rq = 0;
    double cli_rq = 0;
    double relay_cpu = -1;   // seconds, relay process (relay rows)
    std::string note;

    double rate() const {
        if (wall <= 0) {
            return 0;
        }
        return handshake ? amount / wall : amount / wall / 1e6;
    }
    double cost() const {  // CPU s/GiB or CPU ms/handshake
        if (amount <= 0) {
            return 0;
        }
        return handshake ? cpu / amount * 1e3 : cpu / (amount / kGiB);
    }
};

void fill(Row& r, const Mark& a, const Mark& b, double amount) {
    r.amount = amount;
    r.wall = std::chrono::duration<double>(b.wall - a.wall).count();
    r.cpu = b.proc - a.proc;
    r.srv_cpu = b.srv - a.srv;
    r.cli_cpu = b.cli - a.cli;
    r.srv_rq = b.srv_rq - a.srv_rq;
    r.cli_rq = b.cli_rq - a.cli_rq;
}

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

// ------------------------------------------------------------------ certificates

struct Pki {
    std::string ca_file;
    tls::PemPair pem;
    tls::ContextPtr dtls_server, dtls_client, tls_server, tls_client;

    Pki() {
        pem = tls::generate_self_signed({"localhost", "127.0.0.1"});
        char path[] = "/tmp/hopgate-bench-ca-XXXXXX";
        const int fd = mkstemp(path);
        if (fd < 0) {
            throw std::runtime_error("mkstemp failed");
        }
        ::close(fd);
        ca_file = path;
        std::ofstream(ca_file) << pem.cert_pem;
        dtls_server = tls::make_server_context(pem.cert_pem, pem.key_pem, tls::Protocol::kDtls);
        tls_server = tls::make_server_context(pem.cert_pem, pem.key_pem, tls::Protocol::kTls);
        tls::ClientTrust trust;
        trust.ca_file = ca_file;
        dtls_client = tls::make_client_context(trust, tls::Protocol::kDtls);
        tls_client = tls::make_client_context(trust, tls::Protocol::kTls);
    }
    ~Pki() { std::remove(ca_file.c_str()); }
    Pki(const Pki&) = delete;
    Pki& operator=(const Pki&) = delete;
};

// ------------------------------------------------------------------ raw TCP / TLS

void set_timeouts(int fd, int seconds) {
    timeval tv{seconds, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int listen_loopback(int type, std::uint16_t& port) {
    const int fd = socket(AF_INET, type, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        (type == SOCK_STREAM && listen(fd, 16) != 0) ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
    }
    port = ntohs(a.sin_port);
    return fd;
}

int connect_loopback(int type, std::uint16_t port) {
    const int fd = socket(AF_INET, type, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        if (fd >= 0) {
            ::close(fd);
        }
        return -1;
    }
    return fd;
}

struct SslCtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};
using RawCtx = std::unique_ptr<SSL_CTX, SslCtxFree>;
using RawSsl = std::unique_ptr<SSL, SslFree>;

// Plain OpenSSL TLS 1.3 contexts (the reference the TLS tunnel is compared with). The server
// uses the same certificate; the client skips verification (the handshake is not measured).
std::pair<RawCtx, RawCtx> raw_tls_contexts(const Pki& pki) {
    auto ck = tls::CertifiedKey::from_pem(pki.pem.cert_pem, pki.pem.key_pem);
    if (!ck) {
        throw std::runtime_error("certificate");
    }
    RawCtx srv(SSL_CTX_new(TLS_server_method()));
    RawCtx cli(SSL_CTX_new(TLS_client_method()));
    for (SSL_CTX* c : {srv.get(), cli.get()}) {
        SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    }
    if (SSL_CTX_use_certificate(srv.get(), (*ck)->leaf()) != 1 ||
        SSL_CTX_use_PrivateKey(srv.get(), (*ck)->key()) != 1) {
        throw std::runtime_error("raw TLS context");
    }
    SSL_CTX_set_verify(cli.get(), SSL_VERIFY_NONE, nullptr);
    return {std::move(srv), std::move(cli)};
}

Row run_raw_stream(const Options& o, const Pki& pki, bool use_tls) {
    Row row;
    row.key = use_tls ? "tls" : "tcp";
    row.name = use_tls ? "raw TLS 1.3 / TCP (OpenSSL)" : "raw TCP (64 KiB writes)";
    RawCtx sctx, cctx;
    if (use_tls) {
        std::tie(sctx, cctx) = raw_tls_contexts(pki);
    }
    std::uint16_t port = 0;
    const int lfd = listen_loopback(SOCK_STREAM, port);
    Meter meter;
    Progress pr(meter);
    std::latch ready(3);
    std::string cipher;
    const auto deadline_of_send = [&] {
        return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(o.seconds));
    };

    std::thread srv([&] {
        meter.set(true);
        ready.arrive_and_wait();
        pollfd p{lfd, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1) {
            pr.fail("accept timed out");
            return;
        }
        const int fd = accept(lfd, nullptr, nullptr);
        if (fd < 0) {
            pr.fail("accept");
            return;
        }
        set_timeouts(fd, 10);
        std::vector<std::uint8_t> buf(kChunk);
        RawSsl ssl;
        if (use_tls) {
            ssl.reset(SSL_new(sctx.get()));
            SSL_set_fd(ssl.get(), fd);
            if (SSL_accept(ssl.get()) != 1) {
                pr.fail("SSL_accept");
                ::close(fd);
                return;
            }
        }
        std::uint64_t got = 0;
        for (;;) {
            const long n = use_tls ? SSL_read(ssl.get(), buf.data(), static_cast<int>(buf.size()))
                                   : static_cast<long>(read(fd, buf.data(), buf.size()));
            if (n <= 0) {
                break;
            }
            got += static_cast<std::uint64_t>(n);
        }
        pr.received = got;
        if (got == pr.sent.load()) {
            pr.finish();
        } else {
            pr.fail("short read");
        }
        ::close(fd);
    });

    std::thread cli([&] {
        meter.set(false);
        ready.arrive_and_wait();
        const int fd = connect_loopback(SOCK_STREAM, port);
        if (fd < 0) {
            pr.fail("connect");
            return;
        }
        set_timeouts(fd, 10);
        const int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        RawSsl ssl;
        if (use_tls) {
            ssl.reset(SSL_new(cctx.get()));
            SSL_set_fd(ssl.get(), fd);
            if (SSL_connect(ssl.get()) != 1) {
                pr.fail("SSL_connect");
                ::close(fd);
                return;
            }
            cipher = SSL_get_cipher_name(ssl.get());
        }
        const std::vector<std::uint8_t> buf(kChunk, 0x5a);
        pr.mark_start();
        const auto deadline = deadline_of_send();
        std::uint64_t sent = 0;
        while (sent < o.bytes && Clock::now() < deadline) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, o.bytes - sent));
            const long w = use_tls ? SSL_write(ssl.get(), buf.data(), static_cast<int>(n))
                                   : static_cast<long>(write(fd, buf.data(), n));
            if (w <= 0) {
                break;
            }
            sent += static_cast<std::uint64_t>(w);
        }
        pr.sent = sent;
        if (use_tls) {
            (void)SSL_shutdown(ssl.get());
        }
        shutdown(fd, SHUT_WR);
        // Close only after the server read everything: unread session tickets in our receive
        // queue would turn close() into a reset.
        pr.wait(Clock::now() + 20s);
        ::close(fd);
    });
    ready.arrive_and_wait();
    srv.join();
    cli.join();
    ::close(lfd);
    row.ok = pr.done() && pr.error().empty() && pr.started();
    if (pr.started()) {
        fill(row, pr.start(), pr.end(), static_cast<double>(pr.received.load()));
    }
    row.note = row.ok ? (use_tls ? cipher : "") : pr.error();
    return row;
}

// ------------------------------------------------------------------ raw DTLS records over UDP

// A sink that queues each sealed datagram straight into the GSO batch (as the tunnel does).
struct BatchSink final : tls::DatagramSink {
    bool accept(std::span<const std::uint8_t> d) override { return tx->send(fd, d, *to); }
    net::UdpSender* tx = nullptr;
    int fd = -1;
    const net::PeerAddr* to = nullptr;
};

// DTLS 1.2 records (the tunnel's cipher, 1452-byte datagrams) sent with the tunnel's own GSO
// sender and received with its recvmmsg receiver, with no flow or congestion control: the
// sender blasts, the receiver decrypts what arrives. Goodput is measured at the receiver.
// `own` = false: OpenSSL's record layer, each datagram copied out of the engine (the reference
// row as it always was); true: the engine's own record code (DtlsOptions::own_records, as the
// tunnel uses it) with the datagram sealed straight into the GSO batch through a sink.
Row run_raw_dtls(const Options& o, const Pki& pki, bool own) {
    Row row;
    row.key = own ? "dtls-raw-own" : "dtls-raw";
    row.name = own ? "raw DTLS 1.2 / UDP, own records" : "raw DTLS 1.2 / UDP (GSO, no CC)";
    constexpr std::size_t kDatagram = 1452;
    tls::DtlsOptions dopts;
    dopts.mtu = kDatagram;
    dopts.own_records = own;
    auto client = tls::DtlsEngine::client(pki.dtls_client, "localhost", dopts);
    auto server = tls::DtlsEngine::server(pki.dtls_server, dopts);
    std::vector<std::uint8_t> tmp(65536);
    for (int i = 0; i < 100 && !(client->handshake_done() && server->handshake_done()); ++i) {
        while (std::size_t n = client->pop_datagram(tmp)) {
            server->on_datagram(std::span<const std::uint8_t>(tmp).first(n));
        }
        (void)server->read(tmp);
        while (std::size_t n = server->pop_datagram(tmp)) {
            client->on_datagram(std::span<const std::uint8_t>(tmp).first(n));
        }
        (void)client->read(tmp);
    }
    if (!client->handshake_done() || !server->handshake_done()) {
        row.note = "in-memory handshake failed: " + client->error() + server->error();
        return row;
    }
    std::uint16_t port = 0;
    const int rfd = listen_loopback(SOCK_DGRAM, port);
    const int sfd = socket(AF_INET, SOCK_DGRAM, 0);
    for (int fd : {rfd, sfd}) {
        const int sz = 4 * 1024 * 1024;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    net::UdpReceiver::try_enable_gro(rfd);
    net::PeerAddr to;
    {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::memcpy(&to.addr, &a, sizeof a);
        to.len = sizeof a;
    }
    Meter meter;
    Progress pr(meter);
    std::latch ready(3);
    std::atomic<bool> sender_done{false};
    std::atomic<std::uint64_t> datagrams_sent{0};
    std::uint64_t datagrams_received = 0;
    Mark last_rx;

    std::thread srv([&] {
        meter.set(true);
        ready.arrive_and_wait();
        net::UdpReceiver rx;
        std::vector<std::uint8_t> plain(tls::DtlsEngine::kMaxPlaintext);
        std::uint64_t got = 0;
        auto quiet_since = Clock::now();
        const auto hard = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(o.seconds + 10));
        while (Clock::now() < hard) {
            pollfd p{rfd, POLLIN, 0};
            if (poll(&p, 1, 20) != 1) {
                if (sender_done.load() && Clock::now() - quiet_since > 200ms) {
                    break;
                }
                continue;
            }
            int err = 0;
            for (int round = 0; round < 16; ++round) {
                const auto& batch = rx.receive(rfd, err);
                if (batch.empty()) {
                    break;
                }
                for (const auto& d : batch) {
                    ++datagrams_received;
                    server->on_datagram(d.data);
                    for (;;) {
                        auto r = server->read(plain);
                        if (!r || *r == 0) {
                            break;
                        }
                        got += *r;
                    }
                }
            }
            last_rx = meter.take();
            quiet_since = Clock::now();
        }
        pr.received = got;
        pr.finish();
    });

    std::thread cli([&] {
        meter.set(false);
        ready.arrive_and_wait();
        net::UdpSender tx;
        const std::vector<std::uint8_t> buf(kDatagram - client->record_overhead(), 0x5a);
        std::vector<std::uint8_t> cipher(kDatagram + 64);
        pr.mark_start();
        const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(o.seconds));
        std::uint64_t sent = 0;
        std::uint64_t count = 0;
        BatchSink sink;
        sink.tx = &tx;
        sink.fd = sfd;
        sink.to = &to;
        if (own) {
            client->set_sink(&sink);
        }
        while (sent < o.bytes && Clock::now() < deadline) {
            if (!client->write(buf)) {
                break;
            }
            const std::size_t n = client->pop_datagram(cipher);
            if (n == 0) {  // taken by the sink
                sent += buf.size();
                ++count;
                continue;
            }
            while (!tx.send(sfd, std::span<const std::uint8_t>(cipher).first(n), to)) {
                pollfd p{sfd, POLLOUT, 0};
                (void)poll(&p, 1, 10);
            }
            sent += buf.size();
            ++count;
        }
        while (!tx.flush(sfd)) {
            pollfd p{sfd, POLLOUT, 0};
            (void)poll(&p, 1, 10);
        }
        client->set_sink(nullptr);
        pr.sent = sent;
        datagrams_sent = count;
        sender_done = true;
        // Stay alive until the receiver took its last mark (it reads this thread's CPU clock).
        pr.wait(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(o.seconds + 15)));
    });
    ready.arrive_and_wait();
    cli.join();
    srv.join();
    ::close(rfd);
    ::close(sfd);
    row.ok = pr.started() && pr.received.load() > 0;
    if (row.ok) {
        fill(row, pr.start(), last_rx, static_cast<double>(pr.received.load()));
        const double sentd = static_cast<double>(datagrams_sent.load());
        row.note = std::string(client->cipher()) + ", receiver got " +
                   fmt("%.1f", 100.0 * static_cast<double>(datagrams_received) /
                                   std::max(1.0, sentd)) +
                   " % of datagrams";
    }
    return row;
}

// ------------------------------------------------------------------ tunnels

// Runs two io_contexts on two threads (server, client) until stop().
class IoPair {
public:
    explicit IoPair(Meter& m) : meter_(m) {}
    ~IoPair() { stop(); }
    IoPair(const IoPair&) = delete;
    IoPair& operator=(const IoPair&) = delete;

    asio::io_context srv{1};  // one thread runs each (as in the binaries)
    asio::io_context cli{1};

    // Returns once both threads registered their CPU clocks.
    void start() {
        t_srv_ = std::thread([this] {
            meter_.set(true);
            ready_.arrive_and_wait();
            srv.run();
        });
        t_cli_ = std::thread([this] {
            meter_.set(false);
            ready_.arrive_and_wait();
            cli.run();
        });
        ready_.arrive_and_wait();
    }
    void stop() {
        g_srv_.reset();
        g_cli_.reset();
        srv.stop();
        cli.stop();
        if (t_srv_.joinable()) {
            t_srv_.join();
        }
        if (t_cli_.joinable()) {
            t_cli_.join();
        }
    }

private:
    Meter& meter_;
    std::latch ready_{3};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> g_srv_{
        asio::make_work_guard(srv)};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> g_cli_{
        asio::make_work_guard(cli)};
    std::thread t_srv_;
    std::thread t_cli_;
};

// Server side: accepts AUTH, reads and discards; finishes the row when `streams` FINs arrived.
class SinkApp final : public net::TunnelEvents {
public:
    SinkApp(Progress* pr, std::size_t streams) : pr_(pr), streams_(streams), buf_(kChunk) {}

    void on_tunnel_event(net::Tunnel& t, proto::Event& ev) override {
        switch (ev.type) {
            case proto::EventType::kAuthRequest: t.conn().accept_auth(); break;
            case proto::EventType::kStreamReadable: drain(t, ev.stream); break;
            default: break;
        }
    }
    proto::ConnectionStats stats;  // receiver's stats when the last FIN was read

private:
    void drain(net::Tunnel& t, proto::StreamId id) {
        for (;;) {
            auto r = t.conn().stream_read(id, buf_);
            if (!r) {
                return;
            }
            received_ += r->bytes;
            if (r->fin) {
                pr_->received.store(received_, std::memory_order_relaxed);
                if (++fins_ == streams_ && pr_ != nullptr) {
                    stats = t.conn().stats();
                    if (received_ == pr_->sent.load()) {
                        pr_->finish();
                    } else {
                        pr_->fail("received " + std::to_string(received_) + " bytes of " +
                                  std::to_string(pr_->sent.load()));
                    }
                }
                return;
            }
            if (r->bytes == 0) {
                return;
            }
        }
    }

    Progress* pr_;
    std::size_t streams_;
    std::size_t fins_ = 0;
    std::uint64_t received_ = 0;
    std::vector<std::uint8_t> buf_;
};

struct Sample {
    double t = 0;
    proto::ConnectionStats s;
    std::uint64_t buffered = 0;
};

// Client side: opens `streams` streams once established and uploads a preallocated buffer
// until each stream's share of the byte bound is written or the time bound passes.
class SourceApp final : public net::TunnelEvents {
public:
    SourceApp(Progress* pr, std::size_t streams, std::uint64_t bytes, double seconds)
        : pr_(pr), nstreams_(streams), quota_(bytes / streams), seconds_(seconds),
          buf_(kChunk, 0x5a) {}

    void on_tunnel_event(net::Tunnel& t, proto::Event& ev) override {
        switch (ev.type) {
            case proto::EventType::kEstablished: begin(t); break;
            case proto::EventType::kStreamWritable:
                for (auto& [id, s] : streams_) {
                    write_some(t, id, s);
                }
                break;
            case proto::EventType::kConnectionClosed:
                if (!pr_->done()) {
                    pr_->fail("connection closed: " + ev.reason);
                }
                break;
            default: break;
        }
    }

    std::shared_ptr<net::Tunnel> tunnel;  // set by the dial callback (client thread)
    std::vector<Sample> samples;          // client thread; read after the threads stopped

    void sample(const Clock::time_point t0) {
        if (tunnel && tunnel->has_conn() && !tunnel->closed()) {
            Sample s;
            s.t = std::chrono::duration<double>(Clock::now() - t0).count();
            s.s = tunnel->conn().stats();
            s.buffered = tunnel->conn().buffered_bytes();
            samples.push_back(s);
        }
    }

private:
    struct S {
        std::uint64_t sent = 0;
        bool fin = false;
    };

    void begin(net::Tunnel& t) {
        pr_->mark_start();
        deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(seconds_));
        for (std::size_t i = 0; i < nstreams_; ++i) {
            proto::StreamMeta m;
            m.head = proto::HeadType::kRequest;
            m.method = "POST";
            m.target = "/upload";
            m.request_id = std::to_string(i);
            auto r = t.conn().open_stream(m);
            if (!r) {
                pr_->fail("open_stream: " + r.error().message());
                return;
            }
            streams_[*r] = S{};
        }
        for (auto& [id, s] : streams_) {
            write_some(t, id, s);
        }
    }

    void write_some(net::Tunnel& t, proto::StreamId id, S& s) {
        while (!s.fin) {
            if (s.sent >= quota_ || Clock::now() >= deadline_) {
                auto st = t.conn().stream_finish(id);
                if (!st) {
                    if (st.error() != proto::Errc::kWouldBlock) {
                        pr_->fail("stream_finish: " + st.error().message());
                    }
                    return;
                }
                s.fin = true;
                pr_->sent.fetch_add(s.sent);
                return;
            }
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(buf_.size(), quota_ - s.sent));
            auto r = t.conn().stream_write(id, std::span<const std::uint8_t>(buf_).first(n), false);
            if (!r) {
                if (r.error() != proto::Errc::kWouldBlock) {
                    pr_->fail("stream_write: " + r.error().message());
                }
                return;
            }
            s.sent += *r;
            if (*r < n) {
                return;
            }
        }
    }

    Progress* pr_;
    std::size_t nstreams_;
    std::uint64_t quota_;
    double seconds_;
    Clock::time_point deadline_{};
    std::vector<std::uint8_t> buf_;
    std::map<proto::StreamId, S> streams_;
};

// hopgate-impair as a child process. Every wait is bounded.
class Relay {
public:
    Relay(const std::string& bin, const std::vector<std::string>& args) {
        int out[2];
        if (pipe(out) != 0) {
            return;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addclose(&fa, out[0]);
        std::vector<std::string> all{bin};
        all.insert(all.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : all) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        if (posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ) != 0) {
            pid_ = -1;
        }
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        fd_ = out[0];
        if (pid_ <= 0) {
            return;
        }
        // First line: {"listen":"127.0.0.1:PORT","control":...}
        std::string line;
        const auto deadline = Clock::now() + 5s;
        while (Clock::now() < deadline) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 100) != 1) {
                continue;
            }
            char c = 0;
            if (read(fd_, &c, 1) != 1 || c == '\n') {
                break;
            }
            line += c;
        }
        const std::string key = "\"listen\":\"127.0.0.1:";
        if (auto at = line.find(key); at != std::string::npos) {
            port_ = static_cast<std::uint16_t>(std::stoul(line.substr(at + key.size())));
        }
    }
    ~Relay() {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            int status = 0;
            for (int i = 0; i < 300 && waitpid(pid_, &status, WNOHANG) != pid_; ++i) {
                std::this_thread::sleep_for(10ms);
                if (i == 299) {
                    kill(pid_, SIGKILL);
                    waitpid(pid_, &status, 0);
                }
            }
        }
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    std::uint16_t port() const { return port_; }
    // utime + stime of the relay process, seconds.
    double cpu() const {
        std::ifstream f("/proc/" + std::to_string(pid_) + "/stat");
        std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        const auto rp = s.rfind(')');
        if (rp == std::string::npos) {
            return 0;
        }
        std::istringstream in(s.substr(rp + 2));
        std::string field;
        double ut = 0;
        double st = 0;
        for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 3.. after "pid (comm)"
            if (i == 14) {
                ut = std::stod(field);
            } else if (i == 15) {
                st = std::stod(field);
            }
        }
        return (ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }

private:
    pid_t pid_ = -1;
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

enum class Kind { kTls, kDtls, kDtlsRelay };

Row run_tunnel(const Options& o, const Pki& pki, Kind kind, std::size_t streams) {
    Row row;
    const std::string n = std::to_string(streams);
    switch (kind) {
        case Kind::kTls:
            row.key = "tls" + n;
            row.name = "TLS/TCP tunnel, " + n + " stream" + (streams > 1 ? "s" : "");
            break;
        case Kind::kDtls:
            row.key = "dtls" + n;
            row.name = "DTLS tunnel, " + n + " stream" + (streams > 1 ? "s" : "");
            break;
        case Kind::kDtlsRelay:
            row.key = "relay" + n;
            row.name = "DTLS tunnel via relay 1%/20ms, " + n;
            break;
    }
    std::unique_ptr<Relay> relay;
    Meter meter;
    Progress pr(meter);
    SinkApp sink(&pr, streams);
    SourceApp source(&pr, streams, o.bytes, o.seconds);
    net::TransportOptions topts;
    topts.conn.domain = "bench.example.com";
    topts.conn.api_key = std::string(64, 'a');
    if (o.ack_every > 0) {
        topts.conn.ack_eliciting_threshold = o.ack_every;
    }

    IoPair io(meter);
    const auto any = asio::ip::make_address("127.0.0.1");
    auto on_tunnel = [&sink](const std::shared_ptr<net::Tunnel>& t) { t->set_events(&sink); };
    std::unique_ptr<net::DtlsServer> dsrv;
    std::unique_ptr<net::TlsServer> tsrv;
    if (kind == Kind::kTls) {
        tsrv = std::make_unique<net::TlsServer>(io.srv, asio::ip::tcp::endpoint(any, 0),
                                                pki.tls_server, topts, on_tunnel);
        tsrv->start();
    } else {
        dsrv = std::make_unique<net::DtlsServer>(io.srv, asio::ip::udp::endpoint(any, 0),
                                                 pki.dtls_server, topts, on_tunnel);
        dsrv->start();
    }
    std::uint16_t port = tsrv ? tsrv->local_endpoint().port() : dsrv->local_endpoint().port();
    if (kind == Kind::kDtlsRelay) {
        if (o.impair_bin.empty() || access(o.impair_bin.c_str(), X_OK) != 0) {
            row.note = "hopgate-impair not found (--impair PATH)";
            return row;
        }
        relay = std::make_unique<Relay>(
            o.impair_bin,
            std::vector<std::string>{"--udp", "--listen", "127.0.0.1:0", "--target",
                                     "127.0.0.1:" + std::to_string(port), "--loss", "1",
                                     "--delay-ms", "10", "--seed", "7"});
        if (relay->port() == 0) {
            row.note = "hopgate-impair did not start";
            return row;
        }
        port = relay->port();
    }
    const double relay_cpu0 = relay ? relay->cpu() : 0;

    asio::post(io.cli, [&] {
        auto done = [&](std::shared_ptr<net::Tunnel> t, const std::string& err) {
            if (!t) {
                pr.fail("dial: " + err);
                return;
            }
            source.tunnel = std::move(t);
        };
        if (kind == Kind::kTls) {
            net::dial_tls(io.cli, {any, port}, pki.tls_client, "localhost", topts, &source, done);
        } else {
            net::dial_dtls(io.cli, {any, port}, pki.dtls_client, "localhost", topts, &source,
                           done);
        }
    });
    // Sender-side ConnectionStats every 100 ms (cheap; explains an idle CPU).
    const auto t0 = Clock::now();
    asio::steady_timer sampler(io.cli);
    std::function<void()> tick = [&] {
        source.sample(t0);
        sampler.expires_after(100ms);
        sampler.async_wait([&](const boost::system::error_code& ec) {
            if (!ec) {
                tick();
            }
        });
    };
    asio::post(io.cli, tick);
    io.start();
    const auto hard = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(o.seconds * 2 + 20));
    const bool finished = pr.wait(hard);
    const double relay_cpu1 = relay ? relay->cpu() : 0;

    // Tear down on the owning threads, then stop both loops.
    std::promise<void> cli_down;
    asio::post(io.cli, [&] {
        sampler.cancel();
        source.sample(t0);
        if (source.tunnel) {
            source.tunnel->abort();
        }
        cli_down.set_value();
    });
    (void)cli_down.get_future().wait_for(2s);
    std::promise<void> srv_down;
    asio::post(io.srv, [&] {
        if (dsrv) {
            dsrv->stop();
        }
        if (tsrv) {
            tsrv->stop();
        }
        srv_down.set_value();
    });
    (void)srv_down.get_future().wait_for(2s);
    io.stop();

    row.ok = finished && pr.error().empty();
    if (pr.started()) {
        const Mark end = finished ? pr.end() : meter.take();
        fill(row, pr.start(), end, static_cast<double>(pr.received.load()));
    }
    if (relay) {
        row.relay_cpu = relay_cpu1 - relay_cpu0;
    }
    if (!row.ok) {
        row.note = finished ? pr.error() : "timed out";
    }
    // Sender-side summary: what limited it.
    if (!source.samples.empty()) {
        const auto& last = source.samples.back().s;
        double cw = 0;
        double inflight = 0;
        double srtt = 0;
        std::size_t k = 0;
        for (const auto& s : source.samples) {
            if (s.s.stream_bytes_sent == 0) {
                continue;
            }
            cw += static_cast<double>(s.s.cwnd);
            inflight += static_cast<double>(s.s.bytes_in_flight);
            srtt += static_cast<double>(s.s.smoothed_rtt.count());
            ++k;
        }
        if (kind != Kind::kTls && k > 0) {
            const double lost = 100.0 * static_cast<double>(last.packets_lost) /
                                std::max<double>(1, static_cast<double>(last.packets_sent));
            std::string note = "cwnd " + fmt("%.0f", cw / static_cast<double>(k) / 1024) +
                               " KiB, in flight " +
                               fmt("%.0f", inflight / static_cast<double>(k) / 1024) +
                               " KiB, srtt " + fmt("%.2f", srtt / static_cast<double>(k) / 1000) +
                               " ms, lost " + fmt("%.2f", lost) + " %, mtu " +
                               std::to_string(last.path_mtu);
            row.note = row.note.empty() ? note : row.note + "; " + note;
        }
        if (o.trace) {
            std::printf("  trace %s: t[s] cwnd[KiB] inflight[KiB] srtt[ms] buffered[KiB] "
                        "sent[MiB] lost pto\n",
                        row.key.c_str());
            for (const auto& s : source.samples) {
                std::printf("    %5.2f %8.0f %8.0f %7.2f %8.0f %8.1f %6llu %4llu\n", s.t,
                            static_cast<double>(s.s.cwnd) / 1024,
                            static_cast<double>(s.s.bytes_in_flight) / 1024,
                            static_cast<double>(s.s.smoothed_rtt.count()) / 1000,
                            static_cast<double>(s.buffered) / 1024,
                            static_cast<double>(s.s.stream_bytes_sent) / 1048576.0,
                            static_cast<unsigned long long>(s.s.packets_lost),
                            static_cast<unsigned long long>(s.s.pto_count_total));
            }
            std::printf("    receiver: packets %llu, dropped %llu\n",
                        static_cast<unsigned long long>(sink.stats.packets_received),
                        static_cast<unsigned long long>(sink.stats.dropped_packets));
        }
    }
    source.tunnel.reset();
    return row;
}

// ------------------------------------------------------------------ handshakes

// Client side of the handshake rows: keeps `parallel` dials in flight until the deadline;
// counts tunnels that reached kEstablished (AUTH accepted) and closes each at once.
class DialerApp final : public net::TunnelEvents {
public:
    DialerApp(asio::io_context& io, Progress* pr, std::function<void(DialerApp&)> dial,
              std::size_t parallel, double seconds)
        : io_(io), pr_(pr), dial_(std::move(dial)), parallel_(parallel), seconds_(seconds) {}

    void start() {
        pr_->mark_start();
        deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(seconds_));
        for (std::size_t i = 0; i < parallel_; ++i) {
            next();
        }
    }
    void on_dialed(std::shared_ptr<net::Tunnel> t, const std::string& err) {
        if (!t) {
            ++errors;
            last_error = err;
            --inflight_;
            next();
            return;
        }
        live_[t.get()] = std::move(t);
    }
    void on_tunnel_event(net::Tunnel& t, proto::Event& ev) override {
        if (ev.type == proto::EventType::kEstablished) {
            ++completed;
            pr_->received.store(completed);
            if (auto it = live_.find(&t); it != live_.end()) {
                asio::post(io_, [tun = std::move(it->second)] { tun->abort(); });
                live_.erase(it);
            }
            --inflight_;
            next();
        } else if (ev.type == proto::EventType::kConnectionClosed && !ev.by_peer &&
                   live_.count(&t) != 0) {
            ++errors;
            last_error = ev.reason;
            live_.erase(&t);
            --inflight_;
            next();
        }
    }
    void abort_all() {
        for (auto& [p, t] : live_) {
            t->abort();
        }
        live_.clear();
    }

    std::uint64_t completed = 0;
    std::uint64_t errors = 0;
    std::string last_error;

private:
    void next() {
        if (Clock::now() >= deadline_) {
            if (inflight_ == 0) {
                pr_->finish();
            }
            return;
        }
        ++inflight_;
        dial_(*this);
    }

    asio::io_context& io_;
    Progress* pr_;
    std::function<void(DialerApp&)> dial_;
    std::size_t parallel_;
    double seconds_;
    std::size_t inflight_ = 0;
    Clock::time_point deadline_{};
    std::map<net::Tunnel*, std::shared_ptr<net::Tunnel>> live_;
};

Row run_handshakes(const Options& o, const Pki& pki, bool dtls, std::size_t parallel) {
    Row row;
    row.handshake = true;
    row.key = std::string(dtls ? "hs-dtls" : "hs-tls") + (parallel > 1 ? std::to_string(parallel) : "");
    row.name = std::string(dtls ? "DTLS" : "TLS") + " handshake+AUTH, " +
               (parallel > 1 ? std::to_string(parallel) + " parallel" : "sequential");
    Meter meter;
    Progress pr(meter);
    SinkApp sink(nullptr, 0);
    net::TransportOptions topts;
    topts.conn.domain = "bench.example.com";
    topts.conn.api_key = std::string(64, 'a');
    IoPair io(meter);
    const auto any = asio::ip::make_address("127.0.0.1");
    auto on_tunnel = [&sink](const std::shared_ptr<net::Tunnel>& t) { t->set_events(&sink); };
    std::unique_ptr<net::DtlsServer> dsrv;
    std::unique_ptr<net::TlsServer> tsrv;
    std::uint16_t port = 0;
    if (dtls) {
        dsrv = std::make_unique<net::DtlsServer>(io.srv, asio::ip::udp::endpoint(any, 0),
                                                 pki.dtls_server, topts, on_tunnel);
        dsrv->start();
        port = dsrv->local_endpoint().port();
    } else {
        tsrv = std::make_unique<net::TlsServer>(io.srv, asio::ip::tcp::endpoint(any, 0),
                                                pki.tls_server, topts, on_tunnel);
        tsrv->start();
        port = tsrv->local_endpoint().port();
    }
    auto dial = [&](DialerApp& app) {
        auto done = [&app](std::shared_ptr<net::Tunnel> t, const std::string& err) {
            app.on_dialed(std::move(t), err);
        };
        if (dtls) {
            net::dial_dtls(io.cli, {any, port}, pki.dtls_client, "localhost", topts, &app, done);
        } else {
            net::dial_tls(io.cli, {any, port}, pki.tls_client, "localhost", topts, &app, done);
        }
    };
    DialerApp app(io.cli, &pr, dial, parallel, o.hs_seconds);
    asio::post(io.cli, [&] { app.start(); });
    io.start();
    const bool finished = pr.wait(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                     std::chrono::duration<double>(
                                                         o.hs_seconds + 15)));
    std::promise<void> cli_down;
    asio::post(io.cli, [&] {
        app.abort_all();
        cli_down.set_value();
    });
    (void)cli_down.get_future().wait_for(2s);
    net::ServerStats ss;
    std::promise<void> srv_down;
    asio::post(io.srv, [&] {
        if (dsrv) {
            ss = dsrv->stats();
            dsrv->stop();
        }
        if (tsrv) {
            tsrv->stop();
        }
        srv_down.set_value();
    });
    (void)srv_down.get_future().wait_for(2s);
    io.stop();
    row.ok = finished && app.completed > 0;
    if (pr.started()) {
        fill(row, pr.start(), finished ? pr.end() : meter.take(),
             static_cast<double>(app.completed));
    }
    row.note = std::to_string(app.completed) + " done, " + std::to_string(app.errors) + " failed";
    if (dtls) {
        row.note += ", cookies " + std::to_string(ss.cookies_sent) + ", server failed " +
                    std::to_string(ss.handshakes_failed);
    }
    if (!app.last_error.empty()) {
        row.note += " (" + app.last_error + ")";
    }
    if (!finished) {
        row.note += ", timed out";
    }
    return row;
}

// ------------------------------------------------------------------ report

const Row* find(const std::vector<Row>& rows, const std::string& key) {
    for (const auto& r : rows) {
        if (r.key == key && r.ok) {
            return &r;
        }
    }
    return nullptr;
}

void print_table(const std::vector<Row>& rows) {
    std::printf("\n%-36s %10s %12s %7s %7s %7s %8s  %s\n", "row", "rate", "CPU cost", "moved",
                "server", "client", "relay", "notes");
    std::printf("%-36s %10s %12s %7s %7s %7s %8s\n", "", "MB/s|hs/s", "s/GiB|ms/hs", "MiB|n",
                "cpu+rq%", "cpu+rq%", "s/GiB");
    for (const auto& r : rows) {
        const double amount = r.handshake ? r.amount : r.amount / 1048576.0;
        const std::string relay = r.relay_cpu >= 0 && r.amount > 0
                                      ? fmt("%.2f", r.relay_cpu / (r.amount / kGiB))
                                      : "-";
        auto pct = [&](double cpu, double rq) {
            if (r.wall <= 0) {
                return std::string("-");
            }
            return fmt("%.0f", 100 * cpu / r.wall) + "+" + fmt("%.0f", 100 * rq / r.wall);
        };
        std::printf("%-36s %10.1f %12.3f %7.0f %7s %7s %8s  %s%s\n", r.name.c_str(), r.rate(),
                    r.cost(), amount, pct(r.srv_cpu, r.srv_rq).c_str(),
                    pct(r.cli_cpu, r.cli_rq).c_str(), relay.c_str(), r.ok ? "" : "FAILED: ",
                    r.note.c_str());
    }
}

void print_ratios(const std::vector<Row>& rows) {
    struct Pair {
        const char* a;
        const char* b;
    };
    const Pair pairs[] = {
        {"tls1", "tls"},     {"tls8", "tls"},     {"tls1", "tcp"},   {"dtls1", "dtls-raw"},
        {"dtls8", "dtls-raw"}, {"dtls1", "tcp"},  {"dtls1", "tls"},  {"dtls1", "tls1"},
        {"dtls1", "dtls-raw-own"}, {"dtls8", "dtls-raw-own"}, {"relay1", "dtls1"}, {"relay8", "dtls8"}, {"hs-dtls4", "hs-dtls"}, {"hs-dtls", "hs-tls"},
    };
    std::printf("\nratios (a / b)                                  rate   CPU cost\n");
    for (const auto& p : pairs) {
        const Row* a = find(rows, p.a);
        const Row* b = find(rows, p.b);
        if (a == nullptr || b == nullptr || b->rate() <= 0 || b->cost() <= 0) {
            continue;
        }
        std::printf("  %-12s / %-28s %6.2f   %6.2f\n", p.a, b->name.c_str(),
                    a->rate() / b->rate(), a->cost() / b->cost());
    }
    // The goal: within 70 % of raw DTLS with GSO (550-600 MB/s) and TLS/TCP (850-950).
    if (const Row* d = find(rows, "dtls1")) {
        std::printf("  DTLS tunnel x1 vs the issue's goal (0.7 x 550 MB/s = 385): %.2f\n",
                    d->rate() / 385.0);
    }
    if (const Row* t = find(rows, "tls1")) {
        std::printf("  TLS tunnel x1 vs the issue's goal (0.7 x 850 MB/s = 595):  %.2f\n",
                    t->rate() / 595.0);
    }
}

std::string self_dir() {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        return ".";
    }
    std::string p(buf, static_cast<std::size_t>(n));
    return p.substr(0, p.rfind('/'));
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    bool seconds_set = false;
    bool bytes_set = false;
    bool hs_set = false;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) {
                    throw std::invalid_argument(a + " needs a value");
                }
                return argv[++i];
            };
            if (a == "--quick") {
                o.quick = true;
            } else if (a == "--seconds") {
                o.seconds = std::stod(value());
                seconds_set = true;
            } else if (a == "--mib") {
                o.bytes = std::stoull(value()) << 20;
                bytes_set = true;
            } else if (a == "--hs-seconds") {
                o.hs_seconds = std::stod(value());
                hs_set = true;
            } else if (a == "--impair") {
                o.impair_bin = value();
            } else if (a == "--only") {
                std::stringstream ss(value());
                for (std::string k; std::getline(ss, k, ',');) {
                    o.only.push_back(k);
                }
            } else if (a == "--trace") {
                o.trace = true;
            } else if (a == "--ack-every") {
                o.ack_every = static_cast<unsigned>(std::stoul(value()));
            } else if (a == "--help" || a == "-h") {
                usage();
                return 0;
            } else {
                throw std::invalid_argument("unknown argument " + a);
            }
        }
        if (o.quick) {
            o.seconds = seconds_set ? o.seconds : 1.5;
            o.bytes = bytes_set ? o.bytes : 256ull << 20;
            o.hs_seconds = hs_set ? o.hs_seconds : 1.0;
        }
        if (!(o.seconds > 0 && o.seconds <= 60) || o.bytes == 0 ||
            !(o.hs_seconds > 0 && o.hs_seconds <= 60)) {
            throw std::invalid_argument("--seconds/--hs-seconds must be in (0, 60], --mib > 0");
        }
        if (o.impair_bin.empty() || access(o.impair_bin.c_str(), X_OK) != 0) {
            const std::string next = self_dir() + "/hopgate-impair";
            if (access(next.c_str(), X_OK) == 0) {
                o.impair_bin = next;
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tunnel_bench: %s (see --help)\n", e.what());
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    try {
        const auto t_start = Clock::now();
        Pki pki;
        std::printf("tunnel_bench: loopback, %u cores, per bulk row <= %.0f MiB and <= %.1f s of "
                    "sending; handshake rows %.1f s%s\n",
                    std::thread::hardware_concurrency(), static_cast<double>(o.bytes) / 1048576.0,
                    o.seconds, o.hs_seconds, o.quick ? " (--quick)" : "");
        std::vector<Row> rows;
        auto run = [&](const std::string& key, const std::function<Row()>& f) {
            if (!o.selected(key)) {
                return;
            }
            std::fprintf(stderr, "  running %s ...\n", key.c_str());
            rows.push_back(f());
        };
        run("tcp", [&] { return run_raw_stream(o, pki, false); });
        run("tls", [&] { return run_raw_stream(o, pki, true); });
        run("dtls-raw", [&] { return run_raw_dtls(o, pki, false); });
        run("dtls-raw-own", [&] { return run_raw_dtls(o, pki, true); });
        run("tls1", [&] { return run_tunnel(o, pki, Kind::kTls, 1); });
        run("tls8", [&] { return run_tunnel(o, pki, Kind::kTls, 8); });
        run("dtls1", [&] { return run_tunnel(o, pki, Kind::kDtls, 1); });
        run("dtls8", [&] { return run_tunnel(o, pki, Kind::kDtls, 8); });
        run("relay1", [&] { return run_tunnel(o, pki, Kind::kDtlsRelay, 1); });
        run("relay8", [&] { return run_tunnel(o, pki, Kind::kDtlsRelay, 8); });
        run("hs-dtls", [&] { return run_handshakes(o, pki, true, 1); });
        run("hs-dtls4", [&] { return run_handshakes(o, pki, true, 4); });
        run("hs-tls", [&] { return run_handshakes(o, pki, false, 1); });
        print_table(rows);
        print_ratios(rows);
        double load[3] = {0, 0, 0};
        if (getloadavg(load, 3) > 0) {
            std::printf("\nload average %.2f %.2f %.2f; total run %.1f s. MB = 10^6 bytes; CPU "
                        "= whole process (both threads); server/client cpu+rq%% = each thread's "
                        "CPU time + run-queue wait (runnable, no CPU free) over the row's wall "
                        "time; the rest is idle (blocked on I/O or timers).\n",
                        load[0], load[1], load[2],
                        std::chrono::duration<double>(Clock::now() - t_start).count());
        }
        bool all_ok = true;
        for (const auto& r : rows) {
            all_ok = all_ok && r.ok;
        }
        return all_ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tunnel_bench: %s\n", e.what());
        return 1;
    }
}
