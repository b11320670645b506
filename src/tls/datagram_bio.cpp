#include "tls/datagram_bio.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace hopgate::tls {

bool DatagramQueue::push(std::span<const std::uint8_t> datagram) {
    if (full()) {
        return false;
    }
    auto& slot = slots_[(head_ + count_) % kCapacity];
    slot.assign(datagram.begin(), datagram.end());
    ++count_;
    return true;
}

std::span<const std::uint8_t> DatagramQueue::front() const {
    assert(!empty());
    return slots_[head_];
}

void DatagramQueue::pop() {
    assert(!empty());
    head_ = (head_ + 1) % kCapacity;
    --count_;
}

void DatagramBioState::emit(std::span<const std::uint8_t> d) {
    // Queued datagrams go first: the sink only takes one when nothing waits before it.
    if (sink != nullptr && out->empty() && sink->accept(d)) {
        return;
    }
    // A full queue drops the datagram, as a congested link would; DTLS retransmits handshake
    // flights and the tunnel core recovers records. The engine refuses application writes
    // before this can happen.
    if (!out->push(d)) {
        ++dropped_writes;
    }
}

namespace {

DatagramBioState* state_of(BIO* b) { return static_cast<DatagramBioState*>(BIO_get_data(b)); }

int dgram_write(BIO* b, const char* data, int len) {
    BIO_clear_retry_flags(b);
    DatagramBioState* st = state_of(b);
    if (st == nullptr || st->out == nullptr || len < 0) {
        return -1;
    }
    st->emit(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data),
                                           static_cast<std::size_t>(len)));
    return len;
}

int dgram_read(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    DatagramBioState* st = state_of(b);
    if (st == nullptr || st->in == nullptr || out == nullptr || len < 0) {
        return -1;
    }
    std::span<const std::uint8_t> d;
    if (!st->in->empty()) {
        d = st->in->front();
    } else if (!st->view.empty()) {
        d = st->view;
    } else {
        BIO_set_retry_read(b);
        return -1;
    }
    // Datagram semantics: a short read truncates and discards the rest.
    std::size_t n = std::min(d.size(), static_cast<std::size_t>(len));
    std::memcpy(out, d.data(), n);
    if (!st->in->empty()) {
        st->in->pop();
    } else {
        st->view = {};
    }
    return static_cast<int>(n);
}

long dgram_ctrl(BIO* b, int cmd, long num, void*) {
    DatagramBioState* st = state_of(b);
    switch (cmd) {
        case BIO_CTRL_FLUSH:
        case BIO_CTRL_RESET:
        case BIO_CTRL_DGRAM_SET_CONNECTED:
        case BIO_CTRL_DGRAM_SET_PEER:
        case BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT:
            return 1;
        case BIO_CTRL_PENDING:
            if (st == nullptr || st->in == nullptr) {
                return 0;
            }
            if (!st->in->empty()) {
                return static_cast<long>(st->in->front().size());
            }
            return static_cast<long>(st->view.size());
        // Must be 0: OpenSSL subtracts BIO_wpending from the space left in the datagram it is
        // filling, and queued datagrams are already complete.
        case BIO_CTRL_WPENDING:
            return 0;
        case BIO_CTRL_DGRAM_QUERY_MTU:
        case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
            return st != nullptr ? st->mtu : 1200;
        case BIO_CTRL_DGRAM_SET_MTU:
            if (st != nullptr) {
                st->mtu = num;
            }
            return num;
        case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
            return 0;  // the engine's MTU is already the UDP payload size
        case BIO_CTRL_DGRAM_MTU_EXCEEDED:
        case BIO_CTRL_DGRAM_GET_PEER:  // no addresses here; DTLSv1_listen copes
        case BIO_CTRL_EOF:
            return 0;
        case BIO_CTRL_GET_CLOSE:
            return BIO_get_shutdown(b);
        case BIO_CTRL_SET_CLOSE:
            BIO_set_shutdown(b, static_cast<int>(num));
            return 1;
        default:
            return 0;
    }
}

int dgram_create(BIO* b) {
    BIO_set_init(b, 1);
    BIO_set_data(b, nullptr);
    return 1;
}

int dgram_destroy(BIO* b) {
    BIO_set_data(b, nullptr);
    return 1;
}

BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
        BIO_METHOD* bm =
            BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hopgate datagram queue");
        if (bm != nullptr) {
            BIO_meth_set_write(bm, dgram_write);
            BIO_meth_set_read(bm, dgram_read);
            BIO_meth_set_ctrl(bm, dgram_ctrl);
            BIO_meth_set_create(bm, dgram_create);
            BIO_meth_set_destroy(bm, dgram_destroy);
        }
        return bm;  // lives for the process
    }();
    return m;
}

}  // namespace

BIO* new_datagram_bio(DatagramBioState* state) {
    BIO_METHOD* m = method();
    if (m == nullptr) {
        return nullptr;
    }
    BIO* b = BIO_new(m);
    if (b != nullptr) {
        BIO_set_data(b, state);
    }
    return b;
}

}  // namespace hopgate::tls
