// libFuzzer target for the frame codec (proto/frame.hpp).
//
// Decodes every frame in the input until the first failure. Each decoded frame must re-encode
// (the decoder never accepts a frame the encoder cannot express), no larger than allowed by
// minimal varints plus an explicit STREAM length, and the re-encoding must decode to an equal
// frame, consuming exactly the re-encoded bytes; encoding that frame again must reproduce the
// same bytes (canonical form).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <type_traits>
#include <variant>
#include <vector>

#include "proto/frame.hpp"

namespace {

using namespace hopgate::proto;

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

bool same(const Frame& a, const Frame& b) { return frames_equal(a, b); }

// Checks the invariants of a decoded ACK: descending, disjoint, non-adjacent, bounded.
void check_ack(const AckFrame& a) {
    check(!a.ranges.empty() && a.ranges.size() <= kMaxAckRanges);
    for (std::size_t i = 0; i < a.ranges.size(); ++i) {
        check(a.ranges[i].smallest <= a.ranges[i].largest);
        if (i > 0) {
            check(a.ranges[i].largest + 2 <= a.ranges[i - 1].smallest);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Reader r(std::span<const std::uint8_t>(data, size));
    Frame f;
    std::vector<std::uint8_t> enc;
    std::vector<std::uint8_t> enc2;
    while (!r.empty()) {
        const std::size_t start = r.position();
        if (!decode_frame(r, f)) {
            break;
        }
        const std::size_t consumed = r.position() - start;
        check(consumed > 0);
        if (const auto* a = std::get_if<AckFrame>(&f)) {
            check_ack(*a);
        }
        // Minimal varints never grow a field; STREAM may gain a LEN (at most 8 bytes) and
        // AUTH/AUTH_OK always carry every known transport parameter.
        enc.assign(consumed + 128, 0xee);
        Writer w(enc);
        check(encode_frame(w, f));
        enc.resize(w.size());
        if (!std::holds_alternative<StreamFrame>(f) && !std::holds_alternative<AuthFrame>(f) &&
            !std::holds_alternative<AuthOkFrame>(f)) {
            check(enc.size() <= consumed);
        }
        Reader r2(enc);
        Frame g;
        check(decode_frame(r2, g));
        check(r2.empty());
        check(same(f, g));
        enc2.assign(enc.size(), 0);
        Writer w2(enc2);
        check(encode_frame(w2, g));
        check(w2.size() == enc.size() && enc2 == enc);
        check(is_ack_eliciting(f) == is_ack_eliciting(g));
    }
    // Transport parameters on their own (the AUTH/AUTH_OK payload).
    Reader rp(std::span<const std::uint8_t>(data, size));
    TransportParams p;
    if (decode_transport_params(rp, p)) {
        check(p.max_ack_delay_ms < (1u << 14));
        std::vector<std::uint8_t> out(128);
        Writer w(out);
        check(encode_transport_params(w, p));
        Reader back(w.written());
        TransportParams q;
        check(decode_transport_params(back, q) && back.empty() && q == p);
    }
    return 0;
}
