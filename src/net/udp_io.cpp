#include "net/udp_io.hpp"

#include <arpa/inet.h>
#include <netinet/udp.h>

#include <cerrno>
#include <cstring>
#include <string>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

namespace hopgate::net {

bool PeerAddr::operator==(const PeerAddr& o) const {
    const auto a = key();
    const auto b = o.key();
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

std::span<const std::uint8_t> PeerAddr::key() const {
    // sockaddr_in/in6 minus padding: family + port + address.
    const auto* p = reinterpret_cast<const std::uint8_t*>(&addr);
    if (addr.ss_family == AF_INET) {
        return {p, sizeof(sockaddr_in) - sizeof(sockaddr_in::sin_zero)};
    }
    if (addr.ss_family == AF_INET6) {
        return {p, offsetof(sockaddr_in6, sin6_scope_id)};
    }
    return {p, static_cast<std::size_t>(len)};
}

std::string PeerAddr::to_string() const {
    char host[INET6_ADDRSTRLEN] = {0};
    if (addr.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
    }
    if (addr.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    return "?";
}

std::size_t PeerAddrHash::operator()(const PeerAddr& a) const {
    std::size_t h = 1469598103934665603ULL;
    for (auto b : a.key()) {
        h = (h ^ b) * 1099511628211ULL;
    }
    return h;
}

UdpReceiver::UdpReceiver(std::size_t batch, std::size_t max_size)
    : batch_(batch), max_size_(max_size), msgs_(batch), iovs_(batch), storage_(batch * max_size),
      addrs_(batch), control_(batch * CMSG_SPACE(sizeof(int))) {
    out_.reserve(batch * 8);
    for (std::size_t i = 0; i < batch_; ++i) {
        iovs_[i] = {storage_.data() + i * max_size_, max_size_};
        msgs_[i].msg_hdr.msg_iov = &iovs_[i];
        msgs_[i].msg_hdr.msg_iovlen = 1;
        msgs_[i].msg_hdr.msg_name = &addrs_[i].addr;
        msgs_[i].msg_hdr.msg_control = control_.data() + i * CMSG_SPACE(sizeof(int));
    }
}

void UdpReceiver::try_enable_gro(int fd) {
    int one = 1;
    (void)setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
}

const std::vector<RecvDatagram>& UdpReceiver::receive(int fd, int& err) {
    out_.clear();
    err = 0;
    for (auto& m : msgs_) {  // the kernel wrote the previous call's lengths here
        m.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        m.msg_hdr.msg_controllen = CMSG_SPACE(sizeof(int));
        m.msg_hdr.msg_flags = 0;
    }
    auto* msgs = msgs_.data();
    const int n = recvmmsg(fd, msgs, static_cast<unsigned>(batch_), MSG_DONTWAIT, nullptr);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            err = errno;
        }
        return out_;
    }
    for (int i = 0; i < n; ++i) {
        auto& h = msgs_[static_cast<std::size_t>(i)].msg_hdr;
        addrs_[static_cast<std::size_t>(i)].len = h.msg_namelen;
        std::size_t seg = 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                int v = 0;
                std::memcpy(&v, CMSG_DATA(c), sizeof v);
                seg = static_cast<std::size_t>(v);
            }
        }
        const std::size_t total = msgs[static_cast<std::size_t>(i)].msg_len;
        const std::uint8_t* base = storage_.data() + static_cast<std::size_t>(i) * max_size_;
        if (seg == 0 || seg >= total) {
            out_.push_back({{base, total}, &addrs_[static_cast<std::size_t>(i)]});
            continue;
        }
        for (std::size_t off = 0; off < total; off += seg) {
            out_.push_back({{base + off, std::min(seg, total - off)},
                            &addrs_[static_cast<std::size_t>(i)]});
        }
    }
    return out_;
}

UdpSender::UdpSender(std::size_t max_segments) : max_segments_(max_segments), buf_(65536) {}

bool UdpSender::joins(std::size_t size, const PeerAddr& to) const {
    return count_ > 0 && gso_ && !last_short_ && size <= seg_size_ && count_ < max_segments_ &&
           total_ + size <= kMaxGsoBytes && to == to_;
}

void UdpSender::start_batch(std::size_t size) {
    seg_size_ = size;
    total_ = size;
    count_ = 1;
    last_short_ = false;
    sent_segments_ = 0;
}

bool UdpSender::send(int fd, std::span<const std::uint8_t> prefix,
                     std::span<const std::uint8_t> d, const PeerAddr& to) {
    const std::size_t size = prefix.size() + d.size();
    if (size == 0 || size > buf_.size()) {
        return true;  // nothing sensible to send; UDP would refuse it anyway
    }
    // The size is known: send the batch first rather than park behind it.
    if (count_ > 0 && !joins(size, to) && !flush(fd)) {
        return false;
    }
    const std::span<std::uint8_t> slot = reserve(fd, size, to);
    if (slot.empty()) {
        return false;
    }
    if (!prefix.empty()) {
        std::memcpy(slot.data(), prefix.data(), prefix.size());
    }
    std::memcpy(slot.data() + prefix.size(), d.data(), d.size());
    commit(size);
    return true;
}

std::span<std::uint8_t> UdpSender::reserve(int fd, std::size_t max_size, const PeerAddr& to) {
    if (max_size == 0 || max_size > buf_.size()) {
        return {};
    }
    if (parked_ > 0 && !send_batch(fd)) {
        return {};
    }
    const bool room = count_ < max_segments_ && total_ + max_size <= buf_.size() &&
                      (count_ == 0 || to == to_);
    if (!room && !send_batch(fd)) {
        return {};
    }
    if (count_ == 0) {
        to_ = to;
    }
    return {buf_.data() + total_, max_size};
}

void UdpSender::commit(std::size_t n) {
    if (n == 0) {
        return;
    }
    if (count_ == 0) {
        start_batch(n);
    } else if (joins(n, to_)) {
        total_ += n;
        last_short_ = n < seg_size_;
        ++count_;
    } else {
        parked_ = n;  // the next reserve() or flush() sends the batch; this one leads the next
    }
}

bool UdpSender::flush(int fd) {
    while (count_ > 0) {
        if (!send_batch(fd)) {
            return false;
        }
    }
    return true;
}

bool UdpSender::send_batch(int fd) {
    // Until this batch is gone (clear() then makes a parked datagram the next batch).
    const std::uint64_t batch = batches_;
    while (count_ > 0 && batches_ == batch) {
        ssize_t r = 0;
        if (count_ - sent_segments_ > 1 && gso_) {
            // One syscall for the whole batch: the kernel splits it into seg_size_ datagrams.
            iovec iov{buf_.data(), total_};
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t))] = {};
            msghdr h{};
            h.msg_name = const_cast<sockaddr_storage*>(&to_.addr);
            h.msg_namelen = to_.len;
            h.msg_iov = &iov;
            h.msg_iovlen = 1;
            h.msg_control = control;
            h.msg_controllen = sizeof control;
            cmsghdr* c = CMSG_FIRSTHDR(&h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
            const auto seg = static_cast<std::uint16_t>(seg_size_);
            std::memcpy(CMSG_DATA(c), &seg, sizeof seg);
            ++syscalls_;
            r = sendmsg(fd, &h, MSG_DONTWAIT);
            if (r >= 0) {
                clear();
                return true;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                return false;
            }
            if (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOPROTOOPT) {
                gso_ = false;  // the kernel or device refuses GSO: send one by one from now on
                continue;
            }
            error_ = errno;
            clear();  // e.g. ECONNREFUSED from ICMP: UDP semantics, drop
            return true;
        }
        // Plain path: one datagram per syscall, resuming after a partial batch.
        const std::size_t off = sent_segments_ * seg_size_;
        const std::size_t len = std::min(seg_size_, total_ - off);
        ++syscalls_;
        r = sendto(fd, buf_.data() + off, len, MSG_DONTWAIT,
                   reinterpret_cast<const sockaddr*>(&to_.addr), to_.len);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            return false;
        }
        if (r < 0) {
            error_ = errno;  // dropped, as above
        }
        if (++sent_segments_ * seg_size_ >= total_) {
            clear();
        }
    }
    return true;
}

void UdpSender::clear() {
    ++batches_;
    if (parked_ > 0) {
        std::memmove(buf_.data(), buf_.data() + total_, parked_);
        start_batch(std::exchange(parked_, 0));
        return;
    }
    count_ = 0;
    total_ = 0;
    sent_segments_ = 0;
    last_short_ = false;
}

}  // namespace hopgate::net
