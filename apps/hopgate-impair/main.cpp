// hopgate-impair: a UDP/TCP relay that impairs traffic for tests. See --help.
#include <cstdio>
#include <exception>
#include <string_view>
#include <vector>

#include "impair/app.hpp"
#include "impair/options.hpp"

int main(int argc, char** argv) {
    using namespace hopgate::impair;
    try {
        std::vector<std::string_view> args(argv + 1, argv + argc);
        const Options options = parse_options(args);
        if (options.help) {
            std::fputs(help_text().c_str(), stdout);
            return 0;
        }
        return run(options, stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hopgate-impair: %s\n", e.what());
        return 1;
    }
}
