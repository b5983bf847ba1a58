#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/metrics.h"
#include "sql/ast.h"
#include "sql/catalog.h"
#include "sql/error.h"

namespace runnel::sql {

/// One table or view of a catalog: its name, kind and canonical CREATE text (`canonical_create`,
/// secrets as written: the pipelines that use it need them).
struct catalog_entry {
    qualified_name name;
    relation_kind kind = relation_kind::table;
    std::string definition;
    bool operator==(const catalog_entry&) const = default;
};

/// What a catalog may hold (`runnel serve --sql-catalog-max-entries`, …).
struct catalog_limits {
    /// Tables and views together; a CREATE past it is refused.
    std::size_t max_entries = 10000;
    /// Bytes of one entry's canonical CREATE text; a longer one is refused (and a longer file
    /// is not read at start).
    std::size_t max_definition_bytes = 256 * 1024;
};

/// One change a session asks of the catalog when its script succeeds.
struct catalog_change {
    enum class op { create, replace, drop };
    op what = op::create;
    catalog_entry entry; ///< for a drop, only the name counts
    source_pos pos;      ///< the statement's name in the user's text, for errors
};

/// What `catalog_store::load` found: how many entries it read, and one line per file it could
/// not use (the file stays where it is; the name is free).
struct catalog_load_report {
    std::size_t loaded = 0;
    std::vector<std::string> damaged;
};

/// The canonical text of a CREATE TABLE or CREATE VIEW (`to_string`, without IF NOT EXISTS,
/// OR REPLACE or TEMPORARY): what the catalog keeps, and what "the same definition" compares.
std::string canonical_create(const statement& s);

/// The server's catalog of tables and views, as Flink's catalog store: one per server, shared
/// by every SQL session (each HTTP request is one), kept in a directory (one file
/// `<hex of the name>.sql`, or for a long name its first bytes and a hash, holding the entry's canonical CREATE text, written with
/// `write_file_atomic`) and read back at start. Without a directory it is kept in memory only
/// (a pipeline's own declarations when it starts, tests).
///
/// Thread-safe: every method takes the store's mutex and answers copies, so sessions on any
/// shard share it. File writes happen under the mutex on the caller's thread (small files, rare
/// DDL). A damaged file found at start is logged, counted in `runnel_sql_catalog_damaged_entries`
/// and skipped; the server keeps serving.
class catalog_store {
public:
    /// `dir` empty: memory only. With a directory, `/metrics` shows the store's entries,
    /// damaged files and failed writes while it lives.
    explicit catalog_store(std::filesystem::path dir = {}, catalog_limits limits = {});
    catalog_store(const catalog_store&) = delete;
    catalog_store& operator=(const catalog_store&) = delete;
    ~catalog_store();

    /// Reads every entry of the directory (creating it when absent). A file that cannot be
    /// read, is too long, does not parse to one CREATE TABLE or CREATE VIEW, or names another
    /// entry than its file name says is reported, logged and counted, never fatal.
    catalog_load_report load();

    /// Puts the CREATE TABLE and CREATE VIEW statements of `text` (canonical texts, as
    /// `catalog_text` writes them) into a store without a directory; errors point into `text`.
    parse_result<bool> declare_all(std::string_view text);

    std::optional<catalog_entry> find(const qualified_name& name) const;
    /// Every entry, ordered by name.
    std::vector<catalog_entry> list() const;
    std::size_t size() const;
    /// Files found damaged by the last `load`.
    std::size_t damaged() const;
    const catalog_limits& limits() const { return _limits; }

    /// Applies `changes` in order: a create of a name that holds the same definition does
    /// nothing, of a name that holds another is refused (another session created it since);
    /// a drop of a missing name does nothing. Stops at the first change that cannot be made
    /// (that conflict, the entry limit, a failed write), keeping the changes before it, and
    /// answers its error at the change's position.
    parse_result<bool> apply(const std::vector<catalog_change>& changes);

private:
    std::filesystem::path file_of(const qualified_name& name) const;

    std::filesystem::path _dir;
    catalog_limits _limits;
    mutable std::mutex _mu;
    std::map<std::string, catalog_entry> _entries; ///< by `catalog_key`
    std::size_t _damaged = 0;
    uint64_t _write_errors = 0;
    metrics::registry::collector_handle _collector;
};

/// The entries' texts as one script, one statement per line: what a pipeline keeps of the
/// catalog (its job parameter `catalog`), read back by `catalog_store::declare_all`.
std::string catalog_text(const std::vector<catalog_entry>& entries);

} // namespace runnel::sql
