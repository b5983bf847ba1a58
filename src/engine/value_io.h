#pragma once

#include "engine/batch.h"
#include "engine/state_io.h"

namespace runnel::engine {

/// Writes a value in snapshot form: a null flag, then the value as its type stores it.
inline void write_value(state_writer& w, const value& v) {
    w.u8(v.is_null() ? 0 : 1);
    if (v.is_null()) return;
    switch (v.type.id) {
    case type_id::boolean: w.u8(std::get<bool>(v.v) ? 1 : 0); break;
    case type_id::int64:
    case type_id::timestamp: w.i64(std::get<int64_t>(v.v)); break;
    case type_id::float64: w.f64(std::get<double>(v.v)); break;
    case type_id::string: w.str(std::get<std::string>(v.v)); break;
    }
}

/// Reads what `write_value` wrote for a value of type `t` (reader failures leave `r` not ok).
inline value read_value(state_reader& r, data_type t) {
    if (r.u8() == 0) return value::null(t);
    switch (t.id) {
    case type_id::boolean: return {t, r.u8() != 0};
    case type_id::int64:
    case type_id::timestamp: return {t, r.i64()};
    case type_id::float64: return {t, r.f64()};
    case type_id::string: return {t, std::string(r.str())};
    }
    return value::null(t);
}

} // namespace runnel::engine
