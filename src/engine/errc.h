#pragma once

#include <string>
#include <utility>

#include "base/base.h"

namespace runnel::engine {

enum class errc {
    success = 0,
    unknown_column,   ///< an expression or operator names a column the schema lacks
    type_mismatch,    ///< operands or arguments of the wrong type
    invalid_argument, ///< a window size, lateness, aggregate or option out of range
    invalid_pipeline, ///< a stage wired wrongly (no source, two sinks on one port, …)
    corrupt_state,    ///< a snapshot that cannot be restored
    decode_failed,    ///< an input record that cannot be decoded (goes to the dead letters)
    state_failed,     ///< a stage's state store failed (a disk error under RocksDB)
};

const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

/// A failure with a human-readable message that names the column, type or value involved
/// ("column 'price' is string; '+' needs numbers"). Plain value; any thread.
struct error {
    errc code{};
    std::string message;

    error() = default;
    error(errc c, std::string m)
      : code(c)
      , message(std::move(m)) {}
};

/// The engine's result: like `runnel::result`, but failures carry a message for the user
/// (SQL reports it at a position). Reading the value of a failed result terminates.
template <typename T>
using result = outcome::basic_result<T, error, outcome::policy::terminate>;

inline auto fail(errc c, std::string message) {
    return outcome::failure(error(c, std::move(message)));
}

} // namespace runnel::engine

RUNNEL_ERRC_REGISTER(runnel::engine::errc, "engine");
