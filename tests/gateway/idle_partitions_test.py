#!/usr/bin/python3
"""Windowed results over data already in a topic whose second partition never got a record.

A topic of two partitions holds records on partition 0 only, spanning eight 5 s windows of
event time. With `scan.watermark.idle-timeout` (or the template's `idle_ms`) of IDLE_MS, the
empty partition stops holding the watermark back after that long, whether or not it ever had
data, so each of these gets its closed windows within IDLE_MS plus one second of running:
(a) a windowed SELECT in the `runnel sql` shell (a temporary materialized view),
(b) a materialized view created through POST /v1/sql,
(c) a `windowed_count` pipeline with a view.
Without an idle timeout the pipeline waits, and says for what (`waiting_for`).

Run: /usr/bin/python3 idle_partitions_test.py --runnel PATH
"""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, harness  # noqa: E402

IDLE_MS = 1000
T0 = 1_700_000_000_000  # a multiple of 5000: windows start at T0 + 5000 k
CLOSED = 7              # rows at T0 … T0 + 39 s; watermark T0 + 39 s − 1 s − 1 ms closes 7 windows


def table(name, idle):
    # Temporary: each test declares `bids` its own way, which the server's catalog would refuse.
    opt = f", 'scan.watermark.idle-timeout' = '{idle}'" if idle else ""
    return (f"CREATE TEMPORARY TABLE {name} (k STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
            f"WITH ('connector' = 'topic', 'topic' = 'idle', 'format' = 'json'{opt});\n")


SELECT = ("SELECT window_start, window_end, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), "
          "INTERVAL '5' SECOND)) GROUP BY window_start, window_end")


def pipeline(srv, pid):
    r = call("GET", f"{srv.http}/v1/pipelines/{pid}")
    return r.json() if r.status == 200 else None


def view_rows(srv, name):
    r = call("GET", f"{srv.http}/v1/views/{name}")
    return r.json()["rows"] if r.status == 200 else []


def wait_running(srv, pid):
    d = harness.Deadline(30, f"pipeline {pid} running")
    while True:
        p = pipeline(srv, pid)
        if p and p["state"] == "running":
            return time.monotonic()
        d.check(f"({p})")
        time.sleep(0.02)


def wait_rows(srv, view, what, started, done=lambda rows: len(rows) >= CLOSED):
    """Waits until `view`'s rows satisfy `done`, at most IDLE_MS + 1 s after `started`."""
    budget = IDLE_MS / 1000 + 1.0
    d = harness.Deadline(budget - (time.monotonic() - started), what)
    while True:
        rows = view_rows(srv, view)
        if done(rows):
            return time.monotonic() - started
        d.check(f"({len(rows)} rows: {rows[:3]})")
        time.sleep(0.02)


def setup(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "idle", "partitions": 2}), 201, "create topic")
    records = [{"partition": 0, "value": {"k": f"k{i % 3}", "ts": T0 + i * 1000}} for i in range(40)]
    expect(call("POST", f"{srv.http}/v1/topics/idle/records?acks=all", {"records": records}), 200, "produce")


def test_no_idle_timeout_says_what_it_waits_for(srv):
    sql = table("bids", None) + f"CREATE MATERIALIZED VIEW held AS {SELECT};"
    expect(call("POST", f"{srv.http}/v1/sql", sql.encode(), {"Content-Type": "text/plain"}), 200, "create view")
    d = harness.Deadline(30, "waiting_for on the pipeline without idle timeout")
    while True:
        p = pipeline(srv, "held")
        if p and p.get("waiting_for", "").startswith("partition idle/1: no data yet"):
            break
        d.check(f"({p})")
        time.sleep(0.05)
    assert view_rows(srv, "held") == [], "windows closed although partition 1 holds the watermark"
    # /metrics says it too, on the pipeline's info series (what Grafana and alerts read).
    metrics = call("GET", f"{srv.http}/metrics").body.decode()
    info = [l for l in metrics.splitlines() if l.startswith("runnel_job_info{") and 'pipeline="held"' in l]
    assert len(info) == 1 and 'reason="partition idle/1: no data yet' in info[0], info
    expect(call("POST", f"{srv.http}/v1/sql", b"DROP MATERIALIZED VIEW held;", {"Content-Type": "text/plain"}),
           200, "drop")


def test_materialized_view(srv):
    sql = table("bids", f"{IDLE_MS} ms") + f"CREATE MATERIALIZED VIEW mv_idle AS {SELECT};"
    expect(call("POST", f"{srv.http}/v1/sql", sql.encode(), {"Content-Type": "text/plain"}), 200, "create view")
    took = wait_rows(srv, "mv_idle", "materialized view", wait_running(srv, "mv_idle"))
    rows = sorted(view_rows(srv, "mv_idle"), key=lambda r: r["row"]["window_start"])
    assert [r["row"]["n"] for r in rows[:CLOSED]] == [5] * CLOSED, rows
    assert "waiting_for" not in pipeline(srv, "mv_idle"), pipeline(srv, "mv_idle")
    print(f"  materialized view: {len(rows)} windows {took:.2f} s after running")


def test_windowed_count_template(srv):
    job = {"id": "idle-counts", "template": "windowed_count",
           "params": {"input": "idle", "output": "idle-counts", "key": "k", "time": "ts", "window_ms": 5000,
                      "idle_ms": IDLE_MS, "view": "idle-counts-view"}}
    expect(call("POST", f"{srv.http}/v1/pipelines", job), 201, "create pipeline")
    last_closed = T0 + CLOSED * 5000

    def done(rows):
        return len(rows) == 3 and all(r["row"]["window_end"] == harness.sql_time(last_closed) for r in rows)

    took = wait_rows(srv, "idle-counts-view", "windowed_count: each key's window up to the last closed",
                     wait_running(srv, "idle-counts"), done)
    print(f"  windowed_count: 3 keys' latest windows {took:.2f} s after running")


def test_shell_select(srv):
    """The shell runs the SELECT as a temporary view and prints '-- N rows' as it changes."""
    shell = subprocess.Popen([BINARY, "sql", "--http", f"127.0.0.1:{srv.http_port}"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    cond = threading.Condition()

    def read():
        for line in shell.stdout:
            with cond:
                lines.append(line.rstrip("\n"))
                cond.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        shell.stdin.write(table("bids", f"{IDLE_MS} ms") + SELECT + ";\n")
        shell.stdin.flush()
        started = None
        d = harness.Deadline(30, "the shell's temporary pipeline running")
        while started is None:
            for p in call("GET", f"{srv.http}/v1/pipelines").json()["pipelines"]:
                if p["id"].startswith("shell_") and p["state"] == "running":
                    started = time.monotonic()
            d.check("(" + " / ".join(lines[-3:]) + ")")
            time.sleep(0.02)
        d = harness.Deadline(IDLE_MS / 1000 + 1.0 - (time.monotonic() - started), f"{CLOSED} rows in the shell")
        with cond:
            while not any(l.startswith(f"-- {CLOSED} rows") for l in lines):
                d.check("(" + " / ".join(lines[-3:]) + ")")
                cond.wait(0.05)
        print(f"  shell SELECT: {CLOSED} windows {time.monotonic() - started:.2f} s after running")
        shell.stdin.write("\nquit;\n")
        shell.stdin.flush()
        shell.stdin.close()
        assert shell.wait(timeout=30) == 0, lines
        left = [t["name"] for t in call("GET", f"{srv.http}/v1/topics").json()["topics"] if t["name"].startswith("shell_")]
        assert not left, f"the shell's SELECT left topics behind: {left}"
        left = [p["id"] for p in call("GET", f"{srv.http}/v1/pipelines").json()["pipelines"] if p["id"].startswith("shell_")]
        assert not left, f"the shell's SELECT left pipelines behind: {left}"
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    reader.join(timeout=10)


BINARY = None


def main():
    global BINARY
    binary = BINARY = harness.runnel_binary()
    with harness.RunnelServer(binary, name="idle", shards=2) as srv:
        setup(srv)
        return gw.run_tests("idle_partitions_test",
                            [test_no_idle_timeout_says_what_it_waits_for, test_materialized_view,
                             test_windowed_count_template, test_shell_select], srv)


if __name__ == "__main__":
    sys.exit(main())
