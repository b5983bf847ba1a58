#include "sql/session.h"

#include <algorithm>

#include <fmt/format.h>

#include "sql/binder.h"
#include "sql/hints.h"
#include "sql/lexer.h"
#include "sql/parser.h"

namespace runnel::sql {

namespace {

const char* kind_word(relation_kind k) { return k == relation_kind::view ? "view" : "table"; }
const char* kind_keyword(relation_kind k) { return k == relation_kind::view ? "VIEW" : "TABLE"; }

uint32_t name_length(const qualified_name& n) { return n.empty() ? 1 : uint32_t(n.back().size()); }

} // namespace

/// The names a session's statements resolve against: the script's own declarations first,
/// then the shared store (less what the script dropped). Entries read from the store are
/// parsed once and kept for the session, so the pointers `find_table` answers stay valid while
/// other sessions change the store; the store entries a planning used are recorded, for the
/// pipeline's self-contained definition. On the session's thread.
class session::layered final : public catalog {
public:
    layered(catalog_store& store, options_check check)
      : _store(store)
      , _own(std::move(check)) {}

    /// The script's own declaration of `name`, or null.
    struct local_entry {
        catalog_entry entry;
        std::size_t index = 0; ///< the statement that declared it
        bool temporary = false;
    };
    const local_entry* local(const qualified_name& name) const {
        auto it = _local.find(catalog_key(name));
        return it == _local.end() ? nullptr : &it->second;
    }

    /// What `name` is for this session: its own declaration, else the store's entry unless
    /// the session dropped it.
    std::optional<catalog_entry> visible(const qualified_name& name) const {
        if (const auto* l = local(name)) return l->entry;
        if (_hidden.count(catalog_key(name))) return std::nullopt;
        return _store.find(name);
    }

    /// Every visible entry of `kind`, by name.
    std::vector<std::string> names_of(relation_kind kind) const {
        std::set<std::string> out;
        for (const auto& e : _store.list()) {
            if (e.kind == kind && !_hidden.count(catalog_key(e.name)) && !local(e.name)) out.insert(e.name.back());
        }
        for (const auto& [k, l] : _local) {
            if (l.entry.kind == kind) out.insert(l.entry.name.back());
        }
        return {out.begin(), out.end()};
    }

    parse_result<bool> put_local(const statement& st, catalog_entry e, std::size_t index, bool temporary) {
        auto declared = sql::declare(st, _own);
        if (!declared) return declared.error();
        const auto key = catalog_key(e.name);
        _local[key] = local_entry{std::move(e), index, temporary};
        return true;
    }

    void remove_local(const qualified_name& name) {
        _own.remove(name);
        _local.erase(catalog_key(name));
    }

    void hide(const qualified_name& name) { _hidden.insert(catalog_key(name)); }
    void unhide(const qualified_name& name) { _hidden.erase(catalog_key(name)); }

    void start_recording() const { _used.clear(); }
    std::vector<catalog_entry> recorded() const {
        std::vector<catalog_entry> out;
        for (const auto& [k, e] : _used) out.push_back(e);
        return out;
    }

    const table_schema* find_table(const qualified_name& name) const override {
        const auto key = catalog_key(name);
        if (_local.count(key)) return _own.find_table(name);
        if (_hidden.count(key)) return nullptr;
        auto e = _store.find(name);
        if (!e) return nullptr;
        const table_schema* t = _fetched.find_table(name);
        // Read again when another session replaced the entry since (a view OR REPLACEd).
        auto seen = _fetched_text.find(key);
        if (!t || seen == _fetched_text.end() || seen->second != e->definition) {
            auto st = parse_statement(e->definition);
            if (!st) return nullptr;
            auto declared = sql::declare(st.value(), _fetched);
            if (!declared || !declared.value()) return nullptr;
            _fetched_text[key] = e->definition;
            t = _fetched.find_table(name);
        }
        _used[key] = std::move(*e);
        return t;
    }

    bool has_function(std::string_view name) const override { return _own.has_function(name); }
    const options_check& check_options() const override { return _own.check_options(); }

private:
    catalog_store& _store;
    memory_catalog _own;
    std::map<std::string, local_entry> _local;
    std::set<std::string> _hidden;
    // Read from the store on demand while binding (`find_table` is const for the binder).
    mutable memory_catalog _fetched;
    mutable std::map<std::string, std::string> _fetched_text;
    mutable std::map<std::string, catalog_entry> _used;
};

session::session(catalog_store& store, session_options opts)
  : _store(store)
  , _opts(std::move(opts))
  , _names(std::make_unique<layered>(store, _opts.check)) {
    _popts.parallelism = std::clamp<uint32_t>(_opts.parallelism, 1, max_parallelism);
    _base = _popts;
}

session::~session() = default;

const catalog& session::names() const { return *_names; }

parse_result<std::size_t> session::begin(std::string text) {
    auto script = parse_script(text);
    if (!script) return script.error();
    _text = std::move(text);
    _script = std::move(script).value();
    _kept.assign(_script.size(), false);
    return _script.size();
}

parse_result<step> session::execute(std::size_t index) {
    const statement& st = _script.at(index);
    if (std::holds_alternative<create_table_stmt>(st.node)) return declare(st, index);
    if (const auto* cv = std::get_if<create_view_stmt>(&st.node)) {
        return cv->materialized ? pipeline(st, index) : declare(st, index);
    }
    if (std::holds_alternative<insert_stmt>(st.node) || std::holds_alternative<explain_stmt>(st.node)) {
        return pipeline(st, index);
    }
    step out;
    if (const auto* set = std::get_if<set_stmt>(&st.node)) {
        out.kind = step_kind::setting;
        if (set->key == "pipeline.name") _next_name = set->value;
        auto applied = apply_setting(*set, st.pos, _popts, _base);
        if (!applied) return applied.error();
        // A planner option holds for the script's later pipelines, which plan again.
        if (applied.value()) _kept[index] = true;
        return out;
    }
    if (const auto* show = std::get_if<show_stmt>(&st.node)) {
        switch (show->what) {
        case show_kind::tables:
            out.kind = step_kind::show_tables;
            out.names = _names->names_of(relation_kind::table);
            return out;
        case show_kind::views:
            out.kind = step_kind::show_views;
            out.names = _names->names_of(relation_kind::view);
            return out;
        case show_kind::create_table:
        case show_kind::create_view: return show_create(*show);
        default: return out;
        }
    }
    if (const auto* d = std::get_if<drop_stmt>(&st.node); d && d->object != object_kind::materialized_view) {
        return drop(*d);
    }
    return out;
}

parse_result<step> session::declare(const statement& st, std::size_t index) {
    const auto* ct = std::get_if<create_table_stmt>(&st.node);
    const auto* cv = std::get_if<create_view_stmt>(&st.node);
    const relation_kind kind = ct ? relation_kind::table : relation_kind::view;
    const qualified_name& name = ct ? ct->name : cv->name;
    const source_pos pos = ct ? ct->pos : cv->pos;
    const bool temporary = ct ? ct->temporary : cv->temporary;
    const bool if_not_exists = ct ? ct->if_not_exists : cv->if_not_exists;
    const bool or_replace = cv && cv->or_replace;
    if (ct) {
        auto checked = table_schema_from(*ct, _opts.check);
        if (!checked) return checked.error();
    }
    catalog_entry e{name, kind, canonical_create(st)};
    if (e.definition.size() > _store.limits().max_definition_bytes) {
        return error_at(pos, name_length(name),
                        fmt::format("the definition of {} {} is {} bytes, more than the catalog keeps "
                                    "(--sql-catalog-max-definition-bytes, {})",
                                    kind_word(kind), quote_identifier(name.back()), e.definition.size(),
                                    _store.limits().max_definition_bytes));
    }
    step out;
    out.kind = ct ? step_kind::declare_table : step_kind::declare_view;
    out.name = name.back();
    const auto* mine = _names->local(name);
    const auto current = temporary ? (mine ? std::optional(mine->entry) : std::nullopt) : _names->visible(name);
    if (current) {
        if (current->kind != kind) {
            return error_at(pos, name_length(name),
                            fmt::format("{} is a {} already; drop it first (DROP {} {})", quote_identifier(name.back()),
                                        kind_word(current->kind), kind_keyword(current->kind),
                                        quote_identifier(name.back())));
        }
        if (current->definition == e.definition || (if_not_exists && !or_replace)) {
            out.existed = true;
            // The script's own copy of a stored definition is what its pipelines keep.
            if (!mine && current->definition == e.definition) {
                auto put = _names->put_local(st, std::move(e), index, temporary);
                if (!put) return put.error();
                _kept[index] = true;
            }
            return out;
        }
        if (!or_replace) {
            return error_at(pos, name_length(name),
                            fmt::format("{} {} exists already with another definition; drop it first (DROP {} {}) or "
                                        "keep the one there is (CREATE {} IF NOT EXISTS {} …)",
                                        kind_word(kind), quote_identifier(name.back()), kind_keyword(kind),
                                        quote_identifier(name.back()), kind_keyword(kind),
                                        quote_identifier(name.back())));
        }
        out.existed = true;
        if (mine) _kept[mine->index] = false;
    } else if (!temporary) {
        // What the catalog would hold after the session's changes so far (`commit` checks again).
        std::size_t creates = 0, drops = 0;
        for (const auto& c : _changes) {
            if (c.what == catalog_change::op::create) ++creates;
            if (c.what == catalog_change::op::drop) ++drops;
        }
        const auto after = _store.size() + creates - std::min(drops, _store.size() + creates);
        if (after >= _store.limits().max_entries) {
            return error_at(pos, name_length(name),
                            fmt::format("the catalog holds {} tables and views, the most it may "
                                        "(--sql-catalog-max-entries); drop one first",
                                        after));
        }
    }
    if (!temporary) {
        _changes.push_back(catalog_change{current ? catalog_change::op::replace : catalog_change::op::create, e, pos});
        _names->unhide(name);
    }
    auto put = _names->put_local(st, std::move(e), index, temporary);
    if (!put) return put.error();
    _kept[index] = true;
    return out;
}

parse_result<step> session::drop(const drop_stmt& d) {
    const relation_kind kind = d.object == object_kind::view ? relation_kind::view : relation_kind::table;
    const auto* mine = _names->local(d.name);
    const auto current = d.temporary ? (mine ? std::optional(mine->entry) : std::nullopt) : _names->visible(d.name);
    step out;
    out.kind = step_kind::drop;
    out.name = d.name.empty() ? std::string() : d.name.back();
    if (!current) {
        if (d.if_exists) return out;
        return error_at(d.name_pos, name_length(d.name),
                        fmt::format("{} {} does not exist", kind_word(kind), quote_identifier(out.name)));
    }
    if (current->kind != kind) {
        return error_at(d.name_pos, name_length(d.name),
                        fmt::format("{} is a {}; drop it with DROP {} {}", quote_identifier(out.name),
                                    kind_word(current->kind), kind_keyword(current->kind), quote_identifier(out.name)));
    }
    out.existed = true;
    const bool temporary = mine && mine->temporary;
    if (mine) {
        _kept[mine->index] = false;
        _names->remove_local(d.name);
    }
    if (!temporary) {
        _names->hide(d.name);
        _changes.push_back(catalog_change{catalog_change::op::drop, catalog_entry{d.name, kind, {}}, d.name_pos});
    }
    return out;
}

parse_result<step> session::show_create(const show_stmt& s) {
    const relation_kind kind = s.what == show_kind::create_view ? relation_kind::view : relation_kind::table;
    const auto current = _names->visible(s.name);
    const auto shown = s.name.empty() ? std::string() : s.name.back();
    if (!current) {
        return error_at(s.name_pos, name_length(s.name),
                        fmt::format("{} {} does not exist", kind_word(kind), quote_identifier(shown)));
    }
    if (current->kind != kind) {
        return error_at(s.name_pos, name_length(s.name),
                        fmt::format("{} is a {}; SHOW CREATE {} {}", quote_identifier(shown), kind_word(current->kind),
                                    kind_keyword(current->kind), quote_identifier(shown)));
    }
    step out;
    out.kind = step_kind::show_create;
    out.name = shown;
    out.create_text = mask_secrets(current->definition);
    return out;
}

parse_result<step> session::pipeline(const statement& st, std::size_t index) {
    const auto* cv = std::get_if<create_view_stmt>(&st.node);
    const bool is_explain = std::holds_alternative<explain_stmt>(st.node);
    step out;
    std::vector<catalog_entry> used;
    if (_opts.plan_pipelines || is_explain) {
        _names->start_recording();
        // A view's own column names are checked against its query here, at the user's line.
        if (cv) {
            auto bound = binder(*_names).bind(st);
            if (!bound) return bound.error();
        }
        auto plan = cv ? explain(statement{query_stmt{cv->body}, st.pos}, *_names, _popts)
                       : explain(st, *_names, _popts);
        if (!plan) return plan.error();
        out.plan = std::move(plan).value();
        used = _names->recorded();
    }
    if (is_explain) {
        out.kind = step_kind::explain;
        return out;
    }
    out.kind = step_kind::start_pipeline;
    if (cv) out.name = cv->name.back();
    auto kept = _kept;
    kept[index] = true;
    out.pipeline.script = keep_statements(_text, _script, kept, index);
    out.pipeline.catalog = catalog_text(used);
    // A PARALLELISM hint sets this statement's instances; SET sets the script's.
    out.pipeline.parallelism = parallelism_hint(st).value_or(_popts.parallelism);
    out.pipeline.name = std::exchange(_next_name, {});
    out.pipeline.plan = out.plan;
    return out;
}

parse_result<bool> session::commit() {
    if (_changes.empty()) return true;
    auto changes = std::exchange(_changes, {});
    return _store.apply(changes);
}

} // namespace runnel::sql
