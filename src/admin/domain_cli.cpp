#include "admin/domain_cli.hpp"

#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <vector>

#include "admin/json_util.hpp"
#include "registry/domain.hpp"
#include "registry/error.hpp"
#include "registry/registry.hpp"

namespace hopgate::admin {
namespace {

using nlohmann::json;
namespace reg = hopgate::registry;

struct Parsed {
    std::string command;
    std::vector<std::string> positional;
    std::optional<std::string> memo;
    std::optional<std::string> limit;
    std::optional<std::string> after;
    bool json = false;
    std::string error;
};

Parsed parse(std::span<const std::string> args) {
    Parsed p;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        const auto value = [&](std::optional<std::string>& slot) {
            if (i + 1 >= args.size()) {
                p.error = a + " needs a value";
                return;
            }
            slot = args[++i];
        };
        if (a == "--json") {
            p.json = true;
        } else if (a == "--memo") {
            value(p.memo);
        } else if (a == "--limit") {
            value(p.limit);
        } else if (a == "--after") {
            value(p.after);
        } else if (a.starts_with("--")) {
            p.error = "unknown option " + a;
        } else if (p.command.empty()) {
            p.command = a;
        } else {
            p.positional.push_back(a);
        }
        if (!p.error.empty()) {
            break;
        }
    }
    return p;
}

int failed(std::ostream& err, std::error_code ec) {
    err << "error: " << ec.message() << "\n";
    return 1;
}

void print_record(std::ostream& out, const reg::DomainRecord& r) {
    out << "domain:     " << r.domain << "\n"
        << "id:         " << r.id << "\n"
        << "memo:       " << r.memo << "\n"
        << "created_at: " << detail::format_time_ms(r.created_at_ms) << "\n"
        << "updated_at: " << detail::format_time_ms(r.updated_at_ms) << "\n";
}

}  // namespace

std::string domain_cli_usage() {
    return "usage: hopgate-server domain <command> [options]\n"
           "  add <domain> [--memo TEXT]   register a domain and print its client API key (once)\n"
           "  remove <domain>              unregister a domain\n"
           "  rotate <domain>              replace a domain's key and print the new one (once)\n"
           "  status <domain>              show a domain's record\n"
           "  list [--limit N] [--after D] list domains (all pages unless --limit is given)\n"
           "options: --json  print one JSON object instead of text\n";
}

int run_domain_cli(std::span<const std::string> args, registry::Registry& registry,
                   std::ostream& out, std::ostream& err, std::span<const ReservedName> reserved) {
    Parsed p = parse(args);
    if (p.command == "help" || p.command == "--help") {
        out << domain_cli_usage();
        return 0;
    }
    const bool needs_domain = p.command == "add" || p.command == "remove" ||
                              p.command == "rotate" || p.command == "status";
    if (p.error.empty()) {
        if (p.command.empty()) {
            p.error = "missing command";
        } else if (!needs_domain && p.command != "list") {
            p.error = "unknown command '" + p.command + "'";
        } else if (needs_domain && p.positional.size() != 1) {
            p.error = p.command + " takes exactly one domain";
        } else if (!needs_domain && !p.positional.empty()) {
            p.error = "list takes no positional arguments";
        } else if (p.memo && p.command != "add") {
            p.error = "--memo only applies to add";
        } else if ((p.limit || p.after) && p.command != "list") {
            p.error = "--limit and --after only apply to list";
        }
    }
    if (!p.error.empty()) {
        err << "error: " << p.error << "\n" << domain_cli_usage();
        return 2;
    }

    if (p.command == "list") {
        reg::ListQuery q;
        q.after = p.after.value_or("");
        bool all_pages = true;
        if (p.limit) {
            std::size_t v = 0;
            bool digits = !p.limit->empty() && p.limit->size() <= 4;
            for (char c : *p.limit) {
                digits = digits && c >= '0' && c <= '9';
                v = v * 10 + static_cast<std::size_t>(c - '0');
            }
            if (!digits || v == 0 || v > reg::kMaxPageSize) {
                err << "error: --limit must be 1.." << reg::kMaxPageSize << "\n";
                return 2;
            }
            q.limit = v;
            all_pages = false;
        }
        json items = json::array();
        std::vector<reg::DomainRecord> records;
        std::int64_t total = 0;
        std::string next;
        for (;;) {
            auto page = registry.list(q);
            if (!page) {
                return failed(err, page.error());
            }
            total = page->total;
            next = page->next_after;
            for (auto& r : page->items) {
                records.push_back(std::move(r));
            }
            if (!all_pages || next.empty()) {
                break;
            }
            q.after = next;
        }
        if (p.json) {
            for (const auto& r : records) {
                items.push_back(detail::record_json(r));
            }
            out << detail::dump(json{{"domains", items},
                                     {"total", total},
                                     {"next_after", next.empty() ? json(nullptr) : json(next)}})
                << "\n";
            return 0;
        }
        for (const auto& r : records) {
            out << r.domain << "\t" << detail::format_time_ms(r.created_at_ms) << "\t" << r.memo
                << "\n";
        }
        out << records.size() << " of " << total << " domain(s)";
        if (!next.empty()) {
            out << "; next page: --after " << next;
        }
        out << "\n";
        return 0;
    }

    const std::string& domain = p.positional.front();
    if (p.command == "add") {
        if (auto name = reg::normalize_domain(domain)) {
            if (auto why = reserved_message(reserved, *name)) {
                err << "error: " << *why << "\n";
                return 1;
            }
        }
        auto r = registry.register_domain(domain, p.memo.value_or(""));
        if (!r) {
            return failed(err, r.error());
        }
        if (p.json) {
            json j = detail::record_json(r->record);
            j["client_api_key"] = r->client_api_key;
            out << detail::dump(j) << "\n";
        } else {
            out << "registered " << r->record.domain << "\n"
                << "client_api_key: " << r->client_api_key << "\n"
                << "(the key is shown only once; store it now)\n";
        }
        return 0;
    }
    if (p.command == "remove") {
        if (auto st = registry.unregister_domain(domain, std::nullopt); !st) {
            return failed(err, st.error());
        }
        auto name = reg::normalize_domain(domain);
        if (p.json) {
            out << detail::dump(json{{"domain", *name}, {"removed", true}}) << "\n";
        } else {
            out << "removed " << *name << "\n";
        }
        return 0;
    }
    if (p.command == "rotate") {
        auto key = registry.rotate_key(domain);
        if (!key) {
            return failed(err, key.error());
        }
        auto name = reg::normalize_domain(domain);
        if (p.json) {
            out << detail::dump(json{{"domain", *name}, {"client_api_key", *key}}) << "\n";
        } else {
            out << "rotated " << *name << "\n"
                << "client_api_key: " << *key << "\n"
                << "(the key is shown only once; store it now)\n";
        }
        return 0;
    }
    auto rec = registry.status(domain);  // status
    if (!rec) {
        return failed(err, rec.error());
    }
    if (p.json) {
        out << detail::dump(detail::record_json(*rec)) << "\n";
    } else {
        print_record(out, *rec);
    }
    return 0;
}

}  // namespace hopgate::admin
