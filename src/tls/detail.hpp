// Internal: the object an SSL's app data points at, so SSL_CTX-wide C callbacks (cookies,
// DTLS timer) can reach the engine that owns the SSL. Every hook is noexcept: nothing may
// throw through OpenSSL.
#pragma once

namespace hopgate::tls::detail {

class SslHooks {
  public:
    virtual int generate_cookie(unsigned char* cookie, unsigned int* len) noexcept = 0;
    virtual int verify_cookie(const unsigned char* cookie, unsigned int len) noexcept = 0;

  protected:
    ~SslHooks() = default;
};

}  // namespace hopgate::tls::detail
