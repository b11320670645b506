// One TLS (1.2/1.3) connection over a byte stream as a sans-I/O state machine over memory BIOs.
//
// The driver (src/net) owns the TCP socket:
//   on_bytes(d)        feed received bytes (returns how many were accepted; bounded buffer);
//   read(buf) until 0  decrypted application bytes (also drives the handshake and processes
//                      post-handshake messages);
//   pop_bytes(buf)     until 0, writing the results to the socket;
//   write(p)           accepts up to p.size() bytes (may be partial, 0 when the outgoing
//                      buffer is above its high-water mark: pop and retry).
//
// Threading: not thread-safe; use from the connection's strand. Fatal problems set failed().
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "tls/context.hpp"
#include "tls/error.hpp"
#include "tls/ossl.hpp"

namespace hopgate::tls {

struct TlsStreamOptions {
    // Unread received bytes buffered before on_bytes() stops accepting.
    std::size_t max_inbound_buffer = 256 * 1024;
    // Encrypted bytes waiting for pop_bytes() before write() stops accepting.
    std::size_t max_outbound_buffer = 256 * 1024;
};

class TlsStreamEngine {
  public:
    static std::unique_ptr<TlsStreamEngine> client(ContextPtr ctx, std::string_view server_name,
                                                   TlsStreamOptions opts = {});
    static std::unique_ptr<TlsStreamEngine> server(ContextPtr ctx, TlsStreamOptions opts = {});
    // Takes over a server-side SSL whose handshake another owner completed on the same TCP
    // connection (the HTTPS front door, ALPN hopgate/1): its BIOs are replaced by memory BIOs;
    // records it already read ahead stay in its buffer and come out of read(). `ctx` is kept for
    // its lifetime only. Fails (failed()) if `ssl` is null or its handshake is not done.
    static std::unique_ptr<TlsStreamEngine> adopt_server(ContextPtr ctx, SslPtr ssl,
                                                         TlsStreamOptions opts = {});

    TlsStreamEngine(const TlsStreamEngine&) = delete;
    TlsStreamEngine& operator=(const TlsStreamEngine&) = delete;
    ~TlsStreamEngine() = default;

    // Buffers received bytes; returns how many were accepted (less than data.size() only when
    // the inbound buffer is full: call read() and feed the rest later). Drives the handshake.
    std::size_t on_bytes(std::span<const std::uint8_t> data);
    // Copies pending encrypted bytes into `out`; 0 when none.
    std::size_t pop_bytes(std::span<std::uint8_t> out);
    std::size_t pending_bytes() const;

    bool handshake_done() const { return done_; }
    bool failed() const { return failed_; }
    const std::string& error() const { return error_; }
    bool peer_closed() const { return peer_closed_; }

    // Decrypted bytes into `out`; 0 when none available. Errors: kClosed (peer close_notify),
    // kHandshake/kProtocol (failed()), kInvalidArgument (empty out).
    core::Result<std::size_t> read(std::span<std::uint8_t> out);
    // Encrypts up to plaintext.size() bytes; returns how many were taken (0 when the outbound
    // buffer is above its mark). Errors: kNotReady, kClosed, kHandshake/kProtocol.
    core::Result<std::size_t> write(std::span<const std::uint8_t> plaintext);

    // Queues close_notify (pop it). Later writes fail with kClosed.
    void close_notify();

    bool is_server() const { return server_; }
    std::string_view alpn() const;
    std::string_view cipher() const;
    // "TLSv1.3" / "TLSv1.2".
    std::string_view version() const;
    SSL* native() const { return ssl_.get(); }

    struct PrivateTag {};
    TlsStreamEngine(PrivateTag, ContextPtr ctx, bool server, TlsStreamOptions opts);

  private:
    void setup(std::string_view server_name);
    void drive_handshake();
    void fail(Errc code, std::string why);
    std::string describe_failure(const char* what) const;

    ContextPtr ctx_;
    bool server_;
    TlsStreamOptions opts_;
    SslPtr ssl_;
    BIO* rbio_ = nullptr;  // owned by ssl_
    BIO* wbio_ = nullptr;  // owned by ssl_
    bool done_ = false;
    bool failed_ = false;
    bool peer_closed_ = false;
    bool closed_ = false;
    Errc fail_code_ = Errc::kOk;
    std::string error_;
};

}  // namespace hopgate::tls
