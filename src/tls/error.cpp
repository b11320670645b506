#include "tls/error.hpp"

#include <openssl/err.h>

namespace hopgate::tls {
namespace {
class TlsCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "hopgate.tls"; }
    std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
            case Errc::kOk:
                return "ok";
            case Errc::kHandshake:
                return "handshake failed";
            case Errc::kProtocol:
                return "TLS protocol error";
            case Errc::kClosed:
                return "TLS session closed";
            case Errc::kNotReady:
                return "handshake not complete";
            case Errc::kWouldBlock:
                return "would block";
            case Errc::kTooLarge:
                return "too large for one record";
            case Errc::kInvalidArgument:
                return "invalid argument";
            case Errc::kBadPem:
                return "malformed PEM";
            case Errc::kKeyMismatch:
                return "key does not match certificate";
            case Errc::kIo:
                return "file read error";
            case Errc::kInternal:
                return "internal TLS error";
        }
        return "unknown tls error";
    }
};
}  // namespace

const std::error_category& tls_category() {
    static const TlsCategory cat;
    return cat;
}

std::string drain_openssl_errors(const std::string& fallback) {
    std::string out;
    const char* file = nullptr;
    int line = 0;
    const char* data = nullptr;
    int flags = 0;
    while (unsigned long e = ERR_get_error_all(&file, &line, nullptr, &data, &flags)) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) {
            out += "; ";
        }
        out += buf;
        if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && *data != '\0') {
            out += " (";
            out += data;
            out += ")";
        }
    }
    return out.empty() ? fallback : out;
}

void clear_openssl_errors() {
    if (ERR_peek_error() != 0) {
        ERR_clear_error();
    }
}

}  // namespace hopgate::tls
