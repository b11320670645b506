// Tunnel frames and their binary codec (docs/protocol.md §3). Semantics follow RFC 9000 where a
// frame has a QUIC counterpart; AUTH/AUTH_OK/AUTH_FAIL are our own.
//
// Decoding is zero-copy: STREAM data, strings and reasons are views into the input buffer and
// live only as long as it does. Every length is bounds-checked against the input and against the
// limits below; malformed input yields `false` from decode_frame, never UB.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/wire.hpp"

namespace hopgate::proto {

inline constexpr std::uint64_t kProtocolVersion = 1;

// Decoder limits.
inline constexpr std::size_t kMaxAckRanges = 256;
inline constexpr std::size_t kMaxReasonLen = 1024;
inline constexpr std::size_t kMaxDomainLen = 253;
inline constexpr std::size_t kMaxApiKeyLen = 256;
inline constexpr std::size_t kMaxClientVersionLen = 64;
inline constexpr std::size_t kMaxTransportParams = 32;

enum class FrameType : std::uint64_t {
    kPadding = 0x00,
    kPing = 0x01,
    kAck = 0x02,
    kResetStream = 0x04,
    kStopSending = 0x05,
    kStream = 0x08,  // 0x08..0x0f: bits OFF=0x04 LEN=0x02 FIN=0x01
    kMaxData = 0x10,
    kMaxStreamData = 0x11,
    kMaxStreams = 0x12,
    kDataBlocked = 0x14,
    kStreamDataBlocked = 0x15,
    kStreamsBlocked = 0x16,
    kPathChallenge = 0x1a,
    kPathResponse = 0x1b,
    kConnectionClose = 0x1c,
    kAuth = 0x30,
    kAuthOk = 0x31,
    kAuthFail = 0x32,
};

// Transport parameters exchanged in AUTH (client's) and AUTH_OK (server's).
struct TransportParams {
    std::uint64_t idle_timeout_ms = 30000;      // 0x01; 0 = no idle timeout
    std::uint64_t initial_max_data = 1 << 20;   // 0x03; connection credit granted to the peer
    std::uint64_t initial_max_stream_data = 256 << 10;  // 0x04; per-stream credit
    std::uint64_t initial_max_streams = 100;    // 0x05; streams the peer may open
    std::uint64_t max_ack_delay_ms = 25;        // 0x06
    // 0x07; server only (in AUTH_OK): the connection ID the client prefixes to its datagrams
    // so the server can follow it across address changes (NAT rebinding). 0 = none.
    std::uint64_t connection_id = 0;
    friend bool operator==(const TransportParams&, const TransportParams&) = default;
};

struct AckRange {
    std::uint64_t smallest;
    std::uint64_t largest;
    friend bool operator==(const AckRange&, const AckRange&) = default;
};

struct PaddingFrame {
    std::size_t length = 1;  // run of zero bytes (decoded runs are coalesced)
};
struct PingFrame {};
struct AckFrame {
    std::uint64_t ack_delay_us = 0;
    std::vector<AckRange> ranges;  // descending, non-overlapping, non-adjacent; ranges[0] largest
};
struct ResetStreamFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t error_code = 0;
    std::uint64_t final_size = 0;
};
struct StopSendingFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t error_code = 0;
};
struct StreamFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t offset = 0;
    bool fin = false;
    std::span<const std::uint8_t> data;
};
struct MaxDataFrame {
    std::uint64_t maximum = 0;
};
struct MaxStreamDataFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t maximum = 0;
};
struct MaxStreamsFrame {
    std::uint64_t maximum = 0;
};
struct DataBlockedFrame {
    std::uint64_t limit = 0;
};
struct StreamDataBlockedFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t limit = 0;
};
struct StreamsBlockedFrame {
    std::uint64_t limit = 0;
};
struct PathChallengeFrame {
    std::uint64_t data = 0;
};
struct PathResponseFrame {
    std::uint64_t data = 0;
};
struct ConnectionCloseFrame {
    std::uint64_t error_code = 0;
    std::string_view reason;
};
struct AuthFrame {
    std::uint64_t version = kProtocolVersion;
    std::string_view domain;
    std::string_view api_key;
    std::string_view client_version;
    TransportParams params;
};
struct AuthOkFrame {
    TransportParams params;
};
struct AuthFailFrame {
    std::uint64_t reason_code = 0;  // an AuthFailReason
    std::string_view message;
};

// Why the server refused an AUTH (AUTH_FAIL reason codes).
enum class AuthFailReason : std::uint64_t {
    kBadCredentials = 1,  // unknown domain or wrong key
    kVersion = 2,         // unsupported protocol version
    kDnsMismatch = 3,     // the domain does not resolve to this server
    kRateLimited = 4,     // too many failures from this source; retry later
    kUnavailable = 5,     // the registry is unavailable; retry later
    kShuttingDown = 6,    // the server is draining
};

using Frame = std::variant<PaddingFrame, PingFrame, AckFrame, ResetStreamFrame, StopSendingFrame,
                           StreamFrame, MaxDataFrame, MaxStreamDataFrame, MaxStreamsFrame,
                           DataBlockedFrame, StreamDataBlockedFrame, StreamsBlockedFrame,
                           PathChallengeFrame, PathResponseFrame, ConnectionCloseFrame, AuthFrame,
                           AuthOkFrame, AuthFailFrame>;

// Appends the encoding of `f`. Returns false (writer !ok) if it does not fit.
bool encode_frame(Writer& w, const Frame& f);

// Decodes one frame. On false the input is malformed (a FRAME_ENCODING_ERROR); `out` and `r` are
// then unspecified. `out` may reuse its previous allocation (AckFrame::ranges).
bool decode_frame(Reader& r, Frame& out);

// True for frames that elicit an acknowledgement (everything but PADDING, ACK, CONNECTION_CLOSE).
bool is_ack_eliciting(const Frame& f);

// Bytes a STREAM frame header takes (type, id, offset, length) before `len` data bytes.
std::size_t stream_frame_overhead(std::uint64_t stream_id, std::uint64_t offset, std::size_t len);

bool encode_transport_params(Writer& w, const TransportParams& p);
bool decode_transport_params(Reader& r, TransportParams& p);

// Field-by-field equality of two frames (a STREAM frame's data compared by content).
bool frames_equal(const Frame& a, const Frame& b);

}  // namespace hopgate::proto
