// Errors of the TLS layer, and text extraction from the OpenSSL error queue.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace hopgate::tls {

// Local API errors of the engines and certificate helpers.
enum class Errc {
    kOk = 0,
    kHandshake = 1,        // the (D)TLS handshake failed (verification, alert, protocol error)
    kProtocol = 2,         // a fatal error after the handshake (bad record, fatal alert)
    kClosed = 3,           // the peer sent close_notify, or close_notify() was called
    kNotReady = 4,         // the handshake has not completed yet
    kWouldBlock = 5,       // the outgoing queue is full; pop datagrams/bytes first
    kTooLarge = 6,         // plaintext larger than one record may carry (16 KiB)
    kInvalidArgument = 7,  // empty write, malformed name, wrong engine role
    kBadPem = 8,           // certificate or key PEM did not parse
    kKeyMismatch = 9,      // the private key does not belong to the certificate
    kIo = 10,              // a file could not be read
    kInternal = 11,        // OpenSSL failed for a reason other than the peer (allocation, ...)
};

const std::error_category& tls_category();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), tls_category()}; }

// Start-up/configuration failure (context creation, key generation). Caught once in main.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Drains this thread's OpenSSL error queue into one line ("reason (lib); reason (lib)").
// Returns `fallback` when the queue is empty.
std::string drain_openssl_errors(const std::string& fallback = "unknown OpenSSL error");

// Empties this thread's OpenSSL error queue before an SSL_* call whose result goes through
// SSL_get_error. On the data path the queue is almost always empty already; peeking is far
// cheaper than ERR_clear_error (which resets every slot), which profiles showed at ~9 %.
void clear_openssl_errors();

}  // namespace hopgate::tls

template <>
struct std::is_error_code_enum<hopgate::tls::Errc> : std::true_type {};
