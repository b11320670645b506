#include "tls/ssl_util.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls/error.hpp"

namespace hopgate::tls::detail {

std::string_view ssl_alpn(const SSL* ssl) {
    if (ssl == nullptr) {
        return {};
    }
    const unsigned char* sel = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl, &sel, &len);
    return sel != nullptr ? std::string_view(reinterpret_cast<const char*>(sel), len)
                          : std::string_view();
}

std::string_view ssl_cipher(const SSL* ssl) {
    const SSL_CIPHER* c = ssl != nullptr ? SSL_get_current_cipher(ssl) : nullptr;
    return c != nullptr ? SSL_CIPHER_get_name(c) : "";
}

std::string describe_ssl_failure(const SSL* ssl, bool client, const char* what) {
    std::string out = what;
    out += " failed: ";
    out += drain_openssl_errors("no OpenSSL error");
    if (ssl != nullptr && client) {
        const long vr = SSL_get_verify_result(ssl);
        if (vr != X509_V_OK) {
            out += " (certificate: ";
            out += X509_verify_cert_error_string(vr);
            out += ")";
        }
    }
    return out;
}

void ssl_close_notify(SSL* ssl) {
    ERR_clear_error();
    (void)SSL_shutdown(ssl);
    ERR_clear_error();
}

}  // namespace hopgate::tls::detail
