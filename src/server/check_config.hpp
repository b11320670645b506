// `hopgate-server check-config`: everything the server checks at start-up, without starting it,
// so an operator can validate a change before `systemctl restart`.
//
// One line per check ("ok   ...", "warn ...", "FAIL ..."): host settings, CIDR lists, the
// certificate source (files readable, key matching, names covered, not expiring; or the
// self-signed / ACME directories writable), error-page directories, the database (reachable and
// migrated; a SQLite file that does not exist yet is reported, not created) and every listener's
// port (bound and released). Then the effective configuration, secrets masked. Returns the exit
// code: 0 when nothing failed, 1 otherwise. Blocking; for the command line only.
#pragma once

#include <iosfwd>

#include "core/config.hpp"
#include "server/gateway.hpp"

namespace hopgate::server {

int check_server_config(const GatewayConfig& g, const core::Config& cfg, std::ostream& out);

}  // namespace hopgate::server
