// hopgate-server: see src/server/server_main.hpp.
#include "server/server_main.hpp"

int main(int argc, char** argv) { return hopgate::server::server_main(argc, argv); }
