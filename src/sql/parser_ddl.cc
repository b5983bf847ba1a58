// The statement rules of the parser: CREATE TABLE / VIEW, INSERT, DROP, SHOW, SET, STOP,
// EXPLAIN (`parser_internal.h` has the class; `parser.cc` the rules for queries and
// expressions).

#include "sql/parser_internal.h"

#include "base/text.h"

#include <fmt/format.h>

namespace runnel::sql::detail {

// ---- statements ------------------------------------------------------------------------
bool parser::at_query_start() const {
    return at_keyword("SELECT") || at_keyword("WITH") || at_keyword("VALUES") ||
           (at_symbol("(") && query_follows_paren());
}

/// After a '(' at the current token: does a query start inside (possibly behind more '(')?
bool parser::query_follows_paren() const {
    std::size_t k = _i;
    while (k < _t.size() && _t[k].is_symbol("(")) {
        ++k;
    }
    return k < _t.size() && (_t[k].is_keyword("SELECT") || _t[k].is_keyword("WITH") ||
                             _t[k].is_keyword("VALUES"));
}

parse_result<statement> parser::statement_() {
    SQL_CHECK(enter());
    depth_guard g(_depth);
    statement s;
    s.pos = cur().pos;
    if (at_keyword("CREATE")) {
        ++_i;
        const bool or_replace = accept_keyword("OR");
        if (or_replace) {
            SQL_CHECK(expect_keyword("REPLACE"));
        }
        bool temporary = accept_keyword("TEMPORARY");
        if (or_replace && at_keyword("TABLE")) {
            return fail("OR REPLACE is for VIEW and MATERIALIZED VIEW; drop a table first (DROP TABLE …)");
        }
        if (accept_keyword("TABLE")) {
            SQL_TRY(t, create_table());
            t.temporary = temporary;
            s.node = std::move(t);
        } else if (at_keyword("VIEW") || at_keyword("MATERIALIZED")) {
            bool materialized = accept_keyword("MATERIALIZED");
            SQL_CHECK(expect_keyword("VIEW"));
            SQL_TRY(v, create_view(or_replace));
            v.temporary = temporary;
            v.materialized = materialized;
            s.node = std::move(v);
        } else if (at_keyword("FUNCTION") || (at_keyword("SYSTEM") && peek().is_keyword("FUNCTION"))) {
            // Flink's form names a JVM class, which Runnel cannot load: refused at the class.
            accept_keyword("SYSTEM");
            ++_i;
            if (accept_keyword("IF")) {
                SQL_CHECK(expect_keyword("NOT"));
                SQL_CHECK(expect_keyword("EXISTS"));
            }
            SQL_TRY(fn, qualified("a function name"));
            SQL_CHECK(expect_keyword("AS"));
            if (cur().kind != token_kind::string) {
                return expected("the function's class name in quotes");
            }
            return fail(fmt::format("CREATE FUNCTION {} names the JVM class {}, which Runnel cannot load (it runs no "
                                    "Java); SHOW FUNCTIONS lists the functions it has",
                                    quote_identifier(fn.back()), quote_string(cur().text)));
        } else {
            return expected("TABLE, VIEW or MATERIALIZED VIEW after CREATE");
        }
    } else if (at_keyword("INSERT")) {
        ++_i;
        insert_stmt ins;
        if (accept_keyword("OVERWRITE")) {
            ins.overwrite = true;
            accept_keyword("INTO");
        } else {
            SQL_CHECK(expect_keyword("INTO"));
        }
        SQL_TRY(name, qualified("a table name"));
        ins.table = std::move(name);
        if (at_symbol("(") && !query_follows_paren()) {
            SQL_TRY(cols, identifier_list("a column name"));
            ins.columns = std::move(cols);
        }
        if (!at_query_start()) {
            return expected("SELECT, VALUES or WITH after INSERT INTO " +
                            quote_identifier(ins.table.back()));
        }
        SQL_TRY(q, query_());
        ins.body = std::move(q);
        s.node = std::move(ins);
    } else if (at_keyword("DROP")) {
        ++_i;
        drop_stmt d;
        d.temporary = accept_keyword("TEMPORARY");
        if (accept_keyword("TABLE")) {
            d.object = object_kind::table;
        } else if (accept_keyword("VIEW")) {
            d.object = object_kind::view;
        } else if (accept_keyword("MATERIALIZED")) {
            SQL_CHECK(expect_keyword("VIEW"));
            d.object = object_kind::materialized_view;
        } else {
            return expected("TABLE, VIEW or MATERIALIZED VIEW after DROP");
        }
        if (accept_keyword("IF")) {
            SQL_CHECK(expect_keyword("EXISTS"));
            d.if_exists = true;
        }
        d.name_pos = cur().pos;
        SQL_TRY(name, qualified("a name to drop"));
        d.name = std::move(name);
        s.node = std::move(d);
    } else if (at_keyword("SHOW")) {
        ++_i;
        show_stmt sh;
        if (accept_keyword("TABLES")) {
            sh.what = show_kind::tables;
        } else if (accept_keyword("VIEWS")) {
            sh.what = show_kind::views;
        } else if (accept_keyword("MATERIALIZED")) {
            SQL_CHECK(expect_keyword("VIEWS"));
            sh.what = show_kind::materialized_views;
        } else if (accept_keyword("JOBS")) {
            sh.what = show_kind::jobs;
        } else if (accept_keyword("FUNCTIONS")) {
            sh.what = show_kind::functions;
        } else if (accept_keyword("CREATE")) {
            if (accept_keyword("TABLE")) {
                sh.what = show_kind::create_table;
            } else if (accept_keyword("VIEW")) {
                sh.what = show_kind::create_view;
            } else {
                return expected("TABLE or VIEW after SHOW CREATE");
            }
            sh.name_pos = cur().pos;
            SQL_TRY(name, qualified(sh.what == show_kind::create_table ? "a table name" : "a view name"));
            sh.name = std::move(name);
        } else {
            return expected("TABLES, VIEWS, MATERIALIZED VIEWS, JOBS or FUNCTIONS after SHOW");
        }
        s.node = sh;
    } else if (at_keyword("STOP")) {
        ++_i;
        SQL_CHECK(expect_keyword("JOB"));
        SQL_TRY(id, string_literal("a job id in quotes, such as 'q5-1'"));
        s.node = stop_job_stmt{std::move(id)};
    } else if (at_keyword("SET") || at_keyword("RESET")) {
        set_stmt st;
        st.reset = at_keyword("RESET");
        ++_i;
        if (cur().kind == token_kind::string) {
            if (cur().text.empty()) {
                return fail("a setting's key must not be empty");
            }
            st.key = _t[_i++].text;
            if (!st.reset) {
                SQL_CHECK(expect_symbol("="));
                SQL_TRY(v, string_literal("a value in quotes"));
                st.value = std::move(v);
            }
        } else if (cur().kind != token_kind::end && !at_symbol(";")) {
            return expected(st.reset ? "a key in quotes, such as RESET 'parallelism'"
                                     : "a key in quotes, such as SET 'parallelism' = '2'");
        }
        s.node = std::move(st);
    } else if (at_keyword("EXPLAIN")) {
        ++_i;
        if (accept_keyword("PLAN")) {
            SQL_CHECK(expect_keyword("FOR"));
        }
        if (cur().kind == token_kind::end || at_symbol(";")) {
            return expected("a statement to explain");
        }
        SQL_TRY(inner, statement_());
        s.node = explain_stmt{box<statement>(std::move(inner))};
    } else if (at_query_start()) {
        SQL_TRY(q, query_());
        s.node = query_stmt{std::move(q)};
    } else {
        return expected("a statement (CREATE, INSERT, SELECT, DROP, SHOW, SET, EXPLAIN, STOP JOB)");
    }
    return s;
}

parse_result<create_table_stmt> parser::create_table() {
    create_table_stmt t;
    if (accept_keyword("IF")) {
        SQL_CHECK(expect_keyword("NOT"));
        SQL_CHECK(expect_keyword("EXISTS"));
        t.if_not_exists = true;
    }
    t.pos = cur().pos;
    SQL_TRY(name, qualified("a table name"));
    t.name = std::move(name);
    if (!at_symbol("(")) {
        return expected("'(' and the column list of " + quote_identifier(t.name.back()));
    }
    ++_i;
    do {
        if (at_symbol(")")) {
            return expected("a column, WATERMARK or PRIMARY KEY");
        }
        if (at_keyword("WATERMARK") && peek().is_keyword("FOR")) {
            watermark_def w;
            w.pos = cur().pos;
            _i += 2;
            SQL_TRY(col, identifier("the event-time column of the watermark"));
            w.column = std::move(col);
            SQL_CHECK(expect_keyword("AS"));
            SQL_TRY(e, expression());
            w.strategy = std::move(e);
            t.watermarks.push_back(std::move(w));
        } else if ((at_keyword("PRIMARY") && peek().is_keyword("KEY")) ||
                   (at_keyword("CONSTRAINT"))) {
            if (accept_keyword("CONSTRAINT")) {
                SQL_CHECK(identifier("a constraint name"));
            }
            if (!t.primary_key.empty()) {
                return fail("a table has at most one PRIMARY KEY");
            }
            SQL_CHECK(expect_keyword("PRIMARY"));
            SQL_CHECK(expect_keyword("KEY"));
            SQL_TRY(cols, identifier_list("a key column"));
            t.primary_key = std::move(cols);
            SQL_CHECK(not_enforced());
        } else {
            SQL_TRY(c, column(t));
            t.columns.push_back(std::move(c));
        }
    } while (accept_symbol(","));
    if (!accept_symbol(")")) {
        return expected("',' or ')' in the column list");
    }
    if (accept_keyword("COMMENT")) {
        SQL_TRY(c, string_literal("a comment in quotes"));
        t.comment = std::move(c);
    }
    if (accept_keyword("WITH")) {
        SQL_TRY(opts, options(t.option_pos));
        t.options = std::move(opts);
    }
    return t;
}

ok_t parser::not_enforced() {
    if (!at_keyword("NOT") || !peek().is_keyword("ENFORCED")) {
        return fail(fmt::format("expected NOT ENFORCED after PRIMARY KEY (...) but found {}: "
                                "keys are declared, not checked",
                                describe(cur())));
    }
    _i += 2;
    return true;
}

parse_result<column_def> parser::column(create_table_stmt& t) {
    column_def c;
    c.pos = cur().pos;
    SQL_TRY(name, identifier("a column name"));
    c.name = std::move(name);
    if (accept_keyword("AS")) {
        SQL_TRY(e, expression());
        c.computed = box<expr>(std::move(e));
    } else {
        if (at_symbol(",") || at_symbol(")")) {
            return fail(fmt::format("column {} needs a type, such as {} BIGINT",
                                    quote_identifier(c.name), quote_identifier(c.name)));
        }
        SQL_TRY(ty, type());
        c.type = std::move(ty);
        if (accept_keyword("METADATA")) {
            c.metadata = true;
            if (accept_keyword("FROM")) {
                SQL_TRY(key, string_literal("a metadata key in quotes"));
                c.metadata_key = std::move(key);
            }
            c.is_virtual = accept_keyword("VIRTUAL");
        }
        if (at_keyword("PRIMARY")) {
            ++_i;
            SQL_CHECK(expect_keyword("KEY"));
            if (!t.primary_key.empty()) {
                return fail("a table has at most one PRIMARY KEY");
            }
            t.primary_key = {c.name};
            SQL_CHECK(not_enforced());
        }
    }
    if (accept_keyword("COMMENT")) {
        SQL_TRY(cm, string_literal("a comment in quotes"));
        c.comment = std::move(cm);
    }
    return c;
}

/// `( 'key' = 'value', … )`; the position of each key goes to `pos`.
parse_result<table_options> parser::options(std::vector<source_pos>& pos) {
    table_options out;
    SQL_CHECK(expect_symbol("("));
    if (accept_symbol(")")) {
        return out;
    }
    do {
        pos.push_back(cur().pos);
        SQL_TRY(k, string_literal("an option key in quotes, such as 'connector'"));
        SQL_CHECK(expect_symbol("="));
        SQL_TRY(v, string_literal("an option value in quotes"));
        out.emplace_back(std::move(k), std::move(v));
    } while (accept_symbol(","));
    if (!accept_symbol(")")) {
        return expected("',' or ')' in the WITH options");
    }
    return out;
}

parse_result<create_view_stmt> parser::create_view(bool or_replace) {
    create_view_stmt v;
    v.or_replace = or_replace;
    if (or_replace && at_keyword("IF")) {
        return fail("OR REPLACE and IF NOT EXISTS contradict each other: replace the view, or keep the "
                    "one that exists");
    }
    if (accept_keyword("IF")) {
        SQL_CHECK(expect_keyword("NOT"));
        SQL_CHECK(expect_keyword("EXISTS"));
        v.if_not_exists = true;
    }
    v.pos = cur().pos;
    SQL_TRY(name, qualified("a view name"));
    v.name = std::move(name);
    if (at_symbol("(")) {
        SQL_TRY(cols, identifier_list("a column name"));
        v.columns = std::move(cols);
    }
    SQL_CHECK(expect_keyword("AS"));
    if (!at_query_start()) {
        return expected("a query (SELECT, VALUES or WITH)");
    }
    SQL_TRY(q, query_());
    v.body = std::move(q);
    return v;
}

} // namespace runnel::sql::detail
