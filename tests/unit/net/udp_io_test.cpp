// UdpSender / UdpReceiver on real loopback sockets: batching with GSO, the zero-copy
// reserve/commit path, datagrams that cannot join a batch, and destination changes.
#include "net/udp_io.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace hopgate::net {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A non-blocking UDP socket bound to 127.0.0.1 on an ephemeral port.
struct Sock {
    Sock() {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        addr.len = sizeof(sockaddr_in);
        EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr.addr), &addr.len), 0);
        UdpReceiver::try_enable_gro(fd);
    }
    ~Sock() { ::close(fd); }
    Sock(const Sock&) = delete;
    Sock& operator=(const Sock&) = delete;
    int fd = -1;
    PeerAddr addr;
};

Bytes datagram(std::size_t size, std::uint8_t tag) {
    Bytes d(size);
    for (std::size_t i = 0; i < size; ++i) {
        d[i] = static_cast<std::uint8_t>(tag + i * 7);
    }
    return d;
}

// Everything `s` receives until `want` datagrams arrived or 2 s passed.
std::vector<Bytes> receive(Sock& s, std::size_t want) {
    UdpReceiver rx(8, 65536);
    std::vector<Bytes> got;
    while (got.size() < want) {
        pollfd p{s.fd, POLLIN, 0};
        if (::poll(&p, 1, 2000) <= 0) {
            break;
        }
        int err = 0;
        for (const auto& d : rx.receive(s.fd, err)) {
            got.emplace_back(d.data.begin(), d.data.end());
        }
        EXPECT_EQ(err, 0);
    }
    return got;
}

// Writes `d` through reserve/commit.
void put(UdpSender& tx, int fd, const PeerAddr& to, const Bytes& d, std::size_t room) {
    auto slot = tx.reserve(fd, room, to);
    ASSERT_GE(slot.size(), d.size());
    std::memcpy(slot.data(), d.data(), d.size());
    tx.commit(d.size());
}

// Pins that equal-sized datagrams sent in one batch arrive intact, in order, as datagrams.
TEST(UdpSender, BatchArrivesAsDatagrams) {
    Sock a, b;
    UdpSender tx;
    std::vector<Bytes> sent;
    for (int i = 0; i < 40; ++i) {
        sent.push_back(datagram(1200, static_cast<std::uint8_t>(i)));
        ASSERT_TRUE(tx.send(a.fd, sent.back(), b.addr));
    }
    sent.push_back(datagram(300, 99));  // a shorter one may end the batch
    ASSERT_TRUE(tx.send(a.fd, sent.back(), b.addr));
    ASSERT_TRUE(tx.flush(a.fd));
    EXPECT_TRUE(tx.empty());
    EXPECT_EQ(receive(b, sent.size()), sent);
    if (tx.gso_enabled()) {
        EXPECT_LE(tx.syscalls(), 2u);
    }
}

// Pins the zero-copy path: slots larger than the datagram, a datagram that cannot join the
// batch (larger than its segments, or after a shorter one) waits and leads the next batch, an
// abandoned slot sends nothing; order and contents are kept.
TEST(UdpSender, ReserveCommitKeepsOrderAcrossBatches) {
    Sock a, b;
    UdpSender tx;
    std::vector<Bytes> sent;
    const std::size_t sizes[] = {1000, 1000, 1000, 1400 /* larger: parks */, 1400, 1400,
                                 200 /* short: ends the batch */, 1400 /* parks */, 1400};
    std::uint8_t tag = 0;
    for (std::size_t size : sizes) {
        sent.push_back(datagram(size, tag++));
        put(tx, a.fd, b.addr, sent.back(), 1452);
        auto abandoned = tx.reserve(a.fd, 1452, b.addr);  // taken and given back
        ASSERT_FALSE(abandoned.empty());
        tx.commit(0);
    }
    ASSERT_TRUE(tx.flush(a.fd));
    EXPECT_TRUE(tx.empty());
    EXPECT_EQ(receive(b, sent.size()), sent);
}

// Pins that a batch never mixes destinations: a datagram for another peer sends the batch
// first, and each peer gets exactly its own datagrams.
TEST(UdpSender, DestinationChangeSendsTheBatchFirst) {
    Sock a, b, c;
    UdpSender tx;
    std::vector<Bytes> to_b, to_c;
    for (int i = 0; i < 6; ++i) {
        Sock& dst = i % 3 == 2 ? c : b;
        auto& list = i % 3 == 2 ? to_c : to_b;
        list.push_back(datagram(1100, static_cast<std::uint8_t>(i)));
        if (i % 2 == 0) {
            ASSERT_TRUE(tx.send(a.fd, list.back(), dst.addr));
        } else {
            put(tx, a.fd, dst.addr, list.back(), 1452);
        }
    }
    ASSERT_TRUE(tx.flush(a.fd));
    EXPECT_EQ(receive(b, to_b.size()), to_b);
    EXPECT_EQ(receive(c, to_c.size()), to_c);
}

}  // namespace
}  // namespace hopgate::net
