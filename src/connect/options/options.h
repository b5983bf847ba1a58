#pragma once

// The connectors a table names with 'connector' = '…' and the options each one reads, declared
// once: CREATE TABLE checks a table's options against them (an unknown or misspelled option is
// refused, naming the closest known one), the job runner reads its defaults from them, and
// docs/sql.md lists them.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace runnel::connect {

/// What values an option takes.
enum class option_type {
    text,     ///< any text
    integer,  ///< a whole number
    number,   ///< a whole or decimal number
    boolean,  ///< true or false (any case)
    duration, ///< "500 ms", "5 s", "2 min", "1 h", "1 d" or plain milliseconds (see `duration_ms`)
    choice,   ///< one of `option_spec::choices` (any case)
};

/// One option a connector reads.
struct option_spec {
    std::string name; ///< the key; a key ending in '.' is a prefix ("properties.")
    option_type type = option_type::text;
    std::vector<std::string> choices; ///< for `choice`, in lower case
    bool required = false;
    std::string default_value; ///< as a user writes it; empty when there is none
    std::string description;

    bool is_prefix() const noexcept { return !name.empty() && name.back() == '.'; }
};

/// A connector: its identifier (and other names it answers to), whether tables of it can be
/// read and written, and every option it reads.
struct connector_spec {
    std::string id;
    std::vector<std::string> aliases;
    bool source = false;
    bool sink = false;
    std::vector<option_spec> options;
    std::string description;

    /// The option called `key` (or the prefix it starts with), or null.
    const option_spec* option(std::string_view key) const noexcept;
};

/// What is wrong with a table's options: the index of the option at fault in the list checked
/// (nullopt when the fault is the table's, such as a required option missing) and the message.
struct option_problem {
    std::optional<std::size_t> index;
    std::string message;
};

/// Options as a table holds them, in the order written.
using option_list = std::span<const std::pair<std::string, std::string>>;

/// The connectors known to this process: Runnel's own, plus any a test adds before it plans.
/// Read by every thread that plans SQL; `add` is for start-up (tests) only.
class connector_registry {
public:
    /// The process's registry, holding Runnel's connectors.
    static connector_registry& global();

    void add(connector_spec spec);
    /// The connector called `id` (ignoring case, aliases included), or null.
    const connector_spec* find(std::string_view id) const noexcept;
    const std::vector<connector_spec>& all() const noexcept { return _specs; }

    /// Checks the options of table `table`: a named connector must exist, every option must be
    /// one it reads with a value of the option's type, and its required options must be
    /// there. A table without 'connector' is not checked here (it cannot be read or written,
    /// which planning says).
    std::optional<option_problem> check(std::string_view table, option_list options) const;

private:
    std::vector<connector_spec> _specs;
};

/// Options every connector reads.
inline constexpr std::string_view connector_option = "connector";
inline constexpr std::string_view idle_timeout_option = "scan.watermark.idle-timeout";

/// True for the options the job reads for every table whatever its connector ('connector',
/// the idle timeout), as opposed to the connector's own.
bool common_option(std::string_view key) noexcept;

/// A duration option's value in milliseconds: "500 ms", "5 s", "2 min", "1 h", "1 d" or plain
/// milliseconds; nullopt when it is none of these (or too large to count).
std::optional<int64_t> duration_ms(std::string_view text);

} // namespace runnel::connect
