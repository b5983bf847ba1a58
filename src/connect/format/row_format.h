#pragma once

// How rows are written as records, in one place for every connector: JSON objects (the embedded
// log's sinks, Kafka clusters, webhooks, files, views), CSV lines (files), the key of an
// upserting sink or a view, and the schema of raw records as sources read them (decoding them
// into typed rows is the engine's `decode` stage).

#include <cstddef>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace runnel::connect {

/// The columns of a raw record as the topic sources (the embedded log's and a Kafka cluster's)
/// give them: `key` and `value` (strings, NULL when absent), `partition`, `offset` and
/// `timestamp`. The engine's `decode` turns `value` into the table's columns.
engine::schema_ptr record_schema();

/// One row of `b` as a JSON object (column names as fields; a TIMESTAMP as SQL shows it,
/// `yyyy-MM-dd HH:mm:ss.SSS` in UTC, as Flink's JSON format writes it). A string that is not UTF-8 (the payload
/// of a dead letter, say) comes base64-encoded as `<column>_base64`, so the row is always JSON.
/// A ROW column (`engine::row_layout`) is a nested object, or null.
std::string row_to_json(const engine::batch& b, std::size_t row);

/// Appends row `row` of `b` to `out` as a CSV line without its line end (RFC 4180 quoting
/// where a value could be misread; NULL as an empty field, an empty string quoted).
void append_row_csv(std::string& out, const engine::batch& b, std::size_t row);

/// One row of `b` as a CSV line without its line end (`append_row_csv`).
std::string row_to_csv(const engine::batch& b, std::size_t row);

/// The key of row `row` of `b`: the values of columns `key_cols` as the row shows them (text as
/// it is, a timestamp as `yyyy-MM-dd HH:mm:ss.SSS`, a null as nothing) joined with '|'. The
/// record key of an upserting sink and a view's key, so a key can be written from the values a
/// user sees.
std::string row_key(const engine::batch& b, std::size_t row, const std::vector<std::size_t>& key_cols);

} // namespace runnel::connect
