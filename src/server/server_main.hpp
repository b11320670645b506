// hopgate-server's command line: configuration (flags > env > .env > defaults), the `domain`
// operator subcommands, and running the gateway until SIGTERM/SIGINT. Returns the exit code.
#pragma once

namespace hopgate::server {

int server_main(int argc, const char* const* argv);

}  // namespace hopgate::server
