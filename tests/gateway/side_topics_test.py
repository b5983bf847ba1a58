#!/usr/bin/python3
"""Side-output topics (dead letters `.dead`, late rows `.late`) appear with their first row and
go with their pipeline.

1. A SQL pipeline whose input decodes and is never late leaves no `.dead` or `.late` topic.
2. A bad record makes `<pipeline>.dead` appear, holding it; DROP MATERIALIZED VIEW deletes it.
3. DELETE /v1/pipelines/{id}?keep_side_topics=true keeps a `.dead` topic that holds records.
4. STOP JOB of an INSERT pipeline deletes its side topics.

Run: /usr/bin/python3 side_topics_test.py --runnel PATH
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, harness  # noqa: E402


def topics(srv):
    return {t["name"] for t in call("GET", f"{srv.http}/v1/topics").json()["topics"]}


def sql(srv, text, status=200):
    return expect(call("POST", f"{srv.http}/v1/sql", text.encode(), {"Content-Type": "text/plain"}), status, text)


def produce(srv, topic, values):
    expect(call("POST", f"{srv.http}/v1/topics/{topic}/records?acks=all",
                {"records": [{"value": v} for v in values]}), 200, "produce")


def table(topic):
    return (f"CREATE TABLE t_{topic} (k STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
            f"WITH ('connector' = 'topic', 'topic' = '{topic}', 'format' = 'json', "
            f"'scan.watermark.idle-timeout' = '200 ms');\n")


def view(name, topic):
    return (table(topic) + f"CREATE MATERIALIZED VIEW {name} AS SELECT window_start, COUNT(*) AS n FROM "
            f"TABLE(TUMBLE(TABLE t_{topic}, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end;")


def wait(what, cond, seconds=30):
    d = harness.Deadline(seconds, what)
    while not cond():
        d.check()
        time.sleep(0.05)


def view_rows(srv, name):
    r = call("GET", f"{srv.http}/v1/views/{name}")
    return r.json()["rows"] if r.status == 200 else []


def test_clean_pipeline_leaves_no_side_topics(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "clean", "partitions": 1}), 201, "create")
    produce(srv, "clean", [{"k": "a", "ts": 1000 * i} for i in range(1, 6)])
    sql(srv, view("clean_view", "clean"))
    wait("clean_view rows", lambda: len(view_rows(srv, "clean_view")) >= 3)
    assert not {"clean_view.dead", "clean_view.late"} & topics(srv), topics(srv)
    sql(srv, "DROP MATERIALIZED VIEW clean_view;")
    assert not [t for t in topics(srv) if t.startswith("clean_view")], topics(srv)


def test_dead_letters_appear_and_go_with_the_view(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "dirty", "partitions": 1}), 201, "create")
    produce(srv, "dirty", [{"k": "a", "ts": 1000}, "not json {", {"k": "b", "ts": 2000}])
    sql(srv, view("dirty_view", "dirty"))
    wait("dirty_view.dead", lambda: "dirty_view.dead" in topics(srv))
    d = call("GET", f"{srv.http}/v1/topics/dirty_view.dead").json()
    wait("the dead letter in dirty_view.dead",
         lambda: call("GET", f"{srv.http}/v1/topics/dirty_view.dead").json()["partitions"][0]["log_end_offset"] == 1)
    sql(srv, "DROP MATERIALIZED VIEW dirty_view;")
    assert "dirty_view.dead" not in topics(srv), (d, topics(srv))


def test_keep_side_topics_with_records(srv):
    produce(srv, "dirty", ["still not json"])
    sql(srv, view("kept_view", "dirty"))
    wait("kept_view.dead with records", lambda: "kept_view.dead" in topics(srv) and call(
        "GET", f"{srv.http}/v1/topics/kept_view.dead").json()["partitions"][0]["log_end_offset"] >= 2)
    expect(call("DELETE", f"{srv.http}/v1/pipelines/kept_view?keep_side_topics=true"), 204, "delete, keeping")
    assert "kept_view.dead" in topics(srv), topics(srv)
    expect(call("DELETE", f"{srv.http}/v1/pipelines/x?keep_side_topics=maybe"), 400, "a bad keep_side_topics")


def test_stop_job_deletes_side_topics(srv):
    sql(srv, table("dirty") + "SET 'pipeline.name' = 'copy-dirty';\n"
        "CREATE TABLE out_copy (k STRING) WITH ('connector' = 'topic', 'topic' = 'copy-out', 'format' = 'json');\n"
        "INSERT INTO out_copy SELECT k FROM t_dirty;")
    wait("copy-dirty.dead", lambda: "copy-dirty.dead" in topics(srv))
    sql(srv, "STOP JOB 'copy-dirty';")
    assert "copy-dirty.dead" not in topics(srv), topics(srv)


def main():
    binary = harness.runnel_binary()
    with harness.RunnelServer(binary, name="side", shards=2) as srv:
        return gw.run_tests("side_topics_test",
                            [test_clean_pipeline_leaves_no_side_topics, test_dead_letters_appear_and_go_with_the_view,
                             test_keep_side_topics_with_records, test_stop_job_deletes_side_topics], srv)


if __name__ == "__main__":
    sys.exit(main())
