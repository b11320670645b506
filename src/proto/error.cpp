#include "proto/error.hpp"

#include <string>

namespace hopgate::proto {
namespace {
class ProtoCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "hopgate.proto"; }
    std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
            case Errc::kOk: return "ok";
            case Errc::kDecode: return "malformed protocol data";
            case Errc::kBufferTooSmall: return "buffer too small";
            case Errc::kClosed: return "connection closed";
            case Errc::kNotReady: return "not ready";
            case Errc::kStreamLimit: return "stream limit reached";
            case Errc::kUnknownStream: return "unknown stream";
            case Errc::kStreamState: return "invalid stream state";
            case Errc::kWouldBlock: return "would block";
            case Errc::kTooLarge: return "too large";
            case Errc::kWrongMode: return "wrong connection mode";
        }
        return "unknown proto error";
    }
};
}  // namespace

const std::error_category& proto_category() {
    static const ProtoCategory cat;
    return cat;
}

const char* wire_error_name(WireError e) {
    switch (e) {
        case WireError::kNoError: return "no_error";
        case WireError::kInternalError: return "internal_error";
        case WireError::kConnectionRefused: return "connection_refused";
        case WireError::kFlowControlError: return "flow_control_error";
        case WireError::kStreamLimitError: return "stream_limit_error";
        case WireError::kStreamStateError: return "stream_state_error";
        case WireError::kFinalSizeError: return "final_size_error";
        case WireError::kFrameEncodingError: return "frame_encoding_error";
        case WireError::kTransportParamError: return "transport_parameter_error";
        case WireError::kProtocolViolation: return "protocol_violation";
        case WireError::kVersionMismatch: return "version_mismatch";
        case WireError::kAuthFailed: return "auth_failed";
        case WireError::kIdleTimeout: return "idle_timeout";
        case WireError::kHandshakeTimeout: return "handshake_timeout";
        case WireError::kMetaTooLarge: return "meta_too_large";
        case WireError::kTransportClosed: return "transport_closed";
    }
    return "unknown";
}

}  // namespace hopgate::proto
