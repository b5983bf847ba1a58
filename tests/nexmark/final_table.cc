#include "final_table.h"

#include <fmt/format.h>

namespace runnel::nexmark_check {

namespace en = runnel::engine;

namespace {

std::string csv_field(std::string_view s) {
    bool quote = s.empty() || s == "\\N" || s.find_first_of(",\"\r\n") != std::string_view::npos;
    if (!quote) {
        return std::string(s);
    }
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') {
            out += '"';
        }
        out += c;
    }
    return out + "\"";
}

} // namespace

std::string csv_value(const en::value& v) {
    if (v.is_null()) {
        return "\\N";
    }
    if (const auto* s = std::get_if<std::string>(&v.v)) {
        return csv_field(*s);
    }
    if (const auto* d = std::get_if<double>(&v.v)) {
        return fmt::format("{}", *d);
    }
    if (const auto* b = std::get_if<bool>(&v.v)) {
        return *b ? "1" : "0";
    }
    int64_t i = std::get<int64_t>(v.v);
    if (v.type.id == en::type_id::timestamp && v.type.unit == en::time_unit::micros) {
        i /= 1000;
    }
    return fmt::format("{}", i);
}

const char* type_name(en::data_type t) {
    switch (t.id) {
    case en::type_id::boolean:
        return "boolean";
    case en::type_id::int64:
        return "int64";
    case en::type_id::float64:
        return "float64";
    case en::type_id::string:
        return "string";
    case en::type_id::timestamp:
        return "timestamp";
    }
    return "?";
}

std::string csv_row(const std::vector<en::value>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
        line += (i ? "," : "") + csv_value(row[i]);
    }
    return line;
}

void final_table::apply(const en::batch& b) {
    for (std::size_t i = 0; i < b.num_rows(); ++i) {
        auto row = b.row(i);
        auto kind = b.kind(i);
        std::string line = csv_row(row);
        bool add = kind == en::row_kind::insert || kind == en::row_kind::update_after;
        if (_key.empty()) {
            auto& n = _counts[line];
            if (add) {
                ++n;
            } else if (n > 0) {
                --n;
            } else {
                unmatched(kind, line);
            }
            if (n == 0) {
                _counts.erase(line);
            }
            continue;
        }
        std::vector<en::value> k;
        for (auto c : _key) {
            k.push_back(row[c]);
        }
        std::string id = csv_row(k);
        if (add) {
            _by_key[id] = std::move(line);
        } else if (_by_key.erase(id) == 0) {
            unmatched(kind, line);
        }
    }
    changes += b.num_rows();
}

void final_table::write(std::ostream& out) const {
    std::string header;
    for (const auto& f : _columns->fields()) {
        header += fmt::format("{}{}:{}", header.empty() ? "" : ",", f.name, type_name(f.type));
    }
    out << header << "\n";
    for (const auto& [line, n] : _counts) {
        for (int64_t i = 0; i < n; ++i) {
            out << line << "\n";
        }
    }
    for (const auto& [id, line] : _by_key) {
        out << line << "\n";
    }
}

std::size_t final_table::size() const {
    std::size_t n = _by_key.size();
    for (const auto& [line, c] : _counts) {
        n += std::size_t(c);
    }
    return n;
}

void final_table::unmatched(en::row_kind kind, const std::string& line) {
    if (unmatched_retractions++ == 0) {
        first_unmatched = fmt::format("{} {}", en::row_kind_name(kind), line);
    }
}

} // namespace runnel::nexmark_check
