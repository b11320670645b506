// `hopgate-server domain add|remove|list|rotate|status` for operators, on the configured registry
// (HOP_DB_DSN), without a running server.
//
// Note: a running server learns about removals and rotations made here only when its tunnels
// next authenticate; the admin API (which calls TunnelDirectory) disconnects them at once.
#pragma once

#include <iosfwd>
#include <span>
#include <string>

#include "admin/reserved.hpp"

namespace hopgate::registry {
class Registry;
}

namespace hopgate::admin {

// `args` are the words after "domain", e.g. {"add", "app.example.com", "--memo", "team a"}.
// Options: --memo TEXT (add), --limit N and --after DOMAIN (list; without --limit every page is
// printed), --json (any command: one JSON object on `out`). Results go to `out`, diagnostics to
// `err`. Returns the exit code: 0 success, 1 the operation failed (unknown domain, duplicate,
// a `reserved` name for add, database unavailable), 2 usage error. `reserved`: the control
// domain and HOP_SERVER_PROXY_DOMAINS, which `add` refuses.
int run_domain_cli(std::span<const std::string> args, registry::Registry& registry,
                   std::ostream& out, std::ostream& err,
                   std::span<const ReservedName> reserved = {});

// The usage text printed for `domain help` and on usage errors.
std::string domain_cli_usage();

}  // namespace hopgate::admin
