// Feeds arbitrary text to the SQL parser and binder. Whatever parses must bind or fail with
// an error inside the input, and must print to text that parses back
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
    sql::memory_catalog catalog;
    for (const sql::statement& s : script.value()) {
        // The binder must answer every parsed statement with a schema or an error.
        sql::binder b(catalog);
        auto bound = b.bind(s);
        if (!bound) {
            check(bound.error().offset <= size);
            (void)sql::format_error(text, bound.error());
        } else if (auto* t = std::get_if<sql::create_table_stmt>(&s.node)) {
            auto schema = sql::table_schema_from(*t);
            check(schema.has_value());
            catalog.put(std::move(schema).value());
        } else if (auto* v = std::get_if<sql::create_view_stmt>(&s.node)) {
            sql::table_schema view;
            view.name = v->name;
            view.kind = sql::relation_kind::view;
            view.definition = sql::box<sql::query>(v->body);
            catalog.put(std::move(view));
        }

        std::string printed = sql::to_string(s);
        auto again = sql::parse_statement(printed);
        // Printed parentheses add nesting, so a statement at the depth limit may exceed it.
        if (!again && again.error().code == sql::errc::too_complex) {
            continue;
        }
        check(again.has_value());
        check(again.value() == s);
        check(sql::to_string(again.value()) == printed);
    }
    return 0;
}
