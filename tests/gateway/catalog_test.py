#!/usr/bin/python3
"""The SQL catalog over POST /v1/sql, against `runnel serve` (decision 0030).

1. A table created in one request is used by an INSERT in another; SHOW TABLES lists the
   catalog; the same CREATE again is a no-op, a different one an error at its line:column.
2. SHOW CREATE TABLE answers the definition with the password masked.
3. DROP TABLE removes it: using it afterwards is an error at its line:column, and the pipeline
   started from it runs on (its definition carries the table), across a restart too.
4. After a restart SHOW TABLES still lists what was kept; a damaged catalog file is skipped,
   logged and counted in /metrics, and the server serves on.

Run: /usr/bin/python3 catalog_test.py --runnel PATH
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, harness, wait_for  # noqa: E402

SRC = "CREATE TABLE src (`user` STRING, n BIGINT) WITH ('connector' = 'topic', 'topic' = 'cat-in', 'format' = 'json');\n"
REMOTE = ("CREATE TABLE remote (id INT) WITH ('connector' = 'kafka', 'topic' = 'far', 'format' = 'json', "
          "'properties.bootstrap.servers' = '127.0.0.1:9', 'properties.security.protocol' = 'SASL_PLAINTEXT', "
          "'properties.sasl.mechanism' = 'PLAIN', 'properties.sasl.username' = 'u', "
          "'properties.sasl.password' = 'hunter2-secret');\n")
OUT = "CREATE TABLE out_t (`user` STRING, n BIGINT) WITH ('connector' = 'topic', 'topic' = 'cat-out', 'format' = 'json');\n"
INSERT = "SET 'pipeline.name' = 'copy';\nINSERT INTO out_t SELECT `user`, n * 2 FROM src;\n"


def sql(srv, text):
    return call("POST", f"{srv.http}/v1/sql", text.encode(), {"Content-Type": "text/plain"})


def results(srv, text):
    return expect(sql(srv, text), 200, text).json()["results"]


def show_tables(srv):
    return results(srv, "SHOW TABLES;")[0]["tables"]


def problem_at(resp, line, column, words):
    assert resp.status == 400, resp
    p = resp.json()
    assert p["type"] == "urn:runnel:problem:invalid-sql" and (p["line"], p["column"]) == (line, column), p
    assert words in p["detail"], p["detail"]


def copied(srv):
    try:
        rows = harness.read_to_end(srv.bootstrap, "cat-out", 1, committed=False)
    except Exception:  # noqa: BLE001 - the topic appears with the pipeline's first row
        return None
    return rows if len(rows) >= 3 else None


def main():
    binary = harness.runnel_binary()
    with tempfile.TemporaryDirectory(prefix="gw-catalog-") as d:
        data = os.path.join(d, "data")
        srv = harness.RunnelServer(binary, name="gw-catalog", data_dir=data).start()
        passed = 0
        try:
            # 1. Declared in one request, used from another.
            expect(call("POST", f"{srv.http}/v1/topics", {"name": "cat-in", "partitions": 1}), 201, "topic")
            r = results(srv, SRC + REMOTE)
            assert [x["kind"] for x in r] == ["create_table", "create_table"], r
            r = results(srv, OUT + INSERT)
            assert r[-1]["kind"] == "insert" and r[-1]["pipeline"] == "copy", r
            assert show_tables(srv) == ["out_t", "remote", "src"], show_tables(srv)
            r = results(srv, SRC)
            assert r[0]["kind"] == "create_table" and r[0].get("existed") is True, r
            problem_at(sql(srv, "\n" + SRC.replace("n BIGINT", "n INT")), 2, 14,
                       "table src exists already with another definition; drop it first (DROP TABLE src) or keep "
                       "the one there is (CREATE TABLE IF NOT EXISTS src …)")
            records = [{"value": {"user": f"u{i}", "n": i}} for i in range(3)]
            expect(call("POST", f"{srv.http}/v1/topics/cat-in/records?acks=all", {"records": records}), 200, "produce")
            wait_for("the pipeline's rows", lambda: copied(srv))
            passed += 1

            # 2. The password is masked.
            r = results(srv, "SHOW CREATE TABLE remote;")[0]
            assert r["kind"] == "show_create" and r["table"] == "remote", r
            assert "hunter2-secret" not in r["create"] and "'properties.sasl.password' = '******'" in r["create"], r
            problem_at(sql(srv, "SHOW CREATE TABLE nope;"), 1, 19, "table nope does not exist")
            passed += 1

            # 3. DROP: a later use fails at its position; the running pipeline is not touched.
            r = results(srv, "DROP TABLE src;\nDROP TABLE IF EXISTS src;")
            assert [x["kind"] for x in r] == ["drop_table", "drop_table"] and not r[1]["existed"], r
            problem_at(sql(srv, "EXPLAIN\nINSERT INTO out_t SELECT `user`, n FROM src;"), 2, 41,
                       "table or view src does not exist")
            assert show_tables(srv) == ["out_t", "remote"], show_tables(srv)
            passed += 1
            srv.stop()

            # 4. A restart: the catalog is back, a damaged file is skipped and shown in /metrics.
            with open(os.path.join(data, "catalog", "00.sql"), "w") as f:
                f.write("CREATE TABLE half (a INT")
            srv = harness.RunnelServer(binary, name="gw-catalog", data_dir=data).start()
            assert show_tables(srv) == ["out_t", "remote"], show_tables(srv)
            assert gw.metric(srv, "runnel_sql_catalog_damaged_entries") == 1.0
            assert gw.metric(srv, "runnel_sql_catalog_entries") == 2.0
            assert "SQL catalog: skipping damaged entry" in srv.log(), srv.log_tail()
            wait_for("the pipeline running again without its dropped table", lambda: expect(
                call("GET", f"{srv.http}/v1/pipelines/copy"), 200, "pipeline").json()["state"] == "running")
            passed += 1
            srv.stop()
        finally:
            if srv.alive():
                srv.stop(check=False)
        harness.summary("gateway_catalog_test", passed, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
