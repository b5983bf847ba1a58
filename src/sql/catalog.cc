#include "sql/catalog.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

#include "sql/parser.h"

namespace runnel::sql {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string key_of(const qualified_name& n) {
    std::string k;
    for (const auto& part : n) {
        k += part;
        k += '\0';
    }
    return k;
}

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
        if (iequals(columns[i].name, name)) {
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
    auto k = key_of(t.name);
    _tables[k] = std::make_unique<table_schema>(std::move(t));
}

bool memory_catalog::remove(const qualified_name& name) { return _tables.erase(key_of(name)) > 0; }

void memory_catalog::add_function(std::string name) { _functions.push_back(std::move(name)); }

const table_schema* memory_catalog::find_table(const qualified_name& name) const {
    auto it = _tables.find(key_of(name));
    return it == _tables.end() ? nullptr : it->second.get();
}

bool memory_catalog::has_function(std::string_view name) const {
    return std::any_of(_functions.begin(), _functions.end(),
                       [&](const std::string& f) { return iequals(f, name); });
}

parse_result<table_schema> table_schema_from(const create_table_stmt& t) {
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
    for (const auto& [k, v] : t.options) {
        if (!keys.insert(k).second) {
            return at(source_pos{}, fmt::format("option {} is given twice in WITH (...)", quote_string(k)));
        }
    }
    s.options = t.options;
    return s;
}

parse_result<bool> declare(const statement& s, memory_catalog& cat) {
    if (const auto* ct = std::get_if<create_table_stmt>(&s.node)) {
        auto t = table_schema_from(*ct);
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

} // namespace runnel::sql
