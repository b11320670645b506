// Internal helpers shared by the DTLS and TLS engines (one SSL object each).
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>

namespace hopgate::tls::detail {

// The negotiated ALPN protocol, or empty.
std::string_view ssl_alpn(const SSL* ssl);
// The negotiated cipher suite's name, or empty.
std::string_view ssl_cipher(const SSL* ssl);
// "<what> failed: <OpenSSL errors>" plus, for a client, the certificate verification error.
// Drains the thread's OpenSSL error queue.
std::string describe_ssl_failure(const SSL* ssl, bool client, const char* what);
// Best-effort close_notify; leaves the error queue empty.
void ssl_close_notify(SSL* ssl);

}  // namespace hopgate::tls::detail
