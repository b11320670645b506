// A complete tunnel scenario on the simulated network: a server and a client Connection, the
// server opening `streams` streams and sending `bytes` on each, the client answering with a head
// and `bytes` back. Every received byte is checked against a position-dependent pattern, so loss,
// duplication, reordering or corruption at the stream level is detected.
//
// Used by the property tests (tests/sim/proto_sim_test.cpp) and by the hopgate-sim CLI.
#pragma once

#include <cstdint>
#include <string>

#include "proto/connection.hpp"
#include "sim/link.hpp"

namespace hopgate::sim {

struct ScenarioConfig {
    std::uint64_t seed = 1;
    LinkConfig link;               // both directions (jitter/loss drawn independently)
    std::size_t streams = 1;
    std::uint64_t bytes = 1 << 20;  // per stream, each way (server->client and back)
    bool echo = true;              // client sends `bytes` back; else only a head + FIN
    proto::Mode mode = proto::Mode::kDatagram;
    proto::CcAlgorithm cc = proto::CcAlgorithm::kBbr;
    std::size_t max_packet_size = 1163;  // PMTUD ceiling (base is 1163)
    core::Duration deadline = std::chrono::seconds(600);  // simulated time bound
    // Slow consumer: the client reads stream 0 at this many bytes per second (0 = no limit).
    std::uint64_t slow_reader_bps = 0;
    // Connection tuning applied to both ends.
    std::uint64_t max_connection_window = 32 << 20;
    std::uint64_t max_stream_window = 16 << 20;
    std::uint64_t connection_send_buffer = 32 << 20;
    // The last `reset_streams` streams are aborted by the server half-way (RESET_STREAM and
    // STOP_SENDING with code kResetCode); the client must see the reset and nothing beyond it.
    std::size_t reset_streams = 0;
    core::Duration idle_timeout = std::chrono::seconds(30);
    // Stream mode: split every write into random chunks (exercises record reassembly).
    bool fragment_stream = true;
    // Event schedule hooks (applied at the given simulated time).
    core::Duration mtu_drop_at{0};      // when > 0: lower link MTU to `mtu_drop_to` at this time
    std::size_t mtu_drop_to = 0;
    core::Duration cut_at{0};           // when > 0: cut both links from this time on
    bool trace = false;
};

inline constexpr std::uint64_t kResetCode = 0x42;

struct ScenarioResult {
    bool ok = false;                 // every byte delivered intact, every stream completed
    bool completed = false;          // all streams finished before the deadline
    std::string error;               // first problem found
    double sim_seconds = 0;          // simulated time until completion
    double goodput_mbit = 0;         // server->client stream payload / time
    std::uint64_t payload_bytes = 0;  // stream payload delivered, both directions
    std::uint64_t retransmitted_bytes = 0;
    std::uint64_t max_buffered_bytes = 0;  // max over both endpoints
    std::uint64_t buffer_bound = 0;        // the configured bound it must stay under
    std::uint64_t packets_lost = 0;
    std::uint64_t datagrams = 0;
    std::size_t server_pmtu = 0;
    double first_stream_done_s = 0;  // slow-consumer checks: when the first other stream finished
    double last_other_stream_done_s = 0;
    bool server_closed = false;      // connection closed (cut scenarios)
    bool client_closed = false;
    std::uint64_t server_close_code = 0;
    std::uint64_t client_close_code = 0;
    double close_seconds = 0;        // when the later side noticed
    std::string to_json() const;
};

ScenarioResult run_scenario(const ScenarioConfig& cfg);

// Expected byte at `offset` of stream number `idx` in direction `dir` (0 = to client).
std::uint8_t pattern_byte(std::uint64_t idx, int dir, std::uint64_t offset);

}  // namespace hopgate::sim
