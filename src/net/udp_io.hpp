// Linux UDP fast paths used by the DTLS transport: batched receive (recvmmsg, with UDP_GRO
// coalesced segments split back into datagrams) and segmented send (sendmsg with UDP_SEGMENT,
// i.e. GSO), each with a plain fallback when the kernel refuses. Non-blocking fds only; callers
// wait for readiness through Asio. No allocation per datagram: buffers are preallocated.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace hopgate::net {

struct PeerAddr {
    sockaddr_storage addr{};
    socklen_t len = 0;
    bool operator==(const PeerAddr& o) const;
    // Bytes identifying the address (family, port, ip) for hashing and cookies.
    std::span<const std::uint8_t> key() const;
    std::string to_string() const;
};

struct PeerAddrHash {
    std::size_t operator()(const PeerAddr& a) const;
};

// One received datagram: a view into the batch's buffers, valid until the next receive.
struct RecvDatagram {
    std::span<const std::uint8_t> data;
    const PeerAddr* from;
};

class UdpReceiver {
public:
    // `batch` messages of up to `max_size` bytes each (with GRO a message may hold many
    // datagrams of `gro_segment` bytes).
    explicit UdpReceiver(std::size_t batch = 32, std::size_t max_size = 65536);
    UdpReceiver(const UdpReceiver&) = delete;  // msgs_ points into the other members
    UdpReceiver& operator=(const UdpReceiver&) = delete;
    // Enables UDP_GRO on the fd if the kernel supports it; harmless otherwise.
    static void try_enable_gro(int fd);
    // Receives what is queued (non-blocking). Returns the datagrams (possibly none). On a hard
    // error sets `err` (errno); EAGAIN is not an error.
    const std::vector<RecvDatagram>& receive(int fd, int& err);

private:
    std::size_t batch_;
    std::size_t max_size_;
    std::vector<mmsghdr> msgs_;
    std::vector<iovec> iovs_;
    std::vector<std::uint8_t> storage_;
    std::vector<PeerAddr> addrs_;
    std::vector<std::uint8_t> control_;
    std::vector<RecvDatagram> out_;
};

// Accumulates datagrams for one destination and sends them with GSO (one syscall per batch).
class UdpSender {
public:
    // 64 is the kernel's UDP_MAX_SEGMENTS on every GSO-capable kernel; 65000 bytes per batch
    // is usually the tighter bound (45 full-size tunnel datagrams).
    explicit UdpSender(std::size_t max_segments = 64);
    // Queues `d` for `to`, sending the current batch first if `d` cannot join it. Returns false
    // if that send would block: `d` was NOT taken; wait for writability, flush, and retry.
    bool send(int fd, std::span<const std::uint8_t> d, const PeerAddr& to) {
        return send(fd, {}, d, to);
    }
    // The same for the datagram `prefix` + `d` (gathered into the batch, one copy).
    bool send(int fd, std::span<const std::uint8_t> prefix, std::span<const std::uint8_t> d,
              const PeerAddr& to);
    // Zero-copy variant: room for one datagram of up to `max_size` bytes (<= 65536) for `to` at
    // the end of the batch, sending the batch first if the room or the destination demands it.
    // Empty if that send would block. Write the datagram into the span, then commit(n) with
    // n <= the span's size (0 abandons it) before any other call. A datagram that cannot join
    // the batch (larger than its segments, or after a shorter one) waits behind it and starts
    // the next batch.
    std::span<std::uint8_t> reserve(int fd, std::size_t max_size, const PeerAddr& to);
    void commit(std::size_t n);
    // Sends everything queued. Returns false if it would block (the rest stays queued).
    bool flush(int fd);
    bool empty() const { return count_ == 0 && parked_ == 0; }
    // The errno of the last datagrams dropped on a hard send error (UDP semantics: they are
    // not retried), then 0 until the next one.
    int take_error() { return std::exchange(error_, 0); }
    bool gso_enabled() const { return gso_; }
    std::uint64_t syscalls() const { return syscalls_; }

private:
    static constexpr std::size_t kMaxGsoBytes = 65000;
    void clear();
    bool joins(std::size_t size, const PeerAddr& to) const;
    // Sends the current batch; a parked datagram then becomes the batch. False if it would
    // block (what was not sent stays queued).
    bool send_batch(int fd);
    void start_batch(std::size_t size);

    std::size_t max_segments_;
    std::vector<std::uint8_t> buf_;
    std::size_t count_ = 0;
    std::size_t total_ = 0;
    std::size_t seg_size_ = 0;
    std::size_t sent_segments_ = 0;
    bool last_short_ = false;  // only the last datagram of a GSO batch may be shorter
    std::uint64_t batches_ = 0;  // batches finished (sent or dropped)
    std::size_t parked_ = 0;   // a committed datagram at buf_[total_] that starts the next batch
    PeerAddr to_{};
    bool gso_ = true;
    std::uint64_t syscalls_ = 0;
    int error_ = 0;
};

}  // namespace hopgate::net
