#include <cctype>
#include <initializer_list>
#include <string_view>

#include <fmt/format.h>

#include "sql/lexer.h"
#include "sql/parser.h"

namespace runnel::sql {

namespace {

// Binding strength, mirroring the parser's levels: higher binds tighter.
constexpr int prec_or = 1;
constexpr int prec_and = 2;
constexpr int prec_not = 3;
constexpr int prec_compare = 4;
constexpr int prec_concat = 5;
constexpr int prec_add = 6;
constexpr int prec_mul = 7;
constexpr int prec_unary = 8;
constexpr int prec_primary = 9;

int precedence(const expr& e) {
    switch (e.kind) {
    case expr_kind::binary:
        if (e.text == "OR") return prec_or;
        if (e.text == "AND") return prec_and;
        if (e.text == "||") return prec_concat;
        if (e.text == "+" || e.text == "-") return prec_add;
        if (e.text == "*" || e.text == "/" || e.text == "%") return prec_mul;
        return prec_compare;
    case expr_kind::unary:
        return e.text == "NOT" ? prec_not : prec_unary;
    case expr_kind::between:
    case expr_kind::in_list:
    case expr_kind::in_query:
    case expr_kind::like:
    case expr_kind::is_null:
    case expr_kind::is_bool:
        return prec_compare;
    default:
        return prec_primary;
    }
}

const char* unit_name(time_unit u) {
    switch (u) {
    case time_unit::year:
        return "YEAR";
    case time_unit::quarter:
        return "QUARTER";
    case time_unit::month:
        return "MONTH";
    case time_unit::week:
        return "WEEK";
    case time_unit::day:
        return "DAY";
    case time_unit::hour:
        return "HOUR";
    case time_unit::minute:
        return "MINUTE";
    case time_unit::second:
        return "SECOND";
    case time_unit::millisecond:
        return "MILLISECOND";
    }
    return "SECOND";
}

bool upper_is(std::string_view s, std::initializer_list<std::string_view> words) {
    std::string u(s);
    for (char& c : u) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    for (auto w : words) {
        if (u == w) {
            return true;
        }
    }
    return false;
}

std::string name_of(const qualified_name& n) {
    std::string s;
    for (std::size_t i = 0; i < n.size(); ++i) {
        if (i > 0) {
            s += '.';
        }
        s += quote_identifier(n[i]);
    }
    return s;
}

std::string names_list(const std::vector<std::string>& names) {
    std::string s;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) {
            s += ", ";
        }
        s += quote_identifier(names[i]);
    }
    return s;
}

/// Appends SQL text for a tree to `out`, adding parentheses only where the child binds
/// looser than its place needs (so printing and parsing again gives the same tree). Lives for
/// one `to_string` call.
class printer {
public:
    std::string out;

    void expr_(const expr& e) {
        switch (e.kind) {
        case expr_kind::literal:
            literal(e);
            return;
        case expr_kind::interval:
            out += "INTERVAL ";
            out += quote_string(e.text);
            out += ' ';
            out += unit_name(e.unit);
            if (e.unit_to) {
                out += " TO ";
                out += unit_name(*e.unit_to);
            }
            return;
        case expr_kind::column:
            out += name_of(e.names);
            return;
        case expr_kind::star:
            if (!e.names.empty()) {
                out += name_of(e.names);
                out += '.';
            }
            out += '*';
            return;
        case expr_kind::unary: {
            const expr& a = e.args[0];
            if (e.text == "NOT") {
                out += "NOT ";
                child(a, precedence(a) < prec_not);
            } else {
                out += e.text;
                if (a.kind == expr_kind::unary && a.text != "NOT") {
                    out += ' '; // `- -x`: `--x` would start a comment
                    expr_(a);
                } else {
                    child(a, precedence(a) < prec_primary);
                }
            }
            return;
        }
        case expr_kind::binary: {
            int p = precedence(e);
            child(e.args[0], precedence(e.args[0]) < p);
            out += ' ';
            out += e.text;
            out += ' ';
            child(e.args[1], precedence(e.args[1]) <= p);
            return;
        }
        case expr_kind::call:
            call(e);
            return;
        case expr_kind::cast:
            out += e.flag ? "TRY_CAST(" : "CAST(";
            expr_(e.args[0]);
            out += " AS ";
            out += to_string(e.type);
            out += ')';
            return;
        case expr_kind::case_when: {
            out += "CASE";
            std::size_t i = 0;
            if (e.flag) {
                out += ' ';
                expr_(e.args[0]);
                i = 1;
            }
            std::size_t pairs_end = e.args.size() - (e.has_else ? 1 : 0);
            for (; i + 2 <= pairs_end; i += 2) {
                out += " WHEN ";
                expr_(e.args[i]);
                out += " THEN ";
                expr_(e.args[i + 1]);
            }
            if (e.has_else) {
                out += " ELSE ";
                expr_(e.args.back());
            }
            out += " END";
            return;
        }
        case expr_kind::between:
            child(e.args[0], precedence(e.args[0]) < prec_compare);
            out += e.negated ? " NOT BETWEEN " : " BETWEEN ";
            child(e.args[1], precedence(e.args[1]) < prec_concat);
            out += " AND ";
            child(e.args[2], precedence(e.args[2]) < prec_concat);
            return;
        case expr_kind::in_list:
            child(e.args[0], precedence(e.args[0]) < prec_compare);
            out += e.negated ? " NOT IN (" : " IN (";
            for (std::size_t i = 1; i < e.args.size(); ++i) {
                if (i > 1) {
                    out += ", ";
                }
                expr_(e.args[i]);
            }
            out += ')';
            return;
        case expr_kind::in_query:
            child(e.args[0], precedence(e.args[0]) < prec_compare);
            out += e.negated ? " NOT IN (" : " IN (";
            query_(*e.subquery);
            out += ')';
            return;
        case expr_kind::exists:
            out += "EXISTS (";
            query_(*e.subquery);
            out += ')';
            return;
        case expr_kind::scalar_query:
            out += '(';
            query_(*e.subquery);
            out += ')';
            return;
        case expr_kind::like:
            child(e.args[0], precedence(e.args[0]) < prec_compare);
            out += e.negated ? " NOT LIKE " : " LIKE ";
            child(e.args[1], precedence(e.args[1]) < prec_concat);
            if (e.args.size() > 2) {
                out += " ESCAPE ";
                child(e.args[2], precedence(e.args[2]) < prec_concat);
            }
            return;
        case expr_kind::is_null:
            child(e.args[0], precedence(e.args[0]) < prec_compare);
            out += e.negated ? " IS NOT NULL" : " IS NULL";
            return;
        case expr_kind::is_bool:
            child(e.args[0], precedence(e.args[0]) < prec_compare);
            out += e.negated ? " IS NOT " : " IS ";
            out += e.flag ? "TRUE" : "FALSE";
            return;
        case expr_kind::extract:
            out += "EXTRACT(";
            out += unit_name(e.unit);
            out += " FROM ";
            expr_(e.args[0]);
            out += ')';
            return;
        case expr_kind::descriptor:
            out += "DESCRIPTOR(";
            out += names_list(e.names);
            out += ')';
            return;
        case expr_kind::table_arg:
            out += "TABLE ";
            out += name_of(e.names);
            if (!e.args.empty()) {
                out += " PARTITION BY ";
                for (std::size_t i = 0; i < e.args.size(); ++i) {
                    if (i > 0) {
                        out += ", ";
                    }
                    child(e.args[i], precedence(e.args[i]) < prec_concat);
                }
            }
            return;
        case expr_kind::named_arg:
            out += quote_identifier(e.names[0]);
            out += " => ";
            expr_(e.args[0]);
            return;
        }
    }

    void child(const expr& e, bool parens) {
        if (parens) {
            out += '(';
        }
        expr_(e);
        if (parens) {
            out += ')';
        }
    }

    void literal(const expr& e) {
        switch (e.literal) {
        case literal_kind::null:
            out += "NULL";
            return;
        case literal_kind::boolean:
        case literal_kind::integer:
        case literal_kind::decimal:
            out += e.text;
            return;
        case literal_kind::string:
            out += quote_string(e.text);
            return;
        case literal_kind::date:
            out += "DATE " + quote_string(e.text);
            return;
        case literal_kind::time:
            out += "TIME " + quote_string(e.text);
            return;
        case literal_kind::timestamp:
            out += "TIMESTAMP " + quote_string(e.text);
            return;
        }
    }

    void call(const expr& e) {
        // Function names print as written unless they would not read back as a name.
        bool bare = e.names.size() == 1 && !e.names[0].empty() &&
                    (std::isalpha(static_cast<unsigned char>(e.names[0][0])) || e.names[0][0] == '_') &&
                    (!is_reserved(e.names[0]) || upper_is(e.names[0], {"LEFT", "RIGHT", "INSERT"}));
        for (char c : e.names.empty() ? std::string() : e.names[0]) {
            bare = bare && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
        }
        out += bare ? e.names[0] : name_of(e.names);
        if (e.flag) {
            return; // CURRENT_TIMESTAMP and friends
        }
        if (!e.text.empty()) {
            keyword_form(e);
            return;
        }
        out += '(';
        if (e.distinct) {
            out += "DISTINCT ";
        }
        for (std::size_t i = 0; i < e.args.size(); ++i) {
            if (i > 0) {
                out += ", ";
            }
            expr_(e.args[i]);
        }
        out += ')';
        if (e.filter) {
            out += " FILTER (WHERE ";
            expr_(*e.filter);
            out += ')';
        }
        if (e.over) {
            out += " OVER (";
            window(*e.over);
            out += ')';
        }
    }

    void keyword_form(const expr& e) {
        out += '(';
        if (e.text == "TO") {
            expr_(e.args[0]);
            out += " TO ";
            out += unit_name(e.unit);
        } else if (e.text == "IN") {
            child(e.args[0], precedence(e.args[0]) < prec_concat);
            out += " IN ";
            expr_(e.args[1]);
        } else if (e.text == "FROM") {
            expr_(e.args[0]);
            out += " FROM ";
            expr_(e.args[1]);
            if (e.args.size() > 2) {
                out += " FOR ";
                expr_(e.args[2]);
            }
        } else {
            out += e.text; // BOTH, LEADING, TRAILING
            if (e.args.size() > 1) {
                out += ' ';
                expr_(e.args[0]);
            }
            out += " FROM ";
            expr_(e.args.back());
        }
        out += ')';
    }

    void window(const window_spec& w) {
        bool space = false;
        if (!w.partition_by.empty()) {
            out += "PARTITION BY ";
            exprs(w.partition_by);
            space = true;
        }
        if (!w.order_by.empty()) {
            out += space ? " ORDER BY " : "ORDER BY ";
            order(w.order_by);
            space = true;
        }
        if (w.has_frame) {
            out += space ? " " : "";
            out += w.rows ? "ROWS BETWEEN " : "RANGE BETWEEN ";
            bound(w.start);
            out += " AND ";
            bound(w.end);
        }
    }

    void bound(const frame_bound& b) {
        switch (b.kind) {
        case frame_bound_kind::unbounded_preceding:
            out += "UNBOUNDED PRECEDING";
            return;
        case frame_bound_kind::unbounded_following:
            out += "UNBOUNDED FOLLOWING";
            return;
        case frame_bound_kind::current_row:
            out += "CURRENT ROW";
            return;
        case frame_bound_kind::preceding:
        case frame_bound_kind::following:
            child(*b.offset, precedence(*b.offset) < prec_concat);
            out += b.kind == frame_bound_kind::preceding ? " PRECEDING" : " FOLLOWING";
            return;
        }
    }

    void exprs(const std::vector<expr>& list) {
        for (std::size_t i = 0; i < list.size(); ++i) {
            if (i > 0) {
                out += ", ";
            }
            expr_(list[i]);
        }
    }

    void order(const std::vector<order_item>& items) {
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (i > 0) {
                out += ", ";
            }
            expr_(items[i].value);
            if (items[i].descending) {
                out += " DESC";
            } else if (items[i].explicit_direction) {
                out += " ASC";
            }
            if (items[i].nulls_first) {
                out += *items[i].nulls_first ? " NULLS FIRST" : " NULLS LAST";
            }
        }
    }

    static bool has_tail(const query& q) {
        return !q.with.empty() || !q.order_by.empty() || q.limit;
    }

    void query_(const query& q) {
        if (!q.with.empty()) {
            out += "WITH ";
            for (std::size_t i = 0; i < q.with.size(); ++i) {
                if (i > 0) {
                    out += ", ";
                }
                const common_table& ct = q.with[i];
                out += quote_identifier(ct.name);
                if (!ct.columns.empty()) {
                    out += " (" + names_list(ct.columns) + ")";
                }
                out += " AS (";
                query_(*ct.body);
                out += ')';
            }
            out += ' ';
        }
        switch (q.kind) {
        case query_kind::select:
            select(q.select);
            break;
        case query_kind::values:
            out += "VALUES ";
            for (std::size_t r = 0; r < q.rows.size(); ++r) {
                out += r > 0 ? ", (" : "(";
                exprs(q.rows[r]);
                out += ')';
            }
            break;
        case query_kind::union_: {
            bool left_parens = has_tail(*q.left);
            bool right_parens = has_tail(*q.right) || q.right->kind == query_kind::union_;
            out += left_parens ? "(" : "";
            query_(*q.left);
            out += left_parens ? ")" : "";
            out += q.union_all ? " UNION ALL " : " UNION ";
            out += right_parens ? "(" : "";
            query_(*q.right);
            out += right_parens ? ")" : "";
            break;
        }
        }
        if (!q.order_by.empty()) {
            out += " ORDER BY ";
            order(q.order_by);
        }
        if (q.limit) {
            out += " LIMIT ";
            expr_(*q.limit);
        }
    }

    void select(const select_core& s) {
        out += "SELECT ";
        if (!s.hints.empty()) {
            out += "/*+ ";
            for (std::size_t i = 0; i < s.hints.size(); ++i) {
                out += (i > 0 ? ", " : "") + s.hints[i].name + "(";
                for (std::size_t a = 0; a < s.hints[i].args.size(); ++a) out += (a > 0 ? ", " : "") + s.hints[i].args[a];
                out += ")";
            }
            out += " */ ";
        }
        if (s.distinct) out += "DISTINCT ";
        for (std::size_t i = 0; i < s.items.size(); ++i) {
            if (i > 0) {
                out += ", ";
            }
            expr_(s.items[i].value);
            if (!s.items[i].alias.empty()) {
                out += " AS ";
                out += quote_identifier(s.items[i].alias);
            }
        }
        if (!s.from.empty()) {
            out += " FROM ";
            for (std::size_t i = 0; i < s.from.size(); ++i) {
                if (i > 0) {
                    out += ", ";
                }
                table(s.from[i]);
            }
        }
        if (s.where) {
            out += " WHERE ";
            expr_(*s.where);
        }
        if (!s.group_by.empty()) {
            out += " GROUP BY ";
            exprs(s.group_by);
        }
        if (s.having) {
            out += " HAVING ";
            expr_(*s.having);
        }
    }

    void alias(const table_ref& t) {
        if (!t.alias.empty()) {
            out += " AS ";
            out += quote_identifier(t.alias);
            if (!t.column_aliases.empty()) {
                out += " (" + names_list(t.column_aliases) + ")";
            }
        }
    }

    void table(const table_ref& t) {
        switch (t.kind) {
        case table_ref_kind::named:
            out += name_of(t.names);
            if (t.system_time) {
                out += " FOR SYSTEM_TIME AS OF ";
                child(*t.system_time, precedence(*t.system_time) < prec_concat);
            }
            alias(t);
            return;
        case table_ref_kind::subquery:
            out += '(';
            query_(*t.subquery);
            out += ')';
            alias(t);
            return;
        case table_ref_kind::function:
            out += "TABLE(";
            expr_(*t.function);
            out += ')';
            alias(t);
            return;
        case table_ref_kind::join: {
            table(*t.left);
            static constexpr const char* names[] = {" JOIN ", " LEFT JOIN ", " RIGHT JOIN ",
                                                    " FULL JOIN ", " CROSS JOIN "};
            out += names[static_cast<int>(t.join)];
            bool parens = t.right->kind == table_ref_kind::join;
            out += parens ? "(" : "";
            table(*t.right);
            out += parens ? ")" : "";
            if (t.condition) {
                out += " ON ";
                expr_(*t.condition);
            } else if (!t.using_columns.empty()) {
                out += " USING (" + names_list(t.using_columns) + ")";
            }
            return;
        }
        }
    }

    void statement_(const statement& s) {
        std::visit([this](const auto& n) { node(n); }, s.node);
    }

    void node(const create_table_stmt& t) {
        out += t.temporary ? "CREATE TEMPORARY TABLE " : "CREATE TABLE ";
        if (t.if_not_exists) {
            out += "IF NOT EXISTS ";
        }
        out += name_of(t.name);
        out += " (";
        const char* sep = "\n  ";
        for (const column_def& c : t.columns) {
            out += sep;
            sep = ",\n  ";
            out += quote_identifier(c.name);
            if (c.computed) {
                out += " AS ";
                expr_(*c.computed);
            } else {
                out += ' ';
                out += to_string(c.type);
                if (c.metadata) {
                    out += " METADATA";
                    if (!c.metadata_key.empty()) {
                        out += " FROM " + quote_string(c.metadata_key);
                    }
                    if (c.is_virtual) {
                        out += " VIRTUAL";
                    }
                }
            }
            if (!c.comment.empty()) {
                out += " COMMENT " + quote_string(c.comment);
            }
        }
        for (const watermark_def& w : t.watermarks) {
            out += sep;
            sep = ",\n  ";
            out += "WATERMARK FOR " + quote_identifier(w.column) + " AS ";
            expr_(w.strategy);
        }
        if (!t.primary_key.empty()) {
            out += sep;
            out += "PRIMARY KEY (" + names_list(t.primary_key) + ") NOT ENFORCED";
        }
        out += "\n)";
        if (!t.comment.empty()) {
            out += " COMMENT " + quote_string(t.comment);
        }
        if (!t.options.empty()) {
            out += " WITH (";
            sep = "\n  ";
            for (const auto& [k, v] : t.options) {
                out += sep;
                sep = ",\n  ";
                out += quote_string(k) + " = " + quote_string(v);
            }
            out += "\n)";
        }
    }

    void node(const create_view_stmt& v) {
        out += "CREATE ";
        out += v.or_replace ? "OR REPLACE " : "";
        out += v.temporary ? "TEMPORARY " : "";
        out += v.materialized ? "MATERIALIZED VIEW " : "VIEW ";
        if (v.if_not_exists) {
            out += "IF NOT EXISTS ";
        }
        out += name_of(v.name);
        if (!v.columns.empty()) {
            out += " (" + names_list(v.columns) + ")";
        }
        out += " AS ";
        query_(v.body);
    }

    void node(const insert_stmt& i) {
        out += i.overwrite ? "INSERT OVERWRITE " : "INSERT INTO ";
        out += name_of(i.table);
        if (!i.columns.empty()) {
            out += " (" + names_list(i.columns) + ")";
        }
        out += ' ';
        query_(i.body);
    }

    void node(const drop_stmt& d) {
        out += d.temporary ? "DROP TEMPORARY " : "DROP ";
        static constexpr const char* what[] = {"TABLE ", "VIEW ", "MATERIALIZED VIEW "};
        out += what[static_cast<int>(d.object)];
        if (d.if_exists) {
            out += "IF EXISTS ";
        }
        out += name_of(d.name);
    }

    void node(const show_stmt& s) {
        static constexpr const char* what[] = {"SHOW TABLES", "SHOW VIEWS",
                                               "SHOW MATERIALIZED VIEWS", "SHOW JOBS",
                                               "SHOW FUNCTIONS", "SHOW CREATE TABLE ",
                                               "SHOW CREATE VIEW "};
        out += what[static_cast<int>(s.what)];
        if (s.what == show_kind::create_table || s.what == show_kind::create_view) {
            out += name_of(s.name);
        }
    }

    void node(const stop_job_stmt& s) { out += "STOP JOB " + quote_string(s.job_id); }

    void node(const set_stmt& s) {
        out += s.reset ? "RESET" : "SET";
        if (!s.key.empty()) {
            out += ' ' + quote_string(s.key);
            if (!s.reset) {
                out += " = " + quote_string(s.value);
            }
        }
    }

    void node(const query_stmt& q) { query_(q.body); }

    void node(const explain_stmt& e) {
        out += "EXPLAIN ";
        statement_(*e.target);
    }
};

} // namespace

std::string quote_identifier(std::string_view name) {
    bool bare = !name.empty() &&
                (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') &&
                !is_reserved(name) &&
                !upper_is(name, {"CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME",
                                 "LOCALTIMESTAMP", "LOCALTIME"});
    for (char c : name) {
        bare = bare && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    }
    if (bare) {
        return std::string(name);
    }
    std::string s = "`";
    for (char c : name) {
        s += c;
        if (c == '`') {
            s += '`';
        }
    }
    s += '`';
    return s;
}

std::string quote_string(std::string_view text) {
    std::string s = "'";
    for (char c : text) {
        s += c;
        if (c == '\'') {
            s += '\'';
        }
    }
    s += '\'';
    return s;
}

std::string to_string(const expr& e) {
    printer p;
    p.expr_(e);
    return std::move(p.out);
}

std::string to_string(const query& q) {
    printer p;
    p.query_(q);
    return std::move(p.out);
}

std::string to_string(const statement& s) {
    printer p;
    p.statement_(s);
    return std::move(p.out);
}

} // namespace runnel::sql
