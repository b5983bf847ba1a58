#!/usr/bin/python3
"""Durable pipelines and materialized views over the HTTP API, against `runnel serve`.

1. POST /v1/pipelines stores and starts a windowed_count job that also keeps a view; its
   results reach the output topic and the view; GET lists and describes it with metrics;
   DELETE stops it. Bad definitions get precise problems (400, 409, 404, 405).
2. The view over REST: every row, one row by key, unknown view and key.
3. The view over WebSocket: 20 subscribers join while the view changes; each one's snapshot
   plus the changes it receives equals the view's rows at the end.
4. The pipeline survives a restart of the server (it is stored in the data directory).
5. Re-running a script: a view that exists is refused with the way out, kept (IF NOT EXISTS) or
   replaced (OR REPLACE; a replacement that fails leaves the old view running).
6. A temporary materialized view (a push query) lives while it is read or followed and goes,
   with its pipeline, once nobody has read it for --temporary-view-idle-ms.
7. GET /v1/pipelines/{id} names the edges between the operators.
8. A SQL pipeline runs on every shard by default, and one statement on as many as its
   PARALLELISM hint says; both count right over a topic of one partition.

Run: /usr/bin/python3 pipelines_test.py --runnel PATH
"""

import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, expect_problem, harness, wait_for  # noqa: E402
import websockets  # noqa: E402

JOB = {"id": "counts", "template": "windowed_count", "checkpoint_interval_ms": 100,
       "params": {"input": "clicks", "output": "click-counts", "key": "user", "time": "ts", "window_ms": 1000,
                  "view": "clicks-per-user", "delivery": "exactly_once"}}


def produce(srv, topic, records):
    expect(call("POST", f"{srv.http}/v1/topics/{topic}/records?acks=all", {"records": records}), 200, "produce")


def clicks(start_ms, n, users=5):
    return [{"key": f"u{i % users}", "value": {"user": f"u{i % users}", "ts": start_ms + i * 10}} for i in range(n)]


def closing(ts):
    """A record on every partition at `ts`: the watermark passes every earlier window."""
    return [{"partition": p, "value": {"user": "end", "ts": ts}} for p in range(3)]


def view_rows(srv, name):
    return {r["key"]: r["row"] for r in expect(call("GET", f"{srv.http}/v1/views/{name}"), 200, "view").json()["rows"]}


def test_pipeline_lifecycle(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "clicks", "partitions": 3}), 201, "topic")
    r = expect(call("POST", f"{srv.http}/v1/pipelines", JOB), 201, "create")
    assert r.headers["Location"] == "/v1/pipelines/counts"
    assert r.json()["id"] == "counts" and r.json()["template"] == "windowed_count", r.json()
    produce(srv, "clicks", clicks(1_000_000, 700))
    produce(srv, "clicks", closing(9_000_000))
    # 700 clicks over 7 s, 5 users: 7 windows × 5 users, 20 clicks each.
    rows = wait_for("35 windows in the output topic", lambda: (lambda recs: recs if len(recs) >= 35 else None)(
        expect(call("GET", f"{srv.http}/v1/topics/click-counts/records?partition=0&offset=0&limit=1000"), 200, "read").json()["records"]))
    assert len(rows) == 35 and all(r["value"]["count"] == 20 for r in rows), rows[:3]
    # The output is visible once appended; the checkpoint counts as completed just after.
    p = wait_for("a completed checkpoint", lambda: (lambda d: d if d["checkpoints"]["completed"] >= 1 else None)(
        expect(call("GET", f"{srv.http}/v1/pipelines/counts"), 200, "describe").json()))
    assert p["state"] == "running", p
    assert any(o["operator"].endswith(".source") and o["records_out"] == 703 for o in p["operators"]), p["operators"]
    # The operator graph: edges between named operators, from the source on; dead letters and
    # late rows leave on side edges.
    ops = [o["operator"] for o in p["operators"]]
    edges = [(e["from"], e["to"], e["kind"]) for e in p["edges"]]
    assert all(f in ops and t in ops and ops.index(f) < ops.index(t) for f, t, _ in edges), edges
    assert any(f.endswith(".source") and k == "forward" for f, _, k in edges), edges
    assert {t for _, t, _ in edges} == set(ops) - {ops[0]}, (ops, edges)
    assert any(k == "side" for _, _, k in edges), edges
    assert p["watermark"] > 1_000_000, p
    listed = expect(call("GET", f"{srv.http}/v1/pipelines"), 200, "list").json()["pipelines"]
    assert [x["id"] for x in listed] == ["counts"], listed
    view = view_rows(srv, "clicks-per-user")
    assert set(view) == {f"u{i}" for i in range(5)}, view
    assert all(v["window_start"] == harness.sql_time(1_006_000) for v in view.values()), view


def test_pipeline_errors(srv):
    base = f"{srv.http}/v1/pipelines"
    expect_problem(call("POST", base, b"{nope", {"Content-Type": "application/json"}), 400, "malformed-json",
                   "Malformed JSON", "the body is not JSON: syntax error at line 1, column 2 (byte 1)",
                   "/v1/pipelines")
    expect_problem(call("POST", base, {"id": "x"}), 400, "invalid-request", "Invalid request",
                   "'template' must be a string", "/v1/pipelines")
    expect_problem(call("POST", base, {"id": "bad/id", "template": "windowed_count"}), 400, "invalid-request",
                   "Invalid request", "'id' must be a string of letters, digits, '-', '_' and '.'", "/v1/pipelines")
    expect_problem(call("POST", base, JOB), 409, "pipeline-exists", "Pipeline already exists",
                   "pipeline 'counts' exists already; remove it first (DELETE /v1/pipelines/counts) or choose "
                   "another id", "/v1/pipelines")
    expect_problem(call("POST", base, {"id": "t2", "template": "teleport"}), 422, "invalid-pipeline",
                   "Pipeline refused",
                   "unknown template 'teleport' (known: demo_bids_per_channel, sql, windowed_count)", "/v1/pipelines")
    bad = dict(JOB, id="w2", params=dict(JOB["params"], window_ms="soon"))
    expect_problem(call("POST", base, bad), 422, "invalid-pipeline", "Pipeline refused",
                   "parameter 'window_ms' must be an integer, not 'soon'", "/v1/pipelines")
    expect_problem(call("GET", f"{base}/nope"), 404, "unknown-pipeline", "Unknown pipeline",
                   "pipeline 'nope' does not exist", "/v1/pipelines/nope")
    expect_problem(call("DELETE", f"{base}/nope"), 404, "unknown-pipeline", "Unknown pipeline",
                   "pipeline 'nope' does not exist", "/v1/pipelines/nope")
    assert call("PUT", base, JOB).status == 405
    expect_problem(call("GET", f"{srv.http}/v1/views/nope"), 404, "unknown-view", "Unknown view",
                   "view 'nope' does not exist", "/v1/views/nope")
    expect_problem(call("GET", f"{srv.http}/v1/views/clicks-per-user/rows/zz"), 404, "unknown-key", "Unknown key",
                   "view 'clicks-per-user' has no row with key 'zz'", "/v1/views/clicks-per-user/rows/zz")
    row = expect(call("GET", f"{srv.http}/v1/views/clicks-per-user/rows/u3"), 200, "row").json()
    assert row["user"] == "u3" and row["count"] == 20, row
    views = expect(call("GET", f"{srv.http}/v1/views"), 200, "views").json()["views"]
    assert {"name": "clicks-per-user", "key": ["user"]}.items() <= views[0].items(), views


async def view_subscriber(url, name, out, started):
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "view": name}))
        rows = {}
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert first == {"type": "subscribed", "view": name, "key": ["user"]}, first
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if m["type"] == "view_row":
                rows[m["key"]] = m["row"]
            elif m["type"] == "snapshot_end":
                assert m["rows"] == len(rows), m
                break
            else:
                raise AssertionError(m)
        started.set()
        version = m["version"]
        while True:
            try:
                m = json.loads(await asyncio.wait_for(ws.recv(), 3))
            except asyncio.TimeoutError:
                break  # quiet for 3 s: the producer is done
            assert m["type"] == "change" and m["version"] > version, m
            version = m["version"]
            if m["op"] == "delete":
                rows.pop(m["key"], None)
            else:
                if m["op"] == "update":
                    assert rows.get(m["key"]) == m["before"], (m, rows.get(m["key"]))
                rows[m["key"]] = m["row"]
        out.append(rows)



def test_rerunning_a_script(srv):
    """A script run twice: a view that exists is refused with the way out, or kept with IF NOT EXISTS."""
    table = ("CREATE TABLE c (`user` STRING, ts TIMESTAMP(3)) WITH ('connector' = 'topic', 'topic' = 'clicks');\n")
    view = "CREATE MATERIALIZED VIEW {} again AS SELECT `user`, COUNT(*) AS n FROM c GROUP BY `user`;"
    sql = lambda text: call("POST", f"{srv.http}/v1/sql", text.encode(), {"Content-Type": "text/plain"})
    expect(sql(table + view.format("")), 200, "first run")
    expect_problem(sql(table + view.format("")), 409, "pipeline-exists", "Pipeline already exists",
                   "line 2:1: materialized view 'again' exists already; replace it (CREATE OR REPLACE MATERIALIZED "
                   "VIEW again AS …) or keep it (CREATE MATERIALIZED VIEW IF NOT EXISTS again AS …)", "/v1/sql")
    r = expect(sql(table + view.format("IF NOT EXISTS")), 200, "IF NOT EXISTS").json()["results"]
    assert r[-1]["kind"] == "create_materialized_view" and r[-1].get("existed") is True, r

    def rows_with(column):
        resp = call("GET", f"{srv.http}/v1/views/again")
        rows = resp.json()["rows"] if resp.status == 200 else []
        return rows if rows and all(column in x["row"] for x in rows) else None

    wait_for("the first view's rows", lambda: rows_with("n"))
    # OR REPLACE: the running view stops and goes; the new query's view takes its name.
    replace = "CREATE OR REPLACE MATERIALIZED VIEW again AS SELECT `user`, COUNT(*) AS clicks FROM c GROUP BY `user`;"
    r = expect(sql(table + replace), 200, "replace").json()["results"]
    assert r[-1]["kind"] == "create_materialized_view" and r[-1].get("replaced") is True, r
    rows = wait_for("the replacing view's rows", lambda: rows_with("clicks"))
    assert all("n" not in x["row"] for x in rows), rows
    # A replacement that does not plan: its error at its position, and the running view stays.
    p = sql(table + "CREATE OR REPLACE MATERIALIZED VIEW again AS SELECT nope FROM c;")
    assert p.status == 400 and p.json()["type"] == "urn:runnel:problem:invalid-sql", p.json()
    assert (p.json()["line"], p.json()["column"]) == (2, 53) and "column nope does not exist" in p.json()["detail"], p.json()
    assert rows_with("clicks"), "the view was replaced by a query that does not plan"
    p = sql(table + "CREATE OR REPLACE MATERIALIZED VIEW again (a, b, c) AS SELECT `user`, COUNT(*) AS n FROM c "
                    "GROUP BY `user`;")
    assert p.status == 400 and (p.json()["line"], p.json()["column"]) == (2, 1), p.json()
    assert "names 3 columns but its query has 2" in p.json()["detail"], p.json()
    # One that plans but cannot start (its table's startup mode lacks its time): the old view
    # is put back and runs on from its checkpoint. (The changed table is temporary: the
    # catalog keeps `c` as first declared.)
    resp = sql(table.replace("'topic' = 'clicks'", "'topic' = 'clicks', 'scan.startup.mode' = 'timestamp'")
               .replace("CREATE TABLE", "CREATE TEMPORARY TABLE") +
               "CREATE OR REPLACE MATERIALIZED VIEW again AS SELECT `user`, COUNT(*) AS n FROM c GROUP BY `user`;")
    assert resp.status == 422 and "needs 'scan.startup.timestamp-millis'" in resp.json()["detail"], resp.json()
    rows = wait_for("the replacing view's rows after a failed replacement", lambda: rows_with("clicks"))
    state = expect(call("GET", f"{srv.http}/v1/pipelines/again"), 200, "pipeline").json()
    assert state["state"] in ("running", "recovering", "starting"), state
    expect(sql("DROP MATERIALIZED VIEW again;"), 200, "drop")

def test_sql_pipelines_run_on_every_shard(srv):
    """A SQL pipeline runs as one instance per shard unless its script or statement says
    otherwise, and counts right over a topic of one partition (the second instance reads none
    and is idle)."""
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "taps", "partitions": 1}), 201, "create topic")
    table = ("CREATE TEMPORARY TABLE taps (`user` STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)"
             " WITH ('connector' = 'topic', 'topic' = 'taps');\n")
    sql = lambda text: call("POST", f"{srv.http}/v1/sql", text.encode(), {"Content-Type": "text/plain"})
    counts = ("SELECT {}`user`, window_start, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE taps, DESCRIPTOR(ts), "
              "INTERVAL '1' SECOND)) GROUP BY `user`, window_start, window_end")
    plan = expect(sql(table + "EXPLAIN " + counts.format("") + ";"), 200, "explain").json()["results"][-1]["plan"]
    assert plan.startswith("parallelism 2: ") and "exchange by user (parallelism 2)" in plan, plan
    plan = expect(sql(table + "EXPLAIN " + counts.format("/*+ PARALLELISM(1) */ ") + ";"), 200,
                  "explain with a hint").json()["results"][-1]["plan"]
    assert "parallelism" not in plan, plan
    expect(sql(table + "CREATE MATERIALIZED VIEW taps_2 AS " + counts.format("") + ";\n"
               "CREATE MATERIALIZED VIEW taps_1 AS " + counts.format("/*+ PARALLELISM(1) */ ") + ";"), 200, "views")
    assert expect(call("GET", f"{srv.http}/v1/pipelines/taps_2"), 200, "2").json()["parallelism"] == 2
    assert expect(call("GET", f"{srv.http}/v1/pipelines/taps_1"), 200, "1").json()["parallelism"] == 1
    start = 1_700_000_000_000
    produce(srv, "taps", [{"value": {"user": f"u{i % 4}", "ts": start + i * 100}} for i in range(100)])
    # 10 one-second windows of 10 taps, 4 users: the watermark (last ts − 1 s) closes 8 of them.
    want = {}
    for i in range(100):
        w = (start + i * 100) // 1000 * 1000
        if w + 1000 <= start + 99 * 100 - 1000:
            want[(f"u{i % 4}", w)] = want.get((f"u{i % 4}", w), 0) + 1

    def rows(view):
        return sorted((r["row"]["user"], r["row"]["window_start"], r["row"]["n"]) for r in
                      call("GET", f"{srv.http}/v1/views/{view}").json().get("rows", []))

    expected = sorted((u, harness.sql_time(w), n) for (u, w), n in want.items())
    for view in ("taps_1", "taps_2"):
        wait_for(f"view {view}'s closed windows", lambda: rows(view) == expected or None)
    p = sql(table + "INSERT INTO taps SELECT /*+ BROADCAST(taps) */ `user`, ts FROM taps;")
    assert p.status == 400 and (p.json()["line"], p.json()["column"]) == (2, 29), p.json()
    assert "unknown hint BROADCAST" in p.json()["detail"], p.json()
    for view in ("taps_1", "taps_2"):
        expect(sql(f"DROP MATERIALIZED VIEW {view};"), 200, "drop")


IDLE_S = 4  # the server's --temporary-view-idle-ms, in seconds


def test_unread_temporary_views_expire(srv):
    """A push query's temporary view lives while a client reads or follows it; left unread for
    --temporary-view-idle-ms it is dropped with its pipeline. A durable view stays."""
    table = "CREATE TABLE c (`user` STRING, ts TIMESTAMP(3)) WITH ('connector' = 'topic', 'topic' = 'clicks');\n"
    query = " AS SELECT `user`, COUNT(*) AS n FROM c GROUP BY `user`;"
    sql = lambda text: call("POST", f"{srv.http}/v1/sql", text.encode(), {"Content-Type": "text/plain"})
    expect(sql(table + "CREATE TEMPORARY MATERIALIZED VIEW tmp_q" + query), 200, "temporary view")
    expect(sql(table + "CREATE MATERIALIZED VIEW kept_q" + query), 200, "durable view")
    # GET /v1/views lists without reading a view's rows: it does not keep one alive.
    listed = lambda: {v["name"]: v for v in expect(call("GET", f"{srv.http}/v1/views"), 200, "views").json()["views"]}
    views = wait_for("both views", lambda: (lambda v: v if {"tmp_q", "kept_q"} <= v.keys() else None)(listed()))
    assert views["tmp_q"].get("temporary") is True and "temporary" not in views["kept_q"], views
    # Read over REST for longer than the limit: it stays.
    deadline = harness.Deadline(IDLE_S + 1.5, "reading the temporary view")
    while not deadline.expired():
        expect(call("GET", f"{srv.http}/v1/views/tmp_q"), 200, "read")
        time.sleep(0.1)  # the pace of a reading client
    # Followed over a WebSocket for longer than the limit: it stays.

    async def follow():
        async with websockets.connect(f"ws://127.0.0.1:{srv.http_port}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "subscribe", "view": "tmp_q"}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert first["type"] == "subscribed", first
            end = time.monotonic() + IDLE_S + 1.5
            while time.monotonic() < end:
                try:
                    await asyncio.wait_for(ws.recv(), max(0.01, end - time.monotonic()))
                except asyncio.TimeoutError:
                    pass
            assert "tmp_q" in listed(), "a followed temporary view was dropped"

    asyncio.run(follow())
    assert "tmp_q" in listed(), "a read temporary view was dropped"
    # Nobody reads it any more: it goes, with its pipeline; the durable one stays.
    wait_for("the unread temporary view to go", lambda: "tmp_q" not in listed(), IDLE_S + 30)
    wait_for("its pipeline to go", lambda: call("GET", f"{srv.http}/v1/pipelines/tmp_q").status == 404)
    assert "kept_q" in listed()
    assert harness.metric(srv, "runnel_views_expired_total") >= 1
    expect(sql("DROP MATERIALIZED VIEW kept_q;"), 200, "drop")


def test_view_subscriptions(srv):
    url = f"ws://127.0.0.1:{srv.http_port}/v1/ws"

    async def run():
        results = []
        subs = []
        for i in range(20):
            started = asyncio.Event()
            subs.append(asyncio.create_task(view_subscriber(url, "clicks-per-user", results, started)))
            # New windows close while subscribers join: changes race with snapshots.
            await asyncio.to_thread(produce, srv, "clicks", clicks(9_001_000 + i * 1000, 100))
            await asyncio.to_thread(produce, srv, "clicks", closing(9_001_000 + (i + 2) * 1000))
            await asyncio.wait_for(started.wait(), 30)
        await asyncio.gather(*subs)
        return results

    results = asyncio.run(run())
    final = view_rows(srv, "clicks-per-user")
    assert len(results) == 20
    for i, rows in enumerate(results):
        assert rows == final, f"subscriber {i}: {rows} != {final}"


def test_view_over_sse(srv):
    """The same view as Server-Sent Events: subscribed, a row per key, snapshot_end."""
    want = view_rows(srv, "clicks-per-user")
    req = urllib.request.Request(f"{srv.http}/v1/views/clicks-per-user/events")
    rows, events = {}, []
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        event = None
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
                events.append(event)
            elif line.startswith("data: "):
                m = json.loads(line[6:])
                if event == "view_row":
                    rows[m["key"]] = m["row"]
                elif event == "snapshot_end":
                    assert m["rows"] == len(rows), m
                    break
    assert events[0] == "subscribed" and events[-1] == "snapshot_end", events
    assert rows == want, (rows, want)
    gw.expect_problem(call("GET", f"{srv.http}/v1/views/nope/events"), 404, "unknown-view", "Unknown view",
                      "view 'nope' does not exist", "/v1/views/nope/events")


def test_groups(srv):
    """A consumer group that committed offsets, listed and described with its lag."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "readers", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("clicks", 0, 5), TopicPartition("clicks", 1, 0)], asynchronous=False)
    c.close()
    groups = expect(call("GET", f"{srv.http}/v1/groups"), 200, "groups").json()["groups"]
    assert any(g["group"] == "readers" for g in groups), groups
    d = expect(call("GET", f"{srv.http}/v1/groups/readers"), 200, "describe").json()
    ends = {p["partition"]: p["log_end_offset"] for p in expect(call("GET", f"{srv.http}/v1/topics/clicks"), 200, "t").json()["partitions"]}
    by_part = {o["partition"]: o for o in d["offsets"]}
    assert by_part[0]["committed"] == 5 and by_part[0]["lag"] == ends[0] - 5, d
    assert by_part[1]["lag"] == ends[1], d
    assert d["lag"] == ends[0] - 5 + ends[1], d
    gw.expect_problem(call("GET", f"{srv.http}/v1/groups/nobody"), 404, "unknown-group", "Unknown group",
                      "group 'nobody' does not exist", "/v1/groups/nobody")


def test_survives_restart_and_delete(first):
    before = expect(call("GET", f"{first.http}/v1/pipelines/counts"), 200, "before").json()["checkpoints"]["last_id"]
    first.stop()
    srv = harness.RunnelServer(first.binary, name="gw-pipelines-again", shards=2, data_dir=first.data_dir).start()
    try:
        after_restart(srv, before)
    finally:
        srv.stop()


def after_restart(srv, before):
    p = wait_for("the pipeline running again", lambda: (lambda x: x if x["state"] == "running" else None)(
        expect(call("GET", f"{srv.http}/v1/pipelines/counts"), 200, "after").json()))
    assert p["checkpoints"]["last_id"] == 0 or p["checkpoints"]["last_id"] >= before, p
    # The view is back from the checkpoint at once.
    assert len(view_rows(srv, "clicks-per-user")) >= 5
    expect(call("DELETE", f"{srv.http}/v1/pipelines/counts"), 204, "delete")
    expect(call("GET", f"{srv.http}/v1/pipelines/counts"), 404, "gone")


def main():
    binary = harness.runnel_binary()
    with tempfile.TemporaryDirectory(prefix="gw-pipelines-") as d:
        with harness.RunnelServer(binary, name="gw-pipelines", shards=2, data_dir=os.path.join(d, "data"),
                                  extra_args=["--temporary-view-idle-ms", str(IDLE_S * 1000),
                                              "--dashboard-sample-interval-ms", "100"]) as srv:
            code = gw.run_tests("pipelines_test", [test_pipeline_lifecycle, test_pipeline_errors,
                                                    test_rerunning_a_script, test_sql_pipelines_run_on_every_shard,
                                                    test_unread_temporary_views_expire,
                                                    test_view_subscriptions,
                                                    test_view_over_sse, test_groups], srv)
            assert not [w for w in srv.warnings() if "error" in w], srv.warnings()
            code |= gw.run_tests("pipelines_test (restart)", [test_survives_restart_and_delete], srv)
    return code


if __name__ == "__main__":
    sys.exit(main())
