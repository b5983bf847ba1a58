#include "sql/catalog.h"
#include "base/text.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

#include "sql/parser.h"

namespace runnel::sql {

std::string catalog_key(const qualified_name& name) {
    std::string k;
    for (const auto& part : name) {
        k += part;
        k += '\0';
    }
    return k;
}

namespace {

error at(source_pos pos, std::string message) {
    error e;
    e.line = pos.line;
    e.column = pos.column;
    e.offset = pos.offset;
    e.message = std::move(message);
    return e;
}

} // namespace

std::optional<std::size_t> table_schema::find_column(std::string_view name) const {
    for (std::size_t i = 0; i < columns.size(); ++i) {
        if (columns[i].name == name) {
            return i;
        }
    }
    for (std::size_t i = 0; i < columns.size(); ++i) {
        if (text::iequals(columns[i].name, name)) {
            return i;
        }
    }
    return std::nullopt;
}

std::optional<std::string> table_schema::option(std::string_view key) const {
    for (const auto& [k, v] : options) {
        if (k == key) {
            return v;
        }
    }
    return std::nullopt;
}

void memory_catalog::put(table_schema t) {
    auto k = catalog_key(t.name);
    _tables[k] = std::make_unique<table_schema>(std::move(t));
}

bool memory_catalog::remove(const qualified_name& name) { return _tables.erase(catalog_key(name)) > 0; }

void memory_catalog::add_function(std::string name) { _functions.push_back(std::move(name)); }

const table_schema* memory_catalog::find_table(const qualified_name& name) const {
    auto it = _tables.find(catalog_key(name));
    return it == _tables.end() ? nullptr : it->second.get();
}

bool memory_catalog::has_function(std::string_view name) const {
    return std::any_of(_functions.begin(), _functions.end(),
                       [&](const std::string& f) { return text::iequals(f, name); });
}

namespace {

/// Where option `i` of `t` is written (the statement's start when the parser did not say).
source_pos option_at(const create_table_stmt& t, std::size_t i) {
    return i < t.option_pos.size() ? t.option_pos[i] : t.pos;
}

} // namespace

parse_result<table_schema> table_schema_from(const create_table_stmt& t, const options_check& check) {
    table_schema s;
    s.name = t.name;
    s.kind = relation_kind::table;
    for (const column_def& c : t.columns) {
        for (const column_schema& prev : s.columns) {
            if (prev.name == c.name) {
                return at(c.pos, fmt::format("column {} is declared twice in table {}",
                                             quote_identifier(c.name),
                                             quote_identifier(t.name.back())));
            }
        }
        column_schema cs;
        cs.name = c.name;
        cs.type = c.computed ? data_type{} : c.type;
        cs.computed = c.computed;
        cs.metadata = c.metadata;
        cs.is_virtual = c.is_virtual;
        s.columns.push_back(std::move(cs));
    }
    if (t.watermarks.size() > 1) {
        return at(t.watermarks[1].pos, "a table has at most one WATERMARK");
    }
    for (const watermark_def& w : t.watermarks) {
        auto i = s.find_column(w.column);
        if (!i || s.columns[*i].name != w.column) {
            return at(w.pos, fmt::format("WATERMARK FOR {}: table {} has no column {}",
                                         quote_identifier(w.column),
                                         quote_identifier(t.name.back()),
                                         quote_identifier(w.column)));
        }
        const column_schema& c = s.columns[*i];
        if (!c.computed && c.type.kind != type_kind::timestamp &&
            c.type.kind != type_kind::timestamp_ltz) {
            return at(w.pos, fmt::format("WATERMARK FOR {}: the column is {}, but an event-time "
                                         "column must be TIMESTAMP(p) or TIMESTAMP_LTZ(p)",
                                         quote_identifier(w.column), to_string(c.type)));
        }
        s.event_time_column = w.column;
        s.watermark = box<expr>(w.strategy);
    }
    std::set<std::string> seen;
    for (const std::string& k : t.primary_key) {
        auto i = s.find_column(k);
        if (!i || s.columns[*i].name != k) {
            return at(source_pos{}, fmt::format("PRIMARY KEY column {} is not a column of table {}",
                                                quote_identifier(k), quote_identifier(t.name.back())));
        }
        if (!seen.insert(k).second) {
            return at(source_pos{}, fmt::format("PRIMARY KEY names column {} twice", quote_identifier(k)));
        }
    }
    s.primary_key = t.primary_key;
    std::set<std::string> keys;
    for (std::size_t i = 0; i < t.options.size(); ++i) {
        if (!keys.insert(t.options[i].first).second) {
            return at(option_at(t, i), fmt::format("option {} is given twice in WITH (...)", quote_string(t.options[i].first)));
        }
    }
    if (auto bad = check ? check(t.name.back(), t.options) : std::nullopt) {
        return at(bad->index ? option_at(t, *bad->index) : t.pos, std::move(bad->message));
    }
    s.options = t.options;
    return s;
}

parse_result<bool> declare(const statement& s, memory_catalog& cat) {
    if (const auto* ct = std::get_if<create_table_stmt>(&s.node)) {
        auto t = table_schema_from(*ct, cat.check_options());
        if (!t) {
            return t.error();
        }
        cat.put(std::move(t).value());
        return true;
    }
    if (const auto* cv = std::get_if<create_view_stmt>(&s.node); cv && !cv->materialized) {
        table_schema v;
        v.name = cv->name;
        v.kind = relation_kind::view;
        v.definition = box<query>(cv->body);
        cat.put(std::move(v));
        return true;
    }
    return false;
}

namespace {

std::string folded(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string call_name(const expr& e) {
    return e.kind == expr_kind::call && !e.names.empty() ? folded(e.names.back()) : std::string();
}

std::string column_name(const expr& e) {
    return e.kind == expr_kind::column && !e.names.empty() ? folded(e.names.back()) : std::string();
}

bool has_aggregate(const expr& e) {
    static const std::set<std::string> aggregates = {"count", "sum", "min", "max", "avg", "first_value", "last_value"};
    if (e.kind == expr_kind::call && !e.over && aggregates.count(call_name(e))) return true;
    return std::any_of(e.args.begin(), e.args.end(), [](const expr& a) { return has_aggregate(a); });
}

bool is_window_bound(const expr& e) {
    static const std::set<std::string> bounds = {"window_start", "window_end"};
    static const std::set<std::string> legacy = {"tumble_start", "tumble_end", "hop_start", "hop_end", "session_start",
                                                 "session_end"};
    return bounds.count(column_name(e)) || legacy.count(call_name(e));
}

} // namespace

std::vector<std::string> materialized_view_key(const query& q, const std::vector<std::string>& columns) {
    if (q.kind != query_kind::select) return columns;
    const auto& s = q.select;
    const bool positional = s.items.size() == columns.size() &&
                            std::none_of(s.items.begin(), s.items.end(),
                                         [](const select_item& i) { return i.value.kind == expr_kind::star; });
    const bool grouped = !s.group_by.empty() || std::any_of(s.items.begin(), s.items.end(), [](const select_item& i) {
        return has_aggregate(i.value);
    });
    std::vector<std::string> key;
    if (grouped) {
        for (std::size_t i = 0; i < columns.size(); ++i) {
            bool is_key = false;
            if (positional) {
                const auto& e = s.items[i].value;
                is_key = is_window_bound(e) ||
                         std::any_of(s.group_by.begin(), s.group_by.end(), [&](const expr& g) { return g == e; });
            } else {
                const auto name = folded(columns[i]);
                is_key = name == "window_start" || name == "window_end" ||
                         std::any_of(s.group_by.begin(), s.group_by.end(),
                                     [&](const expr& g) { return column_name(g) == name; });
            }
            if (is_key) key.push_back(columns[i]);
        }
        return key;
    }
    // A Top-N: an outer SELECT over a subquery that numbers rows per partition.
    if (s.from.size() == 1 && s.from[0].kind == table_ref_kind::subquery && s.from[0].subquery &&
        s.from[0].subquery->kind == query_kind::select) {
        std::set<std::string> parts;
        std::string rn;
        for (const auto& item : s.from[0].subquery->select.items) {
            if (call_name(item.value) == "row_number" && item.value.over) {
                rn = folded(item.alias);
                for (const auto& p : item.value.over->partition_by) parts.insert(column_name(p));
            }
        }
        if (!rn.empty()) {
            bool has_rn = false;
            for (const auto& c : columns) {
                const auto name = folded(c);
                if (name == rn) has_rn = true;
                if (name == rn || parts.count(name)) key.push_back(c);
            }
            if (has_rn) return key;
        }
    }
    return columns;
}

} // namespace runnel::sql
