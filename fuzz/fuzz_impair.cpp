// libFuzzer target: hopgate-impair's control-line parser (execute_command on an in-memory relay)
// and its command-line option parser. Links: hg_impair.
//   Input: byte 0 selects the parser; the rest is one control line, or NUL-separated arguments.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "../tests/unit/impair/fake_relay.hpp"
#include "impair/control.hpp"
#include "impair/options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    if (data[0] & 1) {
        hopgate::impair::FakeRelay relay;
        relay.tcp = (data[0] & 2) != 0;
        const auto reply = hopgate::impair::execute_command(relay, rest);
        (void)reply;
        return 0;
    }
    std::vector<std::string_view> args;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= rest.size(); ++i) {
        if (i == rest.size() || rest[i] == '\0') {
            args.push_back(rest.substr(start, i - start));
            start = i + 1;
        }
    }
    try {
        (void)hopgate::impair::parse_options(args);
    } catch (const std::exception&) {
        // Start-up errors are exceptions by design; only crashes and UB are findings.
    }
    return 0;
}
