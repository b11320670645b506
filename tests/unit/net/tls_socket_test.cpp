// net::TlsSocket on real loopback TCP: handshake and 1 MiB each way, the error codes of
// asio::ssl::stream (eof, stream_truncated, operation_aborted, bad_descriptor), completions never
// inline, small buffers coalesced into one write, and record buffers released while idle.
#include "net/tls_socket.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "tls/certs.hpp"
#include "tls/context.hpp"

namespace hopgate::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Bytes = std::vector<std::uint8_t>;

tls::ContextPtr server_ctx() {
    static tls::ContextPtr ctx = [] {
        auto pem = tls::generate_self_signed({"localhost"});
        return tls::make_server_context(pem.cert_pem, pem.key_pem, tls::Protocol::kTls,
                                        {"http/1.1"});
    }();
    return ctx;
}
tls::ContextPtr client_ctx() {
    static tls::ContextPtr ctx =
        tls::make_client_context(tls::ClientTrust{"", true}, tls::Protocol::kTls, {"http/1.1"});
    return ctx;
}

// A connected pair of TlsSockets (server, client) after a completed handshake.
struct Pair {
    asio::io_context io;
    std::optional<TlsSocket> server;
    std::optional<TlsSocket> client;

    Pair() {
        tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        tcp::socket c(io);
        c.connect(acc.local_endpoint());
        tcp::socket s = acc.accept();
        server.emplace(std::move(s), server_ctx()->native());
        client.emplace(std::move(c), client_ctx()->native());
        int done = 0;
        boost::system::error_code sec, cec;
        server->async_handshake(asio::ssl::stream_base::server, [&](auto ec) {
            sec = ec;
            ++done;
        });
        client->async_handshake(asio::ssl::stream_base::client, [&](auto ec) {
            cec = ec;
            ++done;
        });
        run_until([&] { return done == 2; });
        EXPECT_FALSE(sec) << sec.message();
        EXPECT_FALSE(cec) << cec.message();
    }

    template <class F>
    void run_until(F pred) {
        for (int i = 0; i < 1000 && !pred(); ++i) {
            if (io.stopped()) {
                io.restart();  // it ran out of work before: there may be new work now
            }
            io.run_one_for(std::chrono::milliseconds(10));
        }
        ASSERT_TRUE(pred());
    }
};

std::size_t heap_in_use() { return ::mallinfo2().uordblks; }

// False under ASan or valgrind, whose allocators glibc's mallinfo2 does not see.
bool heap_stats_work() {
    static void* volatile sink = nullptr;
    const std::size_t before = heap_in_use();
    sink = std::malloc(64 * 1024);
    const std::size_t during = heap_in_use();
    std::free(sink);
    sink = nullptr;
    return during >= before + 32 * 1024;
}

// Pins: 1 MiB each way at once (random data through asio's composed read/write) arrives intact.
TEST(TlsSocket, OneMebibyteEachWay) {
    Pair p;
    const std::size_t n = 1 << 20;
    Bytes up(n), down(n), got_up(n), got_down(n);
    for (std::size_t i = 0; i < n; ++i) {
        up[i] = static_cast<std::uint8_t>(i * 7 + 3);
        down[i] = static_cast<std::uint8_t>(i * 13 + 1);
    }
    int done = 0;
    auto count = [&](boost::system::error_code ec, std::size_t k) {
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_EQ(k, n);
        ++done;
    };
    asio::async_write(*p.client, asio::buffer(up), count);
    asio::async_write(*p.server, asio::buffer(down), count);
    asio::async_read(*p.server, asio::buffer(got_up), count);
    asio::async_read(*p.client, asio::buffer(got_down), count);
    p.run_until([&] { return done == 4; });
    EXPECT_EQ(got_up, up);
    EXPECT_EQ(got_down, down);
}

// Pins: a completion is never run inside the initiating call, even when OpenSSL has the data.
TEST(TlsSocket, CompletionNeverInline) {
    Pair p;
    const std::array<std::uint8_t, 4> msg{1, 2, 3, 4};
    bool wrote = false;
    asio::async_write(*p.client, asio::buffer(msg), [&](auto ec, std::size_t) {
        EXPECT_FALSE(ec);
        wrote = true;
    });
    p.run_until([&] { return wrote; });
    std::array<std::uint8_t, 2> buf{};
    int reads = 0;
    bool returned = false;
    for (int i = 0; i < 2; ++i) {
        returned = false;
        p.server->async_read_some(asio::buffer(buf), [&](auto ec, std::size_t k) {
            EXPECT_TRUE(returned) << "completion ran inside async_read_some";
            EXPECT_FALSE(ec);
            EXPECT_EQ(k, 2u);
            ++reads;
        });
        returned = true;
        p.run_until([&] { return reads == i + 1; });
    }
}

// Pins: eof after the peer's close_notify; stream_truncated after a TCP close without it.
TEST(TlsSocket, EofAndTruncation) {
    {
        Pair p;
        SSL_shutdown(p.client->native_handle());  // sends close_notify (non-blocking: fits)
        std::array<std::uint8_t, 16> buf{};
        std::optional<boost::system::error_code> got;
        p.server->async_read_some(asio::buffer(buf), [&](auto ec, std::size_t) { got = ec; });
        p.run_until([&] { return got.has_value(); });
        EXPECT_EQ(*got, asio::error::eof);
    }
    {
        Pair p;
        p.client->next_layer().close();
        std::array<std::uint8_t, 16> buf{};
        std::optional<boost::system::error_code> got;
        p.server->async_read_some(asio::buffer(buf), [&](auto ec, std::size_t) { got = ec; });
        p.run_until([&] { return got.has_value(); });
        EXPECT_EQ(*got, asio::ssl::error::stream_truncated) << got->message();
    }
}

// Pins: closing the socket aborts a pending read; an operation started on a closed socket
// fails with bad_descriptor (OpenSSL never touches the old descriptor number).
TEST(TlsSocket, ClosedSocket) {
    Pair p;
    std::array<std::uint8_t, 16> buf{};
    std::optional<boost::system::error_code> pending, late;
    p.server->async_read_some(asio::buffer(buf), [&](auto ec, std::size_t) { pending = ec; });
    p.io.restart();
    p.io.poll();
    EXPECT_FALSE(pending.has_value());
    p.server->next_layer().close();
    p.run_until([&] { return pending.has_value(); });
    EXPECT_EQ(*pending, asio::error::operation_aborted);
    p.server->async_write_some(asio::buffer(buf), [&](auto ec, std::size_t) { late = ec; });
    p.run_until([&] { return late.has_value(); });
    EXPECT_EQ(*late, asio::error::bad_descriptor);
}

// Pins: a sequence of small buffers goes out in one write_some (one record), all of it.
TEST(TlsSocket, SmallBuffersCoalesced) {
    Pair p;
    std::array<std::array<std::uint8_t, 10>, 12> parts{};
    std::vector<asio::const_buffer> seq;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        parts[i].fill(static_cast<std::uint8_t>(i));
        seq.emplace_back(asio::buffer(parts[i]));
    }
    std::optional<std::size_t> wrote;
    p.server->async_write_some(seq, [&](auto ec, std::size_t k) {
        EXPECT_FALSE(ec);
        wrote = k;
    });
    p.run_until([&] { return wrote.has_value(); });
    EXPECT_EQ(*wrote, 120u);
    std::array<std::uint8_t, 120> got{};
    bool read = false;
    asio::async_read(*p.client, asio::buffer(got), [&](auto ec, std::size_t) {
        EXPECT_FALSE(ec);
        read = true;
    });
    p.run_until([&] { return read; });
    for (std::size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i], i / 10);
    }
}

// Pins: a server handshake on a connection that sends nothing holds no handshake state (OpenSSL
// starts once the socket is readable: ~30 KiB otherwise); the peer's close then fails it.
TEST(TlsSocket, SilentPeerHoldsNoHandshakeState) {
    const bool measure = heap_stats_work();
    asio::io_context io;
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket c(io);
    c.connect(acc.local_endpoint());
    TlsSocket server(acc.accept(), server_ctx()->native());
    std::optional<boost::system::error_code> got;
    const std::size_t before = heap_in_use();
    server.async_handshake(asio::ssl::stream_base::server, [&](auto ec) { got = ec; });
    io.poll();
    const std::size_t waiting = heap_in_use();
    EXPECT_FALSE(got.has_value());
    if (measure) {
        EXPECT_LT(waiting, before + 8 * 1024) << "heap " << before << " -> " << waiting;
    }
    c.close();
    for (int i = 0; i < 1000 && !got; ++i) {
        io.restart();
        io.run_one_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, asio::ssl::error::stream_truncated) << got->message();
}

// Pins: after release_buffers() a connection waiting for its next request holds no record
// buffers (~34 KiB less heap than while busy), and the next request still arrives intact.
TEST(TlsSocket, IdleConnectionHoldsNoRecordBuffers) {
    const bool measure = heap_stats_work();
    Pair p;
    Bytes msg(50000, 0x5a);
    Bytes got(msg.size());
    int done = 0;
    // A busy exchange: both record buffers are allocated and kept (no release between records).
    asio::async_write(*p.client, asio::buffer(msg), [&](auto ec, std::size_t) {
        EXPECT_FALSE(ec);
        ++done;
    });
    asio::async_read(*p.server, asio::buffer(got), [&](auto ec, std::size_t) {
        EXPECT_FALSE(ec);
        ++done;
    });
    asio::async_write(*p.server, asio::buffer(msg), [&](auto ec, std::size_t) {
        EXPECT_FALSE(ec);
        ++done;
    });
    Bytes back(msg.size());
    asio::async_read(*p.client, asio::buffer(back), [&](auto ec, std::size_t) {
        EXPECT_FALSE(ec);
        ++done;
    });
    p.run_until([&] { return done == 4; });
    std::array<std::uint8_t, 64> buf{};
    std::optional<std::size_t> next;
    boost::system::error_code next_ec;
    auto wait_next = [&] {
        p.server->async_read_some(asio::buffer(buf), [&](auto ec, std::size_t k) {
            next_ec = ec;
            next = k;
        });
        p.io.restart();
        p.io.poll();  // the read finds nothing and waits
    };

    // Busy: waiting with the buffers kept.
    const std::size_t before = heap_in_use();
    wait_next();
    const std::size_t busy = heap_in_use();
    p.server->next_layer().cancel();
    p.run_until([&] { return next.has_value(); });
    EXPECT_EQ(next_ec, asio::error::operation_aborted);
    next.reset();

    EXPECT_TRUE(p.server->release_buffers());
    const std::size_t released = heap_in_use();
    wait_next();  // with SSL_MODE_RELEASE_BUFFERS the empty read frees its buffer again
    const std::size_t idle = heap_in_use();
    if (measure) {
        EXPECT_GE(busy, idle + 30 * 1024) << "before " << before << " released " << released;
    }

    const std::array<std::uint8_t, 5> req{'h', 'e', 'l', 'l', 'o'};
    asio::async_write(*p.client, asio::buffer(req), [](auto, std::size_t) {});
    p.run_until([&] { return next.has_value(); });
    EXPECT_FALSE(next_ec) << next_ec.message();
    EXPECT_EQ(*next, 5u);
    EXPECT_EQ(std::memcmp(buf.data(), req.data(), 5), 0);
}

}  // namespace
}  // namespace hopgate::net
