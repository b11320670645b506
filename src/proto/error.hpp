// Errors of the tunnel protocol. The numeric values of `WireError` travel in CONNECTION_CLOSE,
// RESET_STREAM and STOP_SENDING frames (docs/protocol.md); `Errc` is for local API results.
#pragma once

#include <cstdint>
#include <system_error>

namespace hopgate::proto {

// Connection-level error codes carried on the wire (modelled on RFC 9000 §20.1).
enum class WireError : std::uint64_t {
    kNoError = 0x0,              // graceful close
    kInternalError = 0x1,        // the endpoint hit a bug or ran out of resources
    kConnectionRefused = 0x2,    // the server refuses the connection (shutting down)
    kFlowControlError = 0x3,     // peer sent more than the advertised credit
    kStreamLimitError = 0x4,     // peer opened more streams than allowed
    kStreamStateError = 0x5,     // frame for a stream in a state that forbids it
    kFinalSizeError = 0x6,       // final size changed or data beyond it
    kFrameEncodingError = 0x7,   // malformed frame or packet
    kTransportParamError = 0x8,  // malformed or invalid transport parameter
    kProtocolViolation = 0xa,    // any other breach of the protocol
    kVersionMismatch = 0x10,     // AUTH carried an unsupported protocol version
    kAuthFailed = 0x11,          // the server rejected the domain/key pair (reason in AUTH_FAIL)
    kIdleTimeout = 0x12,         // local only: nothing heard within the idle timeout
    kHandshakeTimeout = 0x13,    // AUTH not completed in time (sent in CONNECTION_CLOSE)
    kMetaTooLarge = 0x14,        // stream OPEN metadata over the size limit
    kTransportClosed = 0x15,     // local only: the byte stream or socket below went away
};

// Local API errors.
enum class Errc {
    kOk = 0,
    kDecode = 1,           // bytes do not form a valid frame/packet/metadata
    kBufferTooSmall = 2,   // output buffer cannot hold the encoding
    kClosed = 3,           // the connection is closed or closing
    kNotReady = 4,         // not authenticated yet, or metadata not yet sent
    kStreamLimit = 5,      // the peer's MAX_STREAMS does not allow another stream
    kUnknownStream = 6,    // no such stream (never existed or already freed)
    kStreamState = 7,      // the operation is invalid in the stream's state (e.g. write after FIN)
    kWouldBlock = 8,       // the send buffer is full; retry after a writable event
    kTooLarge = 9,         // an argument exceeds a configured limit
    kWrongMode = 10,       // datagram API on a stream-mode connection or vice versa
};

const std::error_category& proto_category();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), proto_category()}; }

const char* wire_error_name(WireError e);

}  // namespace hopgate::proto

template <>
struct std::is_error_code_enum<hopgate::proto::Errc> : std::true_type {};
