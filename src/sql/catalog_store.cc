#include "sql/catalog_store.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "base/file.h"
#include "base/logging.h"
#include "sql/parser.h"

namespace runnel::sql {

namespace {

spdlog::logger& lg() { return logging::get("sql"); }

/// The kind and name a CREATE TABLE or non-materialized CREATE VIEW declares, or nothing.
std::optional<std::pair<relation_kind, qualified_name>> declared_by(const statement& s) {
    if (const auto* t = std::get_if<create_table_stmt>(&s.node)) return std::pair{relation_kind::table, t->name};
    if (const auto* v = std::get_if<create_view_stmt>(&s.node); v && !v->materialized) {
        return std::pair{relation_kind::view, v->name};
    }
    return std::nullopt;
}

std::string hex_of(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
    return out;
}

const char* kind_word(relation_kind k) { return k == relation_kind::view ? "view" : "table"; }

} // namespace

std::string canonical_create(const statement& s) {
    statement c = s;
    if (auto* t = std::get_if<create_table_stmt>(&c.node)) {
        t->if_not_exists = false;
        t->temporary = false;
    } else if (auto* v = std::get_if<create_view_stmt>(&c.node)) {
        v->if_not_exists = false;
        v->or_replace = false;
        v->temporary = false;
    }
    return to_string(c);
}

std::string catalog_text(const std::vector<catalog_entry>& entries) {
    std::string out;
    for (const auto& e : entries) {
        out += e.definition;
        out += ";\n";
    }
    return out;
}

catalog_store::catalog_store(std::filesystem::path dir, catalog_limits limits)
  : _dir(std::move(dir))
  , _limits(limits) {
    if (_dir.empty()) return;
    _collector = metrics::default_registry().add_collector([this](metrics::sample_sink& out) {
        std::lock_guard lock(_mu);
        out.gauge("runnel_sql_catalog_entries", "Tables and views in the SQL catalog", {}, double(_entries.size()));
        out.gauge("runnel_sql_catalog_damaged_entries",
                  "Catalog files found damaged at start and skipped (see the log; the names are free)", {},
                  double(_damaged));
        out.counter("runnel_sql_catalog_write_errors_total", "Catalog changes refused because a file could not be written",
                    {}, double(_write_errors));
    });
}

catalog_store::~catalog_store() { _collector.reset(); }

std::filesystem::path catalog_store::file_of(const qualified_name& name) const {
    // A file name holds at most 255 bytes: a long name keeps its first 64 bytes in hex and a
    // hash of the whole (FNV-1a, 64 bits).
    const auto key = catalog_key(name);
    if (key.size() <= 100) return _dir / (hex_of(key) + ".sql");
    uint64_t h = 14695981039346656037ull;
    for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
    return _dir / fmt::format("{}-{:016x}.sql", hex_of(std::string_view(key).substr(0, 64)), h);
}

catalog_load_report catalog_store::load() {
    catalog_load_report report;
    if (_dir.empty()) return report;
    std::error_code ec;
    std::filesystem::create_directories(_dir, ec);
    std::vector<std::filesystem::path> files;
    for (auto it = std::filesystem::directory_iterator(_dir, ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec)) {
        if (it->path().extension() == ".sql") files.push_back(it->path());
    }
    if (ec) report.damaged.push_back(fmt::format("{}: {}", _dir.string(), ec.message()));
    std::sort(files.begin(), files.end());
    std::map<std::string, catalog_entry> loaded;
    for (const auto& f : files) {
        auto damaged = [&](std::string why) { report.damaged.push_back(fmt::format("{}: {}", f.string(), why)); };
        std::error_code size_ec;
        const auto size = std::filesystem::file_size(f, size_ec);
        if (size_ec) {
            damaged(size_ec.message());
            continue;
        }
        if (size > _limits.max_definition_bytes + 2) {
            damaged(fmt::format("{} bytes, more than --sql-catalog-max-definition-bytes ({})", size,
                                _limits.max_definition_bytes));
            continue;
        }
        std::ifstream in(f, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in.good() && !in.eof()) {
            damaged("cannot be read");
            continue;
        }
        auto st = parse_statement(text);
        if (!st) {
            damaged(st.error().headline());
            continue;
        }
        auto decl = declared_by(st.value());
        if (!decl) {
            damaged("not a CREATE TABLE or CREATE VIEW");
            continue;
        }
        if (file_of(decl->second).filename() != f.filename()) {
            damaged("its statement names another table than its file name says");
            continue;
        }
        loaded[catalog_key(decl->second)] = catalog_entry{decl->second, decl->first, canonical_create(st.value())};
        ++report.loaded;
    }
    for (const auto& d : report.damaged) lg().error("SQL catalog: skipping damaged entry {}", d);
    std::lock_guard lock(_mu);
    _entries = std::move(loaded);
    _damaged = report.damaged.size();
    return report;
}

parse_result<bool> catalog_store::declare_all(std::string_view text) {
    auto script = parse_script(text);
    if (!script) return script.error();
    std::lock_guard lock(_mu);
    for (const auto& st : script.value()) {
        auto decl = declared_by(st);
        if (!decl) return error_at(st.pos, 1, "a pipeline's catalog holds only CREATE TABLE and CREATE VIEW");
        _entries[catalog_key(decl->second)] = catalog_entry{decl->second, decl->first, canonical_create(st)};
    }
    return true;
}

std::optional<catalog_entry> catalog_store::find(const qualified_name& name) const {
    std::lock_guard lock(_mu);
    auto it = _entries.find(catalog_key(name));
    if (it == _entries.end()) return std::nullopt;
    return it->second;
}

std::vector<catalog_entry> catalog_store::list() const {
    std::lock_guard lock(_mu);
    std::vector<catalog_entry> out;
    out.reserve(_entries.size());
    for (const auto& [k, e] : _entries) out.push_back(e);
    return out;
}

std::size_t catalog_store::size() const {
    std::lock_guard lock(_mu);
    return _entries.size();
}

std::size_t catalog_store::damaged() const {
    std::lock_guard lock(_mu);
    return _damaged;
}

parse_result<bool> catalog_store::apply(const std::vector<catalog_change>& changes) {
    std::lock_guard lock(_mu);
    for (const auto& c : changes) {
        const auto key = catalog_key(c.entry.name);
        const auto& shown = c.entry.name.back();
        auto it = _entries.find(key);
        const auto length = uint32_t(shown.size());
        if (c.what == catalog_change::op::drop) {
            if (it == _entries.end()) continue;
            if (!_dir.empty()) {
                std::error_code ec;
                std::filesystem::remove(file_of(c.entry.name), ec);
                if (ec) {
                    ++_write_errors;
                    lg().error("SQL catalog: cannot remove {}: {}", file_of(c.entry.name).string(), ec.message());
                    return error_at(c.pos, length, fmt::format("{} {} cannot be dropped: the catalog's file cannot be "
                                                               "removed ({})",
                                                               kind_word(it->second.kind), quote_identifier(shown),
                                                               ec.message()));
                }
            }
            _entries.erase(it);
            continue;
        }
        if (it != _entries.end()) {
            if (it->second == c.entry) continue;
            if (c.what == catalog_change::op::create) {
                return error_at(c.pos, length,
                                fmt::format("{} {} was created with another definition by another session meanwhile; "
                                            "look at it with SHOW CREATE {} {}",
                                            kind_word(it->second.kind), quote_identifier(shown),
                                            it->second.kind == relation_kind::view ? "VIEW" : "TABLE",
                                            quote_identifier(shown)));
            }
        } else if (_entries.size() >= _limits.max_entries) {
            return error_at(c.pos, length,
                            fmt::format("the catalog holds {} tables and views, the most it may "
                                        "(--sql-catalog-max-entries); drop one first",
                                        _entries.size()));
        }
        if (!_dir.empty()) {
            std::error_code ec;
            std::filesystem::create_directories(_dir, ec);
            const auto text = c.entry.definition + "\n";
            auto w = write_file_atomic(file_of(c.entry.name), std::as_bytes(std::span(text)));
            if (!w) {
                ++_write_errors;
                lg().error("SQL catalog: cannot write {}: {}", file_of(c.entry.name).string(), w.error().message());
                return error_at(c.pos, length, fmt::format("{} {} cannot be kept: the catalog's file cannot be "
                                                           "written ({})",
                                                           kind_word(c.entry.kind), quote_identifier(shown),
                                                           w.error().message()));
            }
        }
        _entries[key] = c.entry;
    }
    return true;
}

} // namespace runnel::sql
