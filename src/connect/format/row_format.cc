#include "connect/format/row_format.h"

#include <cmath>

#include <fmt/format.h>

#include "base/text.h"

namespace runnel::connect {
namespace {

using text::append_json_string;

void append_value(std::string& out, const engine::column& col, engine::data_type t, std::size_t row) {
    if (col.is_null(row)) {
        out += "null";
        return;
    }
    switch (t.id) {
    case engine::type_id::boolean: out += col.bool_at(row) ? "true" : "false"; break;
    case engine::type_id::int64: out += std::to_string(col.int64_at(row)); break;
    case engine::type_id::timestamp:
        append_json_string(out, engine::format_timestamp(col.int64_at(row), t.unit));
        break;
    case engine::type_id::float64: {
        double v = col.float64_at(row);
        if (std::isfinite(v)) out += fmt::format("{}", v);
        else out += "null";
        break;
    }
    case engine::type_id::string: append_json_string(out, col.string_at(row)); break;
    }
}

void append_csv_value(std::string& out, const engine::column& col, engine::data_type t, std::size_t row) {
    if (col.is_null(row)) return; // NULL: an empty field
    switch (t.id) {
    case engine::type_id::boolean: out += col.bool_at(row) ? "true" : "false"; break;
    case engine::type_id::int64: out += std::to_string(col.int64_at(row)); break;
    case engine::type_id::timestamp: out += engine::format_timestamp(col.int64_at(row), t.unit); break;
    case engine::type_id::float64: {
        const double v = col.float64_at(row);
        if (std::isfinite(v)) out += fmt::format("{}", v);
        break;
    }
    case engine::type_id::string: {
        auto s = col.string_at(row);
        // Quoted when it could be misread: empty (else NULL), separators, quotes, line ends,
        // or edge spaces (a reader trims unquoted non-string fields).
        const bool quote = s.empty() || s.find_first_of(",\"\r\n") != std::string_view::npos || s.front() == ' ' ||
                           s.back() == ' ';
        if (!quote) {
            out += s;
            break;
        }
        out += '"';
        for (char c : s) {
            if (c == '"') out += '"';
            out += c;
        }
        out += '"';
        break;
    }
    }
}
} // namespace

engine::schema_ptr record_schema() {
    static const auto s = engine::make_schema({{"key", engine::data_type::string()},
                                                {"value", engine::data_type::string()},
                                                {"partition", engine::data_type::int64(), false},
                                                {"offset", engine::data_type::int64(), false},
                                                {"timestamp", engine::data_type::timestamp(), false}});
    return s;
}

std::string row_to_json(const engine::batch& b, std::size_t row) {
    std::string out = "{";
    const auto& fields = b.schema_of()->fields();
    // ROW columns (a flag field followed by `row.field` fields) become nested objects.
    thread_local engine::schema_ptr layout_of;
    thread_local engine::row_layout layout;
    if (layout_of != b.schema_of()) {
        layout_of = b.schema_of();
        layout = engine::row_layout::of(*layout_of);
    }
    std::vector<int> open; // the ROWs whose objects are open, innermost last
    bool first = true;
    for (std::size_t c = 0; c < b.num_columns(); ++c) {
        int parent = layout.nested ? layout.parent[c] : -1;
        if (layout.nested) {
            // Inside a NULL ROW (written as null): nothing of its fields.
            bool skipped = false;
            for (int a = parent; a >= 0; a = layout.parent[std::size_t(a)]) {
                if (b.col(std::size_t(a)).is_null(row)) skipped = true;
            }
            if (skipped) continue;
            while (!open.empty() && open.back() != parent) {
                out += '}';
                open.pop_back();
            }
        }
        if (!first) out += ',';
        first = false;
        const auto& col = b.col(c);
        const std::string& name = layout.nested ? layout.key[c] : fields[c].name;
        if (layout.nested && layout.is_row[c] && !col.is_null(row)) {
            append_json_string(out, name);
            out += ":{";
            open.push_back(int(c));
            first = true;
            continue;
        }
        if (fields[c].type.id == engine::type_id::string && !col.is_null(row) && !text::valid_utf8(col.string_at(row))) {
            append_json_string(out, name + "_base64");
            out += ':';
            append_json_string(out, text::base64_encode(col.string_at(row)));
            continue;
        }
        append_json_string(out, name);
        out += ':';
        append_value(out, col, fields[c].type, row);
    }
    for (std::size_t i = 0; i < open.size(); ++i) out += '}';
    out += '}';
    return out;
}

std::string row_key(const engine::batch& b, std::size_t row, const std::vector<std::size_t>& key_cols) {
    std::string key;
    for (std::size_t i = 0; i < key_cols.size(); ++i) {
        if (i > 0) key += '|';
        const auto v = b.col(key_cols[i]).value_at(row);
        if (v.is_null()) continue;
        if (v.type.id == engine::type_id::string) key += std::get<std::string>(v.v);
        else if (v.type.id == engine::type_id::timestamp) key += engine::format_timestamp(std::get<int64_t>(v.v), v.type.unit);
        else key += v.to_string();
    }
    return key;
}

void append_row_csv(std::string& out, const engine::batch& b, std::size_t row) {
    const auto& fields = b.schema_of()->fields();
    for (std::size_t c = 0; c < b.num_columns(); ++c) {
        if (c > 0) out += ',';
        append_csv_value(out, b.col(c), fields[c].type, row);
    }
}

std::string row_to_csv(const engine::batch& b, std::size_t row) {
    std::string out;
    append_row_csv(out, b, row);
    return out;
}

} // namespace runnel::connect
