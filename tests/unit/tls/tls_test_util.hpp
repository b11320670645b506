// Shared fixtures for the tls unit tests: a self-signed server identity, a CA file on disk,
// and in-memory pumps that carry datagrams/bytes between two engines.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tls/certs.hpp"
#include "tls/context.hpp"
#include "tls/dtls_engine.hpp"
#include "tls/tls_stream_engine.hpp"

namespace hopgate::tls::test {

// A PEM written to a unique temp file, removed on destruction.
class TempPem {
  public:
    explicit TempPem(const std::string& pem) {
        static int counter = 0;
        path_ =
            (std::filesystem::temp_directory_path() / ("hg_tls_test_" + std::to_string(::getpid()) +
                                                       "_" + std::to_string(counter++) + ".pem"))
                .string();
        std::ofstream(path_) << pem;
    }
    ~TempPem() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// One identity per test binary: key generation is the slow part.
inline const PemPair& server_identity() {
    static const PemPair id =
        generate_self_signed({"tunnel.example.com", "*.tunnel.example.com", "127.0.0.1", "::1"});
    return id;
}
inline const PemPair& other_identity() {
    static const PemPair id = generate_self_signed({"tunnel.example.com"});
    return id;
}

inline const TempPem& server_ca_file() {
    static const TempPem f(server_identity().cert_pem);
    return f;
}

using Bytes = std::vector<std::uint8_t>;
using DropFn = std::function<bool(const Bytes&)>;  // true = drop this datagram

inline constexpr std::size_t kBuf = 17000;

// Moves every queued datagram from `from` to `to` (unless dropped), records their sizes, and
// lets `to` process them via read(); decrypted records are appended to `received`.
inline std::size_t transfer(DtlsEngine& from, DtlsEngine& to, const DropFn& drop,
                            std::vector<std::size_t>* sizes = nullptr,
                            std::vector<Bytes>* received = nullptr) {
    std::size_t moved = 0;
    Bytes buf(kBuf);
    while (std::size_t n = from.pop_datagram(buf)) {
        Bytes d(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        if (sizes != nullptr) {
            sizes->push_back(n);
        }
        ++moved;
        if (drop && drop(d)) {
            continue;
        }
        to.on_datagram(d);
        for (;;) {
            auto r = to.read(buf);
            if (!r || *r == 0) {
                break;
            }
            if (received != nullptr) {
                received->emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*r));
            }
        }
    }
    return moved;
}

// Runs a lossless handshake; returns true when both sides completed.
inline bool handshake(DtlsEngine& client, DtlsEngine& server,
                      std::vector<std::size_t>* sizes = nullptr) {
    for (int i = 0; i < 50; ++i) {
        std::size_t moved =
            transfer(client, server, nullptr, sizes) + transfer(server, client, nullptr, sizes);
        if (client.failed() || server.failed()) {
            return false;
        }
        if (moved == 0 && client.handshake_done() && server.handshake_done()) {
            return true;
        }
    }
    return client.handshake_done() && server.handshake_done();
}

// Reads everything `e` has decrypted into `sink`; false on a read error.
inline bool drain_stream(TlsStreamEngine& e, Bytes& sink) {
    Bytes buf(kBuf);
    for (;;) {
        auto r = e.read(buf);
        if (!r) {
            return false;
        }
        if (*r == 0) {
            return true;
        }
        sink.insert(sink.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*r));
    }
}

// Stream pump: moves all pending bytes from `from` to `to` in chunks of random size
// (1..max_chunk), draining `to` into `to_sink` whenever its inbound buffer fills and at the end.
inline std::size_t pump_stream(TlsStreamEngine& from, TlsStreamEngine& to, std::mt19937& rng,
                               std::size_t max_chunk, Bytes& to_sink) {
    std::size_t total = 0;
    Bytes buf(max_chunk);
    std::uniform_int_distribution<std::size_t> len(1, max_chunk);
    for (;;) {
        std::size_t want = len(rng);
        std::size_t n = from.pop_bytes(std::span<std::uint8_t>(buf.data(), want));
        if (n == 0) {
            break;
        }
        std::size_t off = 0;
        while (off < n) {
            std::size_t took =
                to.on_bytes(std::span<const std::uint8_t>(buf.data() + off, n - off));
            off += took;
            if (took == 0 && !drain_stream(to, to_sink)) {
                return total;
            }
        }
        total += n;
    }
    drain_stream(to, to_sink);
    return total;
}

}  // namespace hopgate::tls::test
