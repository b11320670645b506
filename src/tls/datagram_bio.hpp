// A bounded queue of datagrams with message boundaries, and an OpenSSL BIO over a pair of them.
//
// OpenSSL's DTLS code assumes a datagram BIO: one BIO_write is one datagram (a whole flight
// packed up to the MTU by OpenSSL's buffering BIO, or one record), and one BIO_read returns one
// datagram. A plain memory BIO would concatenate them; this BIO keeps each write separate.
// OpenSSL 3.2's BIO_s_dgram_pair does the same; Debian 12 ships 3.0.
#pragma once

#include <openssl/bio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace hopgate::tls {

// A ring of at most kCapacity datagrams. Slot buffers keep their capacity, so a steady flow
// allocates nothing after warm-up; memory is bounded by kCapacity x the largest datagram seen.
class DatagramQueue {
  public:
    static constexpr std::size_t kCapacity = 64;

    // False (and the datagram is not stored) when full.
    bool push(std::span<const std::uint8_t> datagram);
    // Precondition: !empty().
    std::span<const std::uint8_t> front() const;
    void pop();
    bool empty() const { return count_ == 0; }
    bool full() const { return count_ == kCapacity; }
    std::size_t size() const { return count_; }
    void clear() { head_ = count_ = 0; }

  private:
    std::array<std::vector<std::uint8_t>, kCapacity> slots_;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
};

// Takes finished datagrams straight from OpenSSL's write buffer (e.g. into a socket's send
// batch), saving the copy into and out of the outbound queue.
class DatagramSink {
  public:
    // Copies `datagram` and returns true, or returns false (would block): the datagram is then
    // queued in the outbound queue as without a sink.
    virtual bool accept(std::span<const std::uint8_t> datagram) = 0;

  protected:
    ~DatagramSink() = default;
};

// State behind one datagram BIO; owned by the engine, which must outlive the BIO.
struct DatagramBioState {
    DatagramQueue* in = nullptr;       // BIO_read pops from here
    DatagramQueue* out = nullptr;      // BIO_write pushes here
    // One received datagram not copied into `in`, read after everything queued in `in`.
    std::span<const std::uint8_t> view;
    // When set and `out` is empty, BIO_write offers each datagram here first.
    DatagramSink* sink = nullptr;
    long mtu = 1200;                   // reported to OpenSSL's MTU queries
    std::uint64_t dropped_writes = 0;  // writes lost because `out` was full (like a full NIC queue)

    // One outgoing datagram: to the sink when nothing is queued before it and it takes it, else
    // into `out` (counted in dropped_writes when full).
    void emit(std::span<const std::uint8_t> d);
};

// A new BIO reading `state->in` and writing `state->out`. The BIO does not own `state`.
// Null on allocation failure.
BIO* new_datagram_bio(DatagramBioState* state);

}  // namespace hopgate::tls
