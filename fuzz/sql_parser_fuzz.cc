// Feeds arbitrary text to the SQL parser. Whatever parses must print to text that parses back
// to an equal tree and prints the same again (unless the printed parentheses push it past the
// nesting limit); every error must point inside the input and
// format without crashing. Nothing may crash, hang or read out of bounds.

#include <cstdint>
#include <string_view>

#include "sql/sql.h"

namespace {

using namespace runnel;

void check(bool cond) {
    if (!cond) {
        __builtin_trap();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto script = sql::parse_script(text);
    if (!script) {
        const sql::error& e = script.error();
        check(e.offset <= size);
        check(e.line >= 1 && e.column >= 1);
        (void)sql::format_error(text, e);
        return 0;
    }
    for (const sql::statement& s : script.value()) {
        std::string printed = sql::to_string(s);
        auto again = sql::parse_statement(printed);
        // Printed parentheses add nesting, so a statement at the depth limit may exceed it.
        if (!again && again.error().code == sql::errc::too_complex) {
            continue;
        }
        check(again.has_value());
        check(again.value() == s);
        check(sql::to_string(again.value()) == printed);
        if (auto* t = std::get_if<sql::create_table_stmt>(&s.node)) {
            (void)sql::table_schema_from(*t);
        }
    }
    return 0;
}
