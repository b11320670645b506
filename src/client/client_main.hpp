// hopgate-client's command line: configuration (flags > env > .env > defaults) and running the
// agent until SIGTERM/SIGINT. Returns the exit code.
#pragma once

namespace hopgate::client {

int client_main(int argc, const char* const* argv);

}  // namespace hopgate::client
