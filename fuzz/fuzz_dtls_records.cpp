// libFuzzer target: the post-handshake DTLS read path of a server DtlsEngine, i.e. the engine's
// own record parser and AES-GCM opener (tls::DtlsRecords: all_ours, record_size, open, the
// replay window) and its hand-off of everything else to OpenSSL. Links: hg_tls.
//   hg_fuzz(fuzz_dtls_records LIBS hg_tls)
//
// Each input gets a fresh client/server pair (in-memory handshake, so runs are independent) and
// four genuine client datagrams, each one application record with a distinct payload. The input
// is a list of operations on the server:
//   0 len_hi len_lo bytes...   feed arbitrary bytes as one datagram
//   1 k                        feed genuine datagram k (again: a replay)
//   2 k pos xor                feed genuine datagram k with byte `pos` XORed with `xor` (!= 0)
//   3 k len bytes...           feed genuine datagram k followed by `len` arbitrary bytes
// after each of which the server's decrypted output is drained.
// Properties: no crash or sanitizer report; every plaintext the server yields is exactly one of
// the genuine payloads (nothing forged, corrupted or spliced gets through), and none is yielded
// twice (replays are dropped).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tls/certs.hpp"
#include "tls/context.hpp"
#include "tls/dtls_engine.hpp"

namespace {

using namespace hopgate::tls;
using Bytes = std::vector<std::uint8_t>;

struct Contexts {
    PemPair id = generate_self_signed({"fuzz.example.com"});
    ContextPtr server = make_server_context(id.cert_pem, id.key_pem, Protocol::kDtls);
    ContextPtr client = make_client_context(ClientTrust{"", true}, Protocol::kDtls);
};

Contexts& contexts() {
    static Contexts c;
    return c;
}

// Moves every queued datagram from `from` to `to`; returns how many.
std::size_t pump(DtlsEngine& from, DtlsEngine& to, Bytes& buf) {
    std::size_t n = 0;
    while (const std::size_t m = from.pop_datagram(buf)) {
        to.on_datagram({buf.data(), m});
        ++n;
    }
    return n;
}

bool handshake(DtlsEngine& c, DtlsEngine& s, Bytes& buf) {
    for (int i = 0; i < 50; ++i) {
        const std::size_t moved = pump(c, s, buf) + pump(s, c, buf);
        if (c.failed() || s.failed()) {
            return false;
        }
        if (moved == 0 && c.handshake_done() && s.handshake_done()) {
            return true;
        }
    }
    return false;
}

constexpr std::size_t kGenuine = 4;

Bytes payload(std::size_t k) {  // distinct lengths and contents
    Bytes p(16 + 97 * k);
    for (std::size_t i = 0; i < p.size(); ++i) {
        p[i] = static_cast<std::uint8_t>(k * 31 + i);
    }
    return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Contexts& ctx = contexts();
    Bytes buf(17000);
    auto c = DtlsEngine::client(ctx.client, "fuzz.example.com");
    auto s = DtlsEngine::server(ctx.server);
    if (!c || !s || !handshake(*c, *s, buf)) {
        std::abort();  // the harness itself must work
    }
    std::array<Bytes, kGenuine> genuine;
    std::array<Bytes, kGenuine> payloads;
    for (std::size_t k = 0; k < kGenuine; ++k) {
        payloads[k] = payload(k);
        if (!c->write(payloads[k]).ok()) {
            std::abort();
        }
        const std::size_t m = c->pop_datagram(buf);
        genuine[k].assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(m));
    }
    std::array<bool, kGenuine> delivered{};

    auto feed = [&](const Bytes& d) {
        s->on_datagram(d);
        for (int i = 0; i < 8; ++i) {
            auto r = s->read(buf);
            if (!r || *r == 0) {
                break;
            }
            bool known = false;
            for (std::size_t k = 0; k < kGenuine; ++k) {
                if (*r == payloads[k].size() &&
                    std::memcmp(buf.data(), payloads[k].data(), *r) == 0) {
                    if (delivered[k]) {
                        std::abort();  // a replay got through
                    }
                    delivered[k] = true;
                    known = true;
                }
            }
            if (!known) {
                std::abort();  // forged or corrupted plaintext got through
            }
        }
        while (s->pop_datagram(buf) > 0) {  // alerts etc.: discarded
        }
    };

    std::size_t i = 0;
    while (i < size) {
        const std::uint8_t op = data[i++] % 4;
        if (op == 0) {
            if (i + 2 > size) {
                break;
            }
            std::size_t len = (static_cast<std::size_t>(data[i]) << 8) | data[i + 1];
            i += 2;
            len = std::min(len, size - i);
            feed(Bytes(data + i, data + i + len));
            i += len;
        } else if (op == 1) {
            if (i >= size) {
                break;
            }
            feed(genuine[data[i++] % kGenuine]);
        } else if (op == 2) {
            if (i + 3 > size) {
                break;
            }
            Bytes d = genuine[data[i] % kGenuine];
            const std::size_t pos = data[i + 1] % d.size();
            const std::uint8_t x = data[i + 2];
            i += 3;
            if (x == 0) {
                continue;
            }
            d[pos] ^= x;
            feed(d);
        } else {
            if (i + 2 > size) {
                break;
            }
            Bytes d = genuine[data[i] % kGenuine];
            std::size_t len = data[i + 1];
            i += 2;
            len = std::min(len, size - i);
            d.insert(d.end(), data + i, data + i + len);
            i += len;
            feed(d);
        }
    }
    return 0;
}
