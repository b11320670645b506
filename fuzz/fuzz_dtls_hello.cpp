// libFuzzer target: the stateless DTLS cookie guard and a server DtlsEngine fed arbitrary
// datagrams. Links: hg_tls (which brings hg_core, OpenSSL::SSL and OpenSSL::Crypto).
//   hg_fuzz(fuzz_dtls_hello LIBS hg_tls)
//
// Input: byte 0 = flags, the rest = one datagram.
//   bit 0: if the datagram parses as a ClientHello, overwrite its cookie with a valid one for
//          the fuzz address first (when the cookie field is exactly kCookieSize long), so the
//          kAccept path and the guarded engine's DTLSv1_listen hand-off get exercised;
//   bit 1: also feed the datagram to an unguarded server engine (direct handshake path).
// Properties: no crash or sanitizer report; kReplyAndDrop replies are non-empty
// HelloVerifyRequests no larger than the request; an unmodified input is never accepted
// (cookies cannot be forged); reply is empty unless kReplyAndDrop.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tls/certs.hpp"
#include "tls/context.hpp"
#include "tls/cookie.hpp"
#include "tls/dtls_engine.hpp"

namespace {

using namespace hopgate::tls;

struct Harness {
    PemPair id = generate_self_signed({"fuzz.example.com"});
    ContextPtr server = make_server_context(id.cert_pem, id.key_pem, Protocol::kDtls);
    CookieGuard guard;
    std::vector<std::uint8_t> reply;
    std::vector<std::uint8_t> out = std::vector<std::uint8_t>(17000);
};

Harness& harness() {
    static Harness h;
    return h;
}

const std::uint8_t kAddr[] = {192, 0, 2, 1, 0x30, 0x39};

void drain(DtlsEngine& e, std::vector<std::uint8_t>& buf) {
    for (int i = 0; i < 8; ++i) {
        auto r = e.read(buf);
        if (!r || *r == 0) {
            break;
        }
    }
    while (e.pop_datagram(buf) > 0) {
    }
    (void)e.timeout();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    Harness& h = harness();
    const std::uint8_t flags = data[0];
    std::vector<std::uint8_t> dgram(data + 1, data + size);

    bool injected = false;
    ClientHelloView view;
    if ((flags & 1) != 0 && parse_client_hello(dgram, view) &&
        view.cookie.size() == CookieGuard::kCookieSize) {
        auto off = static_cast<std::size_t>(view.cookie.data() - dgram.data());
        h.guard.make_cookie(kAddr, std::span<std::uint8_t>(dgram.data() + off, view.cookie.size()));
        injected = true;
    }

    auto d = h.guard.check_client_hello(dgram, kAddr, h.reply);
    switch (d) {
        case CookieGuard::Decision::kAccept: {
            if (!injected) {
                std::abort();  // a forged cookie was accepted
            }
            auto e = DtlsEngine::server(h.server, {}, &h.guard, kAddr);
            e->on_datagram(dgram);
            drain(*e, h.out);
            break;
        }
        case CookieGuard::Decision::kReplyAndDrop:
            if (h.reply.empty() || h.reply.size() > dgram.size() || h.reply[0] != 22 ||
                h.reply[13] != 3) {
                std::abort();
            }
            break;
        case CookieGuard::Decision::kDrop:
            if (!h.reply.empty()) {
                std::abort();
            }
            break;
    }

    if ((flags & 2) != 0) {
        auto e = DtlsEngine::server(h.server);
        e->on_datagram(dgram);
        drain(*e, h.out);
    }
    return 0;
}
