// Unit tests of `sql::session` (one script's statements against a catalog) and
// `sql::catalog_store` (the server's catalog: shared, persisted, bounded).

#include "sql/catalog_store.h"
#include "sql/session.h"
#include "sql/sql.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace runnel::sql {
namespace {

constexpr std::string_view clicks = "CREATE TABLE clicks (`user` STRING, bytes BIGINT, ts TIMESTAMP(3), "
                                    "WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
                                    "WITH ('connector' = 'topic', 'password' = 'hunter2');\n";
constexpr std::string_view sink = "CREATE TABLE out_t (`user` STRING, n BIGINT);\n";

/// A fresh directory under the system's temporary one, removed by the test.
class temp_dir {
public:
    temp_dir() {
        std::random_device rd;
        _path = std::filesystem::temp_directory_path() / ("runnel-session-test-" + std::to_string(rd()));
        std::filesystem::create_directories(_path);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(_path, ec);
    }
    const std::filesystem::path& path() const { return _path; }

private:
    std::filesystem::path _path;
};

/// Runs every statement of `text` in a new session over `store`; the steps, or the first
/// error's headline. Commits when all succeeded.
struct run_result {
    std::vector<step> steps;
    std::string error;
};

run_result run(catalog_store& store, std::string text, bool commit = true) {
    run_result out;
    session s(store, session_options{});
    auto n = s.begin(std::move(text));
    if (!n) {
        out.error = n.error().headline();
        return out;
    }
    for (std::size_t i = 0; i < n.value(); ++i) {
        auto st = s.execute(i);
        if (!st) {
            out.error = st.error().headline();
            return out;
        }
        out.steps.push_back(std::move(st).value());
    }
    if (commit) {
        auto c = s.commit();
        if (!c) out.error = c.error().headline();
    }
    return out;
}

TEST(sql_session, later_statements_and_later_sessions_see_declarations) {
    catalog_store store;
    auto r = run(store, std::string(clicks) + "SHOW TABLES;");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.steps[0].kind, step_kind::declare_table);
    EXPECT_EQ(r.steps[0].name, "clicks");
    EXPECT_FALSE(r.steps[0].existed);
    EXPECT_EQ(r.steps[1].names, std::vector<std::string>{"clicks"});
    // The next request sees it, and its own declarations besides.
    r = run(store, std::string(sink) + "SHOW TABLES;\nEXPLAIN INSERT INTO out_t SELECT `user`, bytes FROM clicks;");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.steps[1].names, (std::vector<std::string>{"clicks", "out_t"}));
    EXPECT_EQ(r.steps[2].kind, step_kind::explain);
    EXPECT_NE(r.steps[2].plan.find("clicks"), std::string::npos) << r.steps[2].plan;
}

TEST(sql_session, an_identical_create_is_a_no_op_and_a_different_one_an_error) {
    catalog_store store;
    ASSERT_EQ(run(store, std::string(clicks)).error, "");
    auto again = run(store, "\n\n" + std::string(clicks));
    ASSERT_EQ(again.error, "");
    EXPECT_TRUE(again.steps[0].existed);
    auto other = run(store, "SET 'parallelism.default' = '2';\nCREATE TABLE clicks (a INT);");
    EXPECT_EQ(other.error, "line 2:14: table clicks exists already with another definition; drop it first (DROP "
                           "TABLE clicks) or keep the one there is (CREATE TABLE IF NOT EXISTS clicks …)");
    auto kept = run(store, "CREATE TABLE IF NOT EXISTS clicks (a INT);\nSHOW CREATE TABLE clicks;");
    ASSERT_EQ(kept.error, "");
    EXPECT_TRUE(kept.steps[0].existed);
    EXPECT_NE(kept.steps[1].create_text.find("bytes BIGINT"), std::string::npos) << kept.steps[1].create_text;
    // A view and a table share names.
    EXPECT_EQ(run(store, "CREATE VIEW clicks AS SELECT 1 AS a;").error,
              "line 1:13: clicks is a table already; drop it first (DROP TABLE clicks)");
}

TEST(sql_session, a_failed_or_uncommitted_script_leaves_the_catalog_as_it_was) {
    catalog_store store;
    auto r = run(store, std::string(clicks) + "INSERT INTO nowhere SELECT 1;");
    EXPECT_EQ(r.error, "line 2:1: INSERT INTO nowhere: no such table");
    EXPECT_EQ(store.size(), 0u);
    EXPECT_EQ(run(store, std::string(clicks), false).error, "");
    EXPECT_EQ(store.size(), 0u);
}

TEST(sql_session, drop_removes_and_later_uses_fail_at_their_position) {
    catalog_store store;
    ASSERT_EQ(run(store, std::string(clicks) + std::string(sink) + "CREATE VIEW v AS SELECT `user` FROM clicks;").error,
              "");
    auto r = run(store, "DROP TABLE clicks;\nDROP TABLE IF EXISTS clicks;\nSHOW TABLES;");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.steps[0].kind, step_kind::drop);
    EXPECT_TRUE(r.steps[0].existed);
    EXPECT_FALSE(r.steps[1].existed);
    EXPECT_EQ(r.steps[2].names, std::vector<std::string>{"out_t"});
    EXPECT_FALSE(store.find({"clicks"}));
    EXPECT_EQ(run(store, "EXPLAIN\nINSERT INTO out_t SELECT `user`, 1 FROM clicks;").error,
              "line 2:41: table or view clicks does not exist");
    EXPECT_EQ(run(store, "DROP TABLE  clicks;").error, "line 1:13: table clicks does not exist");
    EXPECT_EQ(run(store, "DROP TABLE v;").error, "line 1:12: v is a view; drop it with DROP VIEW v");
    EXPECT_EQ(run(store, "DROP VIEW v; SHOW VIEWS;").steps[1].names, std::vector<std::string>{});
}

TEST(sql_session, show_create_masks_secrets_and_points_at_a_missing_name) {
    catalog_store store;
    ASSERT_EQ(run(store, std::string(clicks)).error, "");
    auto r = run(store, "SHOW CREATE TABLE clicks;");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.steps[0].kind, step_kind::show_create);
    EXPECT_EQ(r.steps[0].create_text.find("hunter2"), std::string::npos) << r.steps[0].create_text;
    EXPECT_NE(r.steps[0].create_text.find("'password' = '******'"), std::string::npos) << r.steps[0].create_text;
    // The store keeps the secret: a pipeline needs it.
    EXPECT_NE(store.find({"clicks"})->definition.find("hunter2"), std::string::npos);
    EXPECT_EQ(run(store, "\n  SHOW CREATE TABLE nope;").error, "line 2:21: table nope does not exist");
    EXPECT_EQ(run(store, "SHOW CREATE VIEW clicks;").error, "line 1:18: clicks is a table; SHOW CREATE TABLE clicks");
}

TEST(sql_session, a_pipeline_carries_the_catalog_declarations_it_uses) {
    catalog_store store;
    ASSERT_EQ(run(store, std::string(clicks) + "CREATE TABLE unused (a INT);\n"
                         "CREATE VIEW heavy AS SELECT `user`, bytes FROM clicks WHERE bytes > 10;")
                .error,
              "");
    const std::string script = std::string(sink) + "SET 'parallelism.default' = '2';\nSET 'pipeline.name' = 'p';\n"
                                                   "INSERT INTO out_t SELECT `user`, bytes FROM heavy;";
    session s(store, session_options{});
    ASSERT_TRUE(s.begin(script));
    step last;
    for (std::size_t i = 0; i < s.statements().size(); ++i) {
        auto st = s.execute(i);
        ASSERT_TRUE(st) << st.error().headline();
        last = st.value();
    }
    ASSERT_EQ(last.kind, step_kind::start_pipeline);
    EXPECT_EQ(last.pipeline.name, "p");
    EXPECT_EQ(last.pipeline.parallelism, 2u);
    // The view and the table under it, not the table it does not use; the script keeps its own
    // declaration and setting in place (the pipeline's name is no planner setting).
    EXPECT_EQ(last.pipeline.catalog, store.find({"clicks"})->definition + ";\n" + store.find({"heavy"})->definition + ";\n");
    EXPECT_EQ(last.pipeline.script, std::string(sink) + "SET 'parallelism.default' = '2';\n" +
                                      std::string(std::string_view("SET 'pipeline.name' = 'p';").size(), ' ') +
                                      "\nINSERT INTO out_t SELECT `user`, bytes FROM heavy;");
    // Dropped from the catalog, the pipeline's own definition still plans (as when it starts),
    // and an error in it points at the user's line and column.
    ASSERT_EQ(run(store, "DROP VIEW heavy; DROP TABLE clicks;").error, "");
    catalog_store job;
    ASSERT_TRUE(job.declare_all(last.pipeline.catalog));
    session again(job, session_options{{}, false});
    ASSERT_TRUE(again.begin(last.pipeline.script));
    for (std::size_t i = 0; i < again.statements().size(); ++i) ASSERT_TRUE(again.execute(i));
    auto plan = explain(again.statements().back(), again.names(), again.options());
    EXPECT_TRUE(plan) << plan.error().headline();
    EXPECT_EQ(again.options().parallelism, 2u);
}

// A server's sessions start at its shards; a PARALLELISM hint sets one statement's instances
// and SET the script's later ones.
TEST(sql_session, a_parallelism_hint_sets_its_statement_and_the_default_the_others) {
    catalog_store store;
    const std::string script = std::string(clicks) + std::string(sink) +
                               "INSERT INTO out_t SELECT /*+ PARALLELISM(3) */ `user`, bytes FROM clicks;\n"
                               "INSERT INTO out_t SELECT `user`, bytes FROM clicks;\n"
                               "SET 'parallelism.default' = '1';\n"
                               "EXPLAIN INSERT INTO out_t SELECT /*+ parallelism(2) */ `user`, bytes FROM clicks;\n"
                               "INSERT INTO out_t SELECT `user`, bytes FROM clicks;\n"
                               "RESET 'parallelism.default';\n"
                               "INSERT INTO out_t SELECT `user`, bytes FROM clicks;";
    session s(store, session_options{{}, true, 4});
    ASSERT_TRUE(s.begin(script));
    std::vector<step> steps;
    for (std::size_t i = 0; i < s.statements().size(); ++i) {
        auto st = s.execute(i);
        ASSERT_TRUE(st) << st.error().headline();
        steps.push_back(st.value());
    }
    ASSERT_EQ(steps.size(), 9u);
    EXPECT_EQ(steps[2].pipeline.parallelism, 3u);
    EXPECT_EQ(steps[2].plan.rfind("parallelism 3: ", 0), 0u) << steps[2].plan;
    EXPECT_EQ(steps[3].pipeline.parallelism, 4u);
    EXPECT_EQ(steps[5].kind, step_kind::explain);
    EXPECT_EQ(steps[5].plan.rfind("parallelism 2: ", 0), 0u) << steps[5].plan;
    EXPECT_EQ(steps[6].pipeline.parallelism, 1u);
    EXPECT_EQ(steps[6].plan.find("parallelism"), std::string::npos) << steps[6].plan;
    EXPECT_EQ(steps[8].pipeline.parallelism, 4u); // RESET: the session's default again
}

TEST(sql_session, temporary_tables_live_in_the_session_only) {
    catalog_store store;
    auto r = run(store, "CREATE TEMPORARY TABLE t (a INT);\nSHOW TABLES;");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.steps[1].names, std::vector<std::string>{"t"});
    EXPECT_EQ(store.size(), 0u);
}

TEST(sql_session, a_name_created_meanwhile_by_another_session_fails_the_commit) {
    catalog_store store;
    session a(store, session_options{});
    ASSERT_TRUE(a.begin("CREATE TABLE t (a INT);"));
    ASSERT_TRUE(a.execute(0));
    ASSERT_EQ(run(store, "CREATE TABLE t (b INT);").error, "");
    auto c = a.commit();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().headline(), "line 1:14: table t was created with another definition by another session "
                                    "meanwhile; look at it with SHOW CREATE TABLE t");
}

TEST(sql_catalog_store, entries_survive_a_restart_from_the_directory) {
    temp_dir dir;
    {
        catalog_store store(dir.path());
        EXPECT_EQ(store.load().loaded, 0u);
        ASSERT_EQ(run(store, std::string(clicks) + "CREATE VIEW `odd name` AS SELECT `user` FROM clicks;").error, "");
        // A name too long to spell out in a file name.
        ASSERT_EQ(run(store, "CREATE TABLE `" + std::string(300, 'n') + "` (a INT);").error, "");
    }
    catalog_store again(dir.path());
    auto report = again.load();
    EXPECT_EQ(report.loaded, 3u);
    EXPECT_TRUE(report.damaged.empty()) << report.damaged.front();
    auto r = run(again, "SHOW TABLES; SHOW VIEWS; EXPLAIN SELECT * FROM `odd name`;");
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.steps[0].names, (std::vector<std::string>{"clicks", std::string(300, 'n')}));
    EXPECT_EQ(r.steps[1].names, std::vector<std::string>{"odd name"});
    // A drop removes the file too.
    ASSERT_EQ(run(again, "DROP VIEW `odd name`;").error, "");
    catalog_store third(dir.path());
    EXPECT_EQ(third.load().loaded, 2u);
}

TEST(sql_catalog_store, a_damaged_file_is_skipped_counted_and_its_name_free) {
    temp_dir dir;
    {
        catalog_store store(dir.path());
        store.load();
        ASSERT_EQ(run(store, std::string(clicks) + std::string(sink)).error, "");
    }
    // One file cut short, one holding another table than its name says, one not SQL at all.
    std::vector<std::filesystem::path> files;
    for (const auto& f : std::filesystem::directory_iterator(dir.path())) files.push_back(f.path());
    std::sort(files.begin(), files.end());
    ASSERT_EQ(files.size(), 2u);
    std::filesystem::resize_file(files[0], 20);
    std::ofstream(dir.path() / "00.sql") << "CREATE TABLE out_t (a INT)";
    std::ofstream(dir.path() / "01.sql") << "\xff\xfe garbage";
    catalog_store store(dir.path());
    auto report = store.load();
    EXPECT_EQ(report.loaded, 1u);
    EXPECT_EQ(report.damaged.size(), 3u);
    EXPECT_EQ(store.damaged(), 3u);
    EXPECT_EQ(store.size(), 1u);
    // The server serves on: the damaged name can be declared again.
    const auto lost = store.find({"clicks"}) ? std::string(sink) : std::string(clicks);
    EXPECT_EQ(run(store, lost).error, "");
    EXPECT_EQ(store.size(), 2u);
}

TEST(sql_catalog_store, limits_refuse_at_the_statement) {
    catalog_store store({}, catalog_limits{2, 200});
    ASSERT_EQ(run(store, "CREATE TABLE a (x INT); CREATE TABLE b (x INT);").error, "");
    EXPECT_EQ(run(store, "CREATE TABLE a (x INT);\nCREATE TABLE c (x INT);").error,
              "line 2:14: the catalog holds 2 tables and views, the most it may (--sql-catalog-max-entries); drop "
              "one first");
    EXPECT_EQ(run(store, "DROP TABLE b; CREATE TABLE c (x INT);").error, "");
    const std::string wide = "CREATE TEMPORARY TABLE w (" + std::string(300, 'x') + " INT);";
    EXPECT_EQ(run(store, wide).error, "line 1:24: the definition of table w is 325 bytes, more than the catalog keeps "
                                      "(--sql-catalog-max-definition-bytes, 200)");
}

} // namespace
} // namespace runnel::sql
