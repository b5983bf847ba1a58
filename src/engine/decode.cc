#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <simdjson.h>

#include "engine/operators.h"

namespace runnel::engine {

namespace od = simdjson::ondemand;

struct decode_stage::parser {
    od::parser json;
    std::string buf; // the record plus simdjson's padding
    std::vector<column> cols;
    std::vector<uint8_t> seen;
    std::vector<std::string_view> fields; // CSV
    std::string unquoted;
    row_layout layout; // JSON objects inside the record fill ROW columns

    /// Decodes the members of `obj` into the columns of the fields inside ROW `parent` (-1:
    /// the top level). False with `why` set when a member does not fit. Recurses only into
    /// ROW fields, so as deep as the schema nests, whatever the record holds.
    bool decode_object(od::object& obj, int parent, const schema& os, std::string& why);
};

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

/// Parses text for a column of type `t` (CSV fields, JSON strings for non-string columns).
bool push_text(column& c, std::string_view s, std::string& why, const field& f) {
    switch (f.type.id) {
    case type_id::string: c.push_string(s); return true;
    case type_id::boolean:
        if (s == "true" || s == "TRUE" || s == "1") { c.push_bool(true); return true; }
        if (s == "false" || s == "FALSE" || s == "0") { c.push_bool(false); return true; }
        break;
    case type_id::int64: {
        char* end = nullptr;
        std::string z(s);
        errno = 0;
        long long v = std::strtoll(z.c_str(), &end, 10);
        if (!z.empty() && *end == '\0' && errno == 0) { c.push_int64(v); return true; }
        break;
    }
    case type_id::float64: {
        std::string z(s);
        char* end = nullptr;
        double v = std::strtod(z.c_str(), &end);
        if (!z.empty() && *end == '\0') { c.push_float64(v); return true; }
        break;
    }
    case type_id::timestamp: {
        std::string z(s);
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(z.c_str(), &end, 10);
        if (!z.empty() && *end == '\0' && errno == 0) { c.push_int64(v); return true; }
        if (auto t = parse_timestamp(s, f.type.unit)) { c.push_int64(*t); return true; }
        break;
    }
    }
    why = fmt::format("field '{}': '{}' is not a valid {}", f.name, s.substr(0, 64), f.type.name());
    return false;
}

const char* json_type_name(od::json_type t) {
    switch (t) {
    case od::json_type::array: return "an array";
    case od::json_type::object: return "an object";
    case od::json_type::number: return "a number";
    case od::json_type::string: return "a string";
    case od::json_type::boolean: return "a boolean";
    case od::json_type::null: return "null";
    }
    return "?";
}

/// The field of `os` named `key` inside ROW `parent` (-1: the top), if any.
std::optional<size_t> field_of(const schema& os, const row_layout& l, int parent, std::string_view key) {
    if (!l.nested) return os.index_of(key);
    for (size_t i = 0; i < os.size(); ++i) {
        if (l.parent[i] == parent && l.key[i] == key) return i;
    }
    return std::nullopt;
}

} // namespace

/// Decodes the members of `obj` into the columns of the fields inside ROW `parent` (-1: the
/// top level). False with `why` set when a member does not fit.
bool decode_stage::parser::decode_object(od::object& obj, int parent, const schema& os, std::string& why) {
    parser& p = *this;
    const row_layout& l = p.layout;
    simdjson::error_code err;
    for (auto fr : obj) {
        od::field fld;
        std::string_view key;
        if ((err = std::move(fr).get(fld)) || (err = fld.unescaped_key().get(key))) {
            why = fmt::format("invalid JSON: {}", simdjson::error_message(err));
            return false;
        }
        auto idx = field_of(os, l, parent, key);
        if (!idx) continue; // unknown fields are skipped
        const field& f = os.at(*idx);
        if (p.seen[*idx]) {
            why = fmt::format("field '{}' appears twice", f.name);
            return false;
        }
        od::value v = fld.value();
        od::json_type jt;
        if ((err = v.type().get(jt))) {
            why = fmt::format("field '{}': invalid JSON: {}", f.name, simdjson::error_message(err));
            return false;
        }
        column& c = p.cols[*idx];
        auto mismatch = [&]() {
            why = fmt::format("field '{}': expected {}, got {}", f.name, l.nested && l.is_row[*idx] ? "an object" : f.type.name(),
                              json_type_name(jt));
            return false;
        };
        if (jt == od::json_type::null) {
            if (!f.nullable) { why = fmt::format("field '{}' is null but not nullable", f.name); return false; }
            c.push_null(); // a NULL ROW: its fields stay unseen and become NULL
        } else if (l.nested && l.is_row[*idx]) {
            od::object sub;
            if (jt != od::json_type::object || (err = v.get_object().get(sub))) return mismatch();
            c.push_bool(true);
            p.seen[*idx] = 1;
            if (!decode_object(sub, int(*idx), os, why)) return false;
        } else if (f.type.id == type_id::boolean) {
            bool bv;
            if (jt != od::json_type::boolean || v.get_bool().get(bv)) return mismatch();
            c.push_bool(bv);
        } else if (f.type.is_integral() && jt == od::json_type::number) {
            int64_t iv;
            if ((err = v.get_int64().get(iv))) {
                why = fmt::format("field '{}': expected {}, got a number that is not one ({})", f.name,
                                  f.type.name(), simdjson::error_message(err));
                return false;
            }
            c.push_int64(iv);
        } else if (f.type.id == type_id::float64 && jt == od::json_type::number) {
            double dv;
            if ((err = v.get_double().get(dv))) return mismatch();
            c.push_float64(dv);
        } else if (jt == od::json_type::string && f.type.id != type_id::boolean) {
            std::string_view sv;
            if ((err = v.get_string().get(sv))) {
                why = fmt::format("field '{}': invalid string: {}", f.name, simdjson::error_message(err));
                return false;
            }
            if (f.type.id == type_id::string) c.push_string(sv);
            else if (!push_text(c, sv, why, f)) return false;
        } else {
            return mismatch();
        }
        p.seen[*idx] = 1;
    }
    return true;
}

decode_stage::~decode_stage() = default;

schema_ptr decode_stage::dead_letter_schema() {
    static schema_ptr s = make_schema({{"payload", data_type::string(), true}, {"reason", data_type::string(), false}});
    return s;
}

result<std::unique_ptr<decode_stage>> decode_stage::make(schema_ptr input, std::string value_column, decode_format f,
                                                         schema_ptr output) {
    std::unique_ptr<decode_stage> s(new decode_stage());
    auto i = input->index_of(value_column);
    if (!i) {
        return fail(errc::unknown_column, fmt::format("decode: unknown column '{}' in {}", value_column, input->to_string()));
    }
    if (input->at(*i).type.id != type_id::string) {
        return fail(errc::type_mismatch, fmt::format("decode: column '{}' is {}; records must be a string column",
                                                     value_column, input->at(*i).type.name()));
    }
    if (!output || output->size() == 0) return fail(errc::invalid_argument, "decode: empty output schema");
    if (f == decode_format::raw && (output->size() != 1 || output->at(0).type.id != type_id::string)) {
        return fail(errc::invalid_argument, "decode raw: the output schema must be one string column");
    }
    s->_value = *i;
    s->_format = f;
    s->_out = std::move(output);
    s->_dead = dead_letter_schema();
    s->_parser = std::make_unique<parser>();
    s->_parser->layout = row_layout::of(*s->_out);
    return s;
}

void decode_stage::on_batch(size_t, batch b, stage_output& out) {
    metrics().rows_in += b.num_rows();
    const column& in = b.col(_value);
    const schema& os = *_out;
    parser& p = *_parser;
    batch good(_out);
    good.set_source_partition(b.source_partition());
    batch dead(_dead);
    std::string why;
    for (size_t r = 0; r < b.num_rows(); ++r) {
        if (in.is_null(r)) {
            dead.append_row({value::null(data_type::string()), value::of("record is NULL")});
            continue;
        }
        std::string_view rec = in.string_at(r);
        why.clear();
        // Decode into fresh per-record columns, then copy, so a failure halfway leaves nothing.
        p.cols.clear();
        for (const auto& f : os.fields()) p.cols.emplace_back(f.type);
        bool ok = true;
        if (_format == decode_format::raw) {
            p.cols[0].push_string(rec);
        } else if (_format == decode_format::csv) {
            // RFC 4180: fields separated by commas; a quoted field may hold commas and "" quotes.
            std::string_view line = rec;
            if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            size_t pos = 0, col = 0;
            while (ok) {
                if (col >= os.size()) {
                    why = fmt::format("more than {} fields", os.size());
                    ok = false;
                    break;
                }
                const field& f = os.at(col);
                bool quoted = pos < line.size() && line[pos] == '"';
                std::string_view text;
                if (quoted) {
                    p.unquoted.clear();
                    size_t i = pos + 1;
                    bool closed = false;
                    while (i < line.size()) {
                        if (line[i] == '"') {
                            if (i + 1 < line.size() && line[i + 1] == '"') { p.unquoted.push_back('"'); i += 2; continue; }
                            closed = true;
                            ++i;
                            break;
                        }
                        p.unquoted.push_back(line[i++]);
                    }
                    if (!closed) { why = fmt::format("field '{}': unterminated quote", f.name); ok = false; break; }
                    if (i < line.size() && line[i] != ',') { why = fmt::format("field '{}': text after closing quote", f.name); ok = false; break; }
                    text = p.unquoted;
                    pos = i;
                } else {
                    size_t e = line.find(',', pos);
                    if (e == std::string_view::npos) e = line.size();
                    text = line.substr(pos, e - pos);
                    pos = e;
                }
                if (!quoted && text.empty()) {
                    if (!f.nullable) { why = fmt::format("field '{}' is empty but not nullable", f.name); ok = false; break; }
                    p.cols[col].push_null();
                } else if (!push_text(p.cols[col], f.type.id == type_id::string ? text : trim(text), why, f)) {
                    ok = false;
                    break;
                }
                ++col;
                if (pos >= line.size()) break;
                ++pos; // the comma
                if (pos == line.size()) {
                    // A trailing comma: one more, empty field.
                    if (col >= os.size()) { why = fmt::format("more than {} fields", os.size()); ok = false; break; }
                    if (!os.at(col).nullable) { why = fmt::format("field '{}' is empty but not nullable", os.at(col).name); ok = false; break; }
                    p.cols[col].push_null();
                    ++col;
                    break;
                }
            }
            if (ok && col != os.size()) {
                why = fmt::format("{} fields, expected {}", col, os.size());
                ok = false;
            }
        } else {
            std::string_view t = trim(rec);
            if (t.empty() || t.front() != '{' || t.back() != '}') {
                why = "not a JSON object";
                ok = false;
            } else {
                p.buf.assign(t);
                p.buf.append(simdjson::SIMDJSON_PADDING, '\0');
                p.seen.assign(os.size(), 0);
                od::document doc;
                od::object obj;
                auto err = p.json.iterate(p.buf.data(), t.size(), p.buf.size()).get(doc);
                if (!err) err = doc.get_object().get(obj);
                if (err) {
                    why = fmt::format("invalid JSON: {}", simdjson::error_message(err));
                    ok = false;
                }
                if (ok) ok = p.decode_object(obj, -1, os, why);
                for (size_t k = 0; ok && k < os.size(); ++k) {
                    if (p.seen[k]) continue;
                    if (!os.at(k).nullable) {
                        why = fmt::format("field '{}' is missing", os.at(k).name);
                        ok = false;
                    } else {
                        p.cols[k].push_null();
                    }
                }
            }
        }
        if (!ok) {
            ++metrics().dead_letters;
            dead.mutable_col(0).push_string(rec);
            dead.mutable_col(1).push_string(why);
            dead.seal();
            continue;
        }
        for (size_t k = 0; k < os.size(); ++k) good.mutable_col(k).push_from(p.cols[k], 0);
    }
    good.seal();
    dead.seal();
    metrics().rows_out += good.num_rows();
    out.emit(std::move(good));
    out.emit(std::move(dead), 1);
}

} // namespace runnel::engine
