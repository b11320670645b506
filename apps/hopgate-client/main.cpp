// hopgate-client: see src/client/client_main.hpp.
#include "client/client_main.hpp"

int main(int argc, char** argv) { return hopgate::client::client_main(argc, argv); }
