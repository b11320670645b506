// libFuzzer target for the .env parser (core::parse_dotenv).
//
// Besides "no crash, no sanitizer report", it checks the parser's contract on every input:
// entry keys are valid identifiers, values hold no NUL, line numbers ascend and stay within the
// input, problem messages are single printable ASCII lines, and oversized input yields only a
// whole-file problem.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/config.hpp"

namespace {

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

bool key_char(char c, bool first) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return first ? alpha : (alpha || (c >= '0' && c <= '9'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const hopgate::core::DotEnvFile f = hopgate::core::parse_dotenv(text);

    std::size_t lines = 1;
    for (char c : text) {
        lines += c == '\n' ? 1 : 0;
    }
    if (size > hopgate::core::kDotEnvMaxBytes) {
        check(f.entries.empty() && f.problems.size() == 1 && f.problems[0].line == 0);
        return 0;
    }
    std::size_t last = 0;
    for (const auto& e : f.entries) {
        check(!e.key.empty() && e.key.size() <= size);
        for (std::size_t i = 0; i < e.key.size(); ++i) {
            check(key_char(e.key[i], i == 0));
        }
        check(e.value.find('\0') == std::string_view::npos);
        check(e.value.size() <= size);
        check(e.line > last && e.line <= lines);
        last = e.line;
    }
    for (const auto& p : f.problems) {
        check(p.line <= lines);
        check(!p.message.empty());
        for (char c : p.message) {
            check(c >= 0x20 && c <= 0x7e);
        }
    }
    return 0;
}
