// RAII owners for OpenSSL objects. Each is a std::unique_ptr with a stateless deleter, so it
// costs one pointer. `up_ref` helpers return a new owning reference.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

namespace hopgate::tls {

struct SslDeleter {
    void operator()(SSL* p) const noexcept { SSL_free(p); }
};
struct SslCtxDeleter {
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct X509Deleter {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
struct EvpPkeyDeleter {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct BioDeleter {
    void operator()(BIO* p) const noexcept { BIO_free_all(p); }
};
struct X509StackDeleter {
    void operator()(STACK_OF(X509) * p) const noexcept { sk_X509_pop_free(p, X509_free); }
};

using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

inline X509Ptr up_ref(X509* p) {
    if (p != nullptr) {
        X509_up_ref(p);
    }
    return X509Ptr(p);
}
inline EvpPkeyPtr up_ref(EVP_PKEY* p) {
    if (p != nullptr) {
        EVP_PKEY_up_ref(p);
    }
    return EvpPkeyPtr(p);
}

}  // namespace hopgate::tls
