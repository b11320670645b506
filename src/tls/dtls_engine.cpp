#include "tls/dtls_engine.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "tls/error.hpp"
#include "tls/ssl_util.hpp"

namespace hopgate::tls {
namespace {

constexpr std::size_t kMinMtu = 256;
constexpr std::size_t kMaxMtu = 65507;
constexpr std::size_t kMaxDatagramIn = 65535;

// OpenSSL reports a timer with less than 15 ms left as already expired, and its read path
// retransmits on expired timers by itself; shorter timers would burn all retries in one call.
constexpr std::int64_t kMinTimerUs = 20000;

unsigned int to_us(core::Duration d) {
    auto us = d.count();
    if (us < kMinTimerUs) {
        us = kMinTimerUs;
    }
    return us > static_cast<decltype(us)>(UINT_MAX) ? UINT_MAX : static_cast<unsigned int>(us);
}

}  // namespace

std::unique_ptr<DtlsEngine> DtlsEngine::client(ContextPtr ctx, std::string_view server_name,
                                               DtlsOptions opts) {
    auto e = std::make_unique<DtlsEngine>(PrivateTag{}, std::move(ctx), false, opts);
    e->setup(server_name);
    return e;
}

std::unique_ptr<DtlsEngine> DtlsEngine::server(ContextPtr ctx, DtlsOptions opts,
                                               const CookieGuard* guard,
                                               std::span<const std::uint8_t> peer_addr) {
    auto e = std::make_unique<DtlsEngine>(PrivateTag{}, std::move(ctx), true, opts);
    if (guard != nullptr) {
        e->guard_ = guard;
        e->peer_len_ = std::min(peer_addr.size(), e->peer_.size());
        std::copy_n(peer_addr.begin(), e->peer_len_, e->peer_.begin());
        e->listening_ = true;
        if (peer_addr.size() > e->peer_.size()) {
            e->fail(Errc::kInvalidArgument, "peer address longer than 64 bytes");
        }
    }
    e->setup({});
    return e;
}

DtlsEngine::DtlsEngine(PrivateTag, ContextPtr ctx, bool server, DtlsOptions opts)
    : ctx_(std::move(ctx)), server_(server), opts_(opts), mtu_(opts.mtu) {
    bio_state_.in = &in_;
    bio_state_.out = &out_;
}

DtlsEngine::~DtlsEngine() {
    if (ssl_) {
        SSL_set_app_data(ssl_.get(), nullptr);
    }
}

void DtlsEngine::setup(std::string_view server_name) {
    if (failed_) {
        return;
    }
    if (!ctx_ || ctx_->protocol() != Protocol::kDtls || ctx_->is_server() != server_) {
        fail(Errc::kInvalidArgument,
             "context is not a DTLS " + std::string(server_ ? "server" : "client") + " context");
        return;
    }
    if (mtu_ < kMinMtu || mtu_ > kMaxMtu) {
        fail(Errc::kInvalidArgument, "MTU out of range");
        return;
    }
    ssl_.reset(SSL_new(ctx_->native()));
    BIO* bio = ssl_ ? new_datagram_bio(&bio_state_) : nullptr;
    if (bio == nullptr) {
        fail(Errc::kInternal, "SSL_new: " + drain_openssl_errors());
        return;
    }
    SSL_set_bio(ssl_.get(), bio, bio);  // one reference, used for both directions
    SSL_set_app_data(ssl_.get(), static_cast<detail::SslHooks*>(this));
    apply_dtls_settings();
    if (server_) {
        SSL_set_accept_state(ssl_.get());
    } else {
        if (auto st = prepare_client_ssl(ssl_.get(), *ctx_, server_name); !st) {
            fail(Errc::kInvalidArgument, "invalid server name '" + std::string(server_name) + "'");
            return;
        }
        SSL_set_connect_state(ssl_.get());
        drive_handshake();  // queues the first ClientHello
    }
}

void DtlsEngine::apply_dtls_settings() {
    SSL_set_options(ssl_.get(), SSL_OP_NO_QUERY_MTU);
    SSL_set_mtu(ssl_.get(), static_cast<long>(mtu_));
    bio_state_.mtu = static_cast<long>(mtu_);
    DTLS_set_timer_cb(ssl_.get(), &DtlsEngine::timer_cb);
}

unsigned int DtlsEngine::timer_cb(SSL* ssl, unsigned int previous_us) {
    auto* hooks = static_cast<detail::SslHooks*>(SSL_get_app_data(ssl));
    if (hooks == nullptr) {
        return previous_us == 0 ? 1000000u : std::min(previous_us * 2u, 60000000u);
    }
    const auto* self = static_cast<const DtlsEngine*>(hooks);
    unsigned int initial = to_us(self->opts_.initial_retransmit);
    unsigned int cap = std::max(initial, to_us(self->opts_.max_retransmit));
    if (previous_us == 0) {
        return initial;
    }
    return previous_us > cap / 2 ? cap : previous_us * 2;
}

int DtlsEngine::generate_cookie(unsigned char* cookie, unsigned int* len) noexcept {
    if (guard_ == nullptr) {
        return 0;
    }
    // OpenSSL passes a DTLS1_COOKIE_LENGTH (255) buffer.
    std::size_t n = guard_->make_cookie({peer_.data(), peer_len_}, {cookie, 255});
    *len = static_cast<unsigned int>(n);
    return n > 0 ? 1 : 0;
}

int DtlsEngine::verify_cookie(const unsigned char* cookie, unsigned int len) noexcept {
    if (guard_ == nullptr) {
        return 0;
    }
    return guard_->verify_cookie({cookie, len}, {peer_.data(), peer_len_}) ? 1 : 0;
}

void DtlsEngine::on_datagram(std::span<const std::uint8_t> datagram) {
    if (failed_ || !ssl_ || datagram.empty() || datagram.size() > kMaxDatagramIn) {
        return;
    }
    if (!in_.push(datagram)) {
        ++in_dropped_;
        return;
    }
    if (!done_) {
        drive_handshake();
    }
}

void DtlsEngine::on_datagram_view(std::span<const std::uint8_t> datagram) {
    if (!done_ || failed_ || !ssl_ || datagram.empty() || datagram.size() > kMaxDatagramIn) {
        on_datagram(datagram);
        return;
    }
    if (!bio_state_.view.empty()) {
        // The previous view was not read: keep it, in order, before the new one.
        if (!in_.push(bio_state_.view)) {
            ++in_dropped_;
        }
        bio_state_.view = {};
    }
    bio_state_.view = datagram;
}

void DtlsEngine::drive_handshake() {
    if (failed_ || done_ || !ssl_) {
        return;
    }
    ERR_clear_error();
    if (listening_) {
        BIO_ADDR* addr = BIO_ADDR_new();
        if (addr == nullptr) {
            fail(Errc::kInternal, "BIO_ADDR_new failed");
            return;
        }
        int r = DTLSv1_listen(ssl_.get(), addr);
        BIO_ADDR_free(addr);
        if (r < 0) {
            fail(Errc::kHandshake, describe_failure("DTLSv1_listen"));
            return;
        }
        if (r == 0) {
            // No ClientHello with a valid cookie yet (anything else was answered or dropped).
            ERR_clear_error();
            return;
        }
        listening_ = false;
        apply_dtls_settings();  // DTLSv1_listen clears the SSL; keep our MTU and timer
    }
    int r = server_ ? SSL_accept(ssl_.get()) : SSL_connect(ssl_.get());
    if (r == 1) {
        on_handshake_complete();
        return;
    }
    int err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return;
    }
    fail(Errc::kHandshake, describe_failure("handshake"));
}

void DtlsEngine::on_handshake_complete() {
    std::string why;
    if (auto st = check_alpn(ssl_.get(), *ctx_, &why); !st) {
        fail(Errc::kHandshake, why);
        return;
    }
    done_ = true;
    std::size_t data_mtu = DTLS_get_data_mtu(ssl_.get());
    if (data_mtu > 0 && data_mtu < mtu_) {
        overhead_ = mtu_ - data_mtu;
    }
    if (opts_.own_records) {
        records_ = DtlsRecords::from_ssl(ssl_.get());
        // A finished client has the server's Finished, so the server needs no retransmission
        // from it and can take sequence numbers far above OpenSSL's. A server waits for the
        // client's first application record: until then the client may still need OpenSSL's
        // retransmitted Finished, which an earlier record with a higher sequence number would
        // push out of the client's replay window.
        seal_own_ = records_ != nullptr && !server_;
        if (records_ && records_->kOverhead != overhead_) {
            records_.reset();  // not the AES-GCM layout assumed by record_overhead()
        }
        if (records_) {
            seal_buf_.resize(kMaxPlaintext + DtlsRecords::kOverhead);
        }
    }
}

std::string DtlsEngine::describe_failure(const char* what) const {
    return detail::describe_ssl_failure(ssl_.get(), !server_, what);
}

void DtlsEngine::fail(Errc code, std::string why) {
    if (failed_) {
        return;
    }
    failed_ = true;
    fail_code_ = code;
    error_ = std::move(why);
    clear_openssl_errors();
}

std::size_t DtlsEngine::pop_datagram(std::span<std::uint8_t> out) {
    while (!out_.empty()) {
        auto d = out_.front();
        if (d.size() <= out.size()) {
            std::memcpy(out.data(), d.data(), d.size());
            out_.pop();
            return d.size();
        }
        ++oversize_dropped_;
        out_.pop();
    }
    return 0;
}

std::span<const std::uint8_t> DtlsEngine::next_datagram() const {
    return out_.empty() ? std::span<const std::uint8_t>{} : out_.front();
}

void DtlsEngine::consume_datagram() {
    if (!out_.empty()) {
        out_.pop();
    }
}

core::Result<std::size_t> DtlsEngine::read(std::span<std::uint8_t> out) {
    auto r = read_record(out);
    if (!r || *r == 0) {
        bio_state_.view = {};  // the caller may reuse the viewed buffer from here on
    }
    return r;
}

core::Result<std::size_t> DtlsEngine::read_record(std::span<std::uint8_t> out) {
    if (failed_) {
        return fail_code_;
    }
    if (peer_closed_) {
        return Errc::kClosed;
    }
    if (!done_) {
        drive_handshake();
        if (failed_) {
            return fail_code_;
        }
        if (!done_) {
            return std::size_t{0};
        }
    }
    if (out.empty()) {
        return Errc::kInvalidArgument;
    }
    if (records_) {
        if (auto n = read_own(out)) {
            return *n;
        }
    } else if (in_.empty() && bio_state_.view.empty() && SSL_has_pending(ssl_.get()) == 0) {
        return std::size_t{0};  // nothing received and nothing buffered: skip the library call
    }
    clear_openssl_errors();
    int n = SSL_read(ssl_.get(), out.data(),
                     static_cast<int>(std::min<std::size_t>(out.size(), INT_MAX)));
    if (n > 0) {
        seal_own_ = records_ != nullptr;  // the peer finished its handshake (see above)
        return static_cast<std::size_t>(n);
    }
    int err = SSL_get_error(ssl_.get(), n);
    switch (err) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return std::size_t{0};
        case SSL_ERROR_ZERO_RETURN:
            peer_closed_ = true;
            return Errc::kClosed;
        default:
            fail(Errc::kProtocol, describe_failure("read"));
            return fail_code_;
    }
}

std::optional<std::size_t> DtlsEngine::read_own(std::span<std::uint8_t> out) {
    for (;;) {
        if (spill_off_ < spill_len_) {
            const std::size_t n = std::min(out.size(), spill_len_ - spill_off_);
            std::memcpy(out.data(), spill_.data() + spill_off_, n);
            spill_off_ += n;
            return n;
        }
        if (SSL_has_pending(ssl_.get()) != 0) {
            return std::nullopt;  // OpenSSL is part-way through a datagram it took
        }
        const std::span<const std::uint8_t> d =
            !in_.empty() ? in_.front() : bio_state_.view;
        if (d.empty()) {
            return std::size_t{0};
        }
        // A datagram with anything but epoch-1 application data (an alert, a retransmitted
        // handshake message, noise) goes to OpenSSL whole.
        if (own_off_ == 0 && !DtlsRecords::all_ours(d)) {
            if (!DtlsRecords::has_application_record(d)) {
                return std::nullopt;
            }
            ++mixed_dropped_;  // see DtlsRecords::has_application_record
            pop_current_datagram();
            continue;
        }
        const auto rec = d.subspan(own_off_);
        const std::size_t size = DtlsRecords::record_size(rec);
        const std::size_t n = DtlsRecords::plaintext_size(rec);
        bool ok = false;
        if (n <= out.size()) {
            ok = records_->open(rec, out);
        } else {
            spill_.resize(std::max(spill_.size(), n));
            ok = records_->open(rec, spill_);
            spill_off_ = 0;
            spill_len_ = ok ? n : 0;
        }
        own_off_ += size;
        if (own_off_ >= d.size()) {
            pop_current_datagram();
        }
        if (!ok) {
            continue;  // forged, corrupted or replayed: dropped, as OpenSSL would
        }
        ++own_opened_;
        seal_own_ = true;  // the peer finished its handshake (see on_handshake_complete)
        if (n > out.size()) {
            continue;  // served from spill_ above
        }
        return n;
    }
}

void DtlsEngine::pop_current_datagram() {
    own_off_ = 0;
    if (!in_.empty()) {
        in_.pop();
    } else {
        bio_state_.view = {};
    }
}

core::Status DtlsEngine::write(std::span<const std::uint8_t> plaintext) {
    if (failed_) {
        return fail_code_;
    }
    if (closed_) {
        return Errc::kClosed;
    }
    if (!done_) {
        return Errc::kNotReady;
    }
    if (plaintext.empty()) {
        return Errc::kInvalidArgument;
    }
    if (plaintext.size() > kMaxPlaintext) {
        return Errc::kTooLarge;
    }
    if (out_.full()) {
        return Errc::kWouldBlock;
    }
    if (records_ && seal_own_) {
        const std::size_t m = records_->seal(plaintext, seal_buf_);
        if (m > 0) {
            bio_state_.emit({seal_buf_.data(), m});  // as the BIO does; out_ not full (above)
            return {};
        }
        // A library failure: OpenSSL's record layer still works.
    }
    clear_openssl_errors();
    int n = SSL_write(ssl_.get(), plaintext.data(), static_cast<int>(plaintext.size()));
    if (n == static_cast<int>(plaintext.size())) {
        return {};
    }
    fail(Errc::kProtocol, describe_failure("write"));
    return fail_code_;
}

std::size_t DtlsEngine::seal_in_place(std::span<std::uint8_t> buf, std::size_t n) {
    if (!records_ || !seal_own_ || closed_ || failed_ || !out_.empty() || n == 0 ||
        n > kMaxPlaintext) {
        return 0;
    }
    return records_->seal_in_place(buf, n);
}

std::optional<core::Duration> DtlsEngine::timeout() const {
    if (failed_ || !ssl_) {
        return std::nullopt;
    }
    timeval tv{};
    if (DTLSv1_get_timeout(ssl_.get(), &tv) != 1) {
        return std::nullopt;
    }
    return core::Duration(static_cast<std::int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec);
}

void DtlsEngine::on_timeout() {
    if (failed_ || !ssl_) {
        return;
    }
    ERR_clear_error();
    if (DTLSv1_handle_timeout(ssl_.get()) < 0) {
        fail(Errc::kHandshake, describe_failure("retransmission"));
    }
}

std::size_t DtlsEngine::record_overhead() const { return overhead_; }

core::Status DtlsEngine::set_mtu(std::size_t mtu) {
    if (mtu < kMinMtu || mtu > kMaxMtu) {
        return Errc::kInvalidArgument;
    }
    mtu_ = mtu;
    if (ssl_) {
        if (SSL_set_mtu(ssl_.get(), static_cast<long>(mtu)) <= 0) {
            ERR_clear_error();
            return Errc::kInvalidArgument;
        }
        bio_state_.mtu = static_cast<long>(mtu);
        if (done_) {
            std::size_t data_mtu = DTLS_get_data_mtu(ssl_.get());
            if (data_mtu > 0 && data_mtu < mtu_) {
                overhead_ = mtu_ - data_mtu;
            }
        }
    }
    return {};
}

void DtlsEngine::close_notify() {
    if (closed_ || !ssl_) {
        return;
    }
    closed_ = true;
    if (done_ && !failed_) {
        if (records_ && seal_own_) {
            // Sealed here so that its sequence number follows our records: OpenSSL's would lie
            // below the window of a peer whose OpenSSL opened them.
            static constexpr std::uint8_t kCloseNotify[2] = {1, 0};  // warning, close_notify
            if (const std::size_t m =
                    records_->seal(kCloseNotify, seal_buf_, DtlsRecords::kAlert)) {
                bio_state_.emit({seal_buf_.data(), m});
                SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN);
                return;
            }
        }
        detail::ssl_close_notify(ssl_.get());
    }
}

std::string_view DtlsEngine::alpn() const { return detail::ssl_alpn(ssl_.get()); }

std::string_view DtlsEngine::cipher() const { return detail::ssl_cipher(ssl_.get()); }

DtlsEngine::Stats DtlsEngine::stats() const {
    Stats st{in_dropped_, bio_state_.dropped_writes, oversize_dropped_};
    if (records_) {
        st.own_sealed = records_->records_sealed();
        st.own_opened = own_opened_;
        st.own_rejected = records_->records_rejected() + mixed_dropped_;
    }
    return st;
}

}  // namespace hopgate::tls
