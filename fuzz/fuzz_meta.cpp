// libFuzzer target for the stream head codec (proto/meta.hpp).
//
// On kOk the decoded head must re-encode within the same limit, no larger than the input record,
// and decode back to an equal head consuming exactly the encoding; every proper prefix of the
// record must be kNeedMore, and a smaller size limit may only turn kOk into kTooLarge.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "proto/meta.hpp"

namespace {

using namespace hopgate::proto;

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> in(data, size);
    StreamMeta m;
    std::size_t consumed = 0;
    const MetaParse res = decode_meta(in, kDefaultMaxMetaSize, m, consumed);

    // A tighter limit: kOk only if the record fits it, otherwise kTooLarge.
    constexpr std::size_t kSmall = 200;
    StreamMeta small;
    std::size_t small_consumed = 0;
    const MetaParse small_res = decode_meta(in, kSmall, small, small_consumed);
    if (res == MetaParse::kOk) {
        if (consumed <= kSmall) {
            check(small_res == MetaParse::kOk && small == m && small_consumed == consumed);
        } else {
            check(small_res == MetaParse::kTooLarge);
        }
    }
    if (res != MetaParse::kOk) {
        return 0;
    }
    check(consumed > 0 && consumed <= size);
    check(m.status <= 999 && m.headers.size() <= kMaxMetaHeaders);

    std::vector<std::uint8_t> enc;
    check(encode_meta(m, enc, kDefaultMaxMetaSize));
    check(enc.size() <= consumed);
    StreamMeta back;
    std::size_t back_consumed = 0;
    check(decode_meta(enc, kDefaultMaxMetaSize, back, back_consumed) == MetaParse::kOk);
    check(back == m && back_consumed == enc.size());

    // Proper prefixes of the original record wait for more (a few cut points keep it linear).
    for (const std::size_t cut : {std::size_t{0}, consumed / 2, consumed - 1}) {
        StreamMeta part;
        std::size_t part_consumed = 0;
        check(decode_meta(in.first(cut), kDefaultMaxMetaSize, part, part_consumed) ==
              MetaParse::kNeedMore);
    }
    return 0;
}
