#!/usr/bin/python3
"""SQL pipelines through `runnel sql`, end to end.

A `runnel serve` holds a topic of JSON click events (3 partitions, out of order within the
watermark bound). `runnel sql FILE` submits CREATE TABLE statements and an INSERT INTO with a
TUMBLE window; the pipeline writes exactly-once to a topic with Flink's JSON encoding. The
server is restarted half-way; a read_committed reader then sees every window once, with the
counts and sums Python computes from the same events. Also: `--explain` prints the plan and
starts nothing, a bad script exits 1 with line:column and a caret, SHOW JOBS and STOP JOB
work from stdin, and a Nexmark table feeds a pipeline (46 of every 50 events are bids), also
as two instances (`SET 'parallelism.default' = '2'`) counting bids per channel exactly once.
A materialized view of the same windows is served over HTTP, survives a restart and is
dropped; the interactive shell (`runnel sql` with no file) shows a SELECT's rows as they
change and drops its temporary view when stopped.

Run: /usr/bin/python3 sql_pipeline_test.py --runnel PATH
"""
import argparse
import datetime
import json
import os
import random
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict

import harness
import queue
import threading
from confluent_kafka import Producer

PARTITIONS = 3
EVENTS = 20000
USERS = 37

SCRIPT = """
-- clicks per user per second
CREATE TABLE clicks (
  `user` STRING,
  bytes BIGINT,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'topic', 'topic' = 'clicks', 'format' = 'json');

CREATE TABLE per_user (
  `user` STRING,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  clicks BIGINT,
  total BIGINT,
  PRIMARY KEY (`user`) NOT ENFORCED
) WITH ('connector' = 'topic', 'topic' = 'clicks-per-user', 'sink.delivery-guarantee' = 'exactly-once',
        'sink.partitions' = '2');

SET 'pipeline.name' = 'clicks';
INSERT INTO per_user
SELECT `user`, window_start, window_end, COUNT(*) AS clicks, SUM(bytes) AS total
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY `user`, window_start, window_end;
"""

BAD_SCRIPT = """CREATE TABLE clicks (`user` STRING, ts TIMESTAMP(3)) WITH ('connector' = 'topic', 'topic' = 'clicks');
CREATE TABLE sink1 (`user` STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink1 SELECT usr FROM clicks;
"""

CLICKS_TABLE = SCRIPT[:SCRIPT.index("CREATE TABLE per_user")]

VIEW = CLICKS_TABLE + """
CREATE MATERIALIZED VIEW per_second AS
SELECT `user`, window_start, COUNT(*) AS clicks, SUM(bytes) AS total
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY `user`, window_start, window_end;
"""

# An updating aggregate: each new click retracts the user's previous count.
TOTALS = CLICKS_TABLE + """
CREATE MATERIALIZED VIEW per_user_total AS
SELECT `user`, COUNT(*) AS clicks, SUM(bytes) AS total FROM clicks GROUP BY `user`;
"""

SHELL_QUERY = """SELECT window_start, COUNT(*) AS clicks
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' SECOND))
WHERE `user` = 'u1'
GROUP BY window_start, window_end;
"""

NEXMARK = """
CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, dateTime TIMESTAMP(3), extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'event' = 'bid', 'events.num' = '50000');
CREATE TABLE nx (auction BIGINT, bidder BIGINT, price_eur DOUBLE, dateTime TIMESTAMP(3))
WITH ('connector' = 'topic', 'topic' = 'nexmark-q1', 'sink.delivery-guarantee' = 'at-least-once');
SET 'pipeline.name' = 'nexmark-q1';
INSERT INTO nx SELECT auction, bidder, 0.908 * price, dateTime FROM bid;
"""

# Two instances, each generating every other event, exchanging bids by channel before the window.
NEXMARK_PARALLEL = NEXMARK[:NEXMARK.index("CREATE TABLE nx")] + """
CREATE TABLE per_channel (channel STRING, window_start TIMESTAMP(3), bids BIGINT)
WITH ('connector' = 'topic', 'topic' = 'nexmark-per-channel');
SET 'parallelism.default' = '2';
SET 'pipeline.name' = 'nexmark-parallel';
INSERT INTO per_channel SELECT channel, window_start, COUNT(*)
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY channel, window_start, window_end;
"""


def sql_ts(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def runnel_sql(binary, srv, *args, stdin=None):
    return subprocess.run([binary, "sql", *args, "--http", f"127.0.0.1:{srv.http_port}"], input=stdin,
                          capture_output=True, text=True, timeout=60)


def read_all(bootstrap, topic, partitions, committed=True):
    return [(k, json.loads(v)) for _, k, v in harness.read_to_end(bootstrap, topic, partitions, committed)]


def produce(bootstrap, events):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for i, (user, ms, size) in enumerate(events):
        p.produce("clicks", value=json.dumps({"user": user, "bytes": size, "ts": sql_ts(ms)}),
                  partition=i % PARTITIONS)
    assert p.flush(30) == 0


def http_status(method, url, body=None):
    try:
        http(method, url, body)
        return 200
    except urllib.error.HTTPError as e:
        return e.code


def view_rows(srv, name):
    rows = http("GET", f"{srv.http}/v1/views/{name}")["rows"]
    return {(x["row"]["user"], x["row"]["window_start"]): (x["row"]["clicks"], x["row"]["total"]) for x in rows}


def check_totals(args, srv, totals):
    """A materialized view of an unwindowed GROUP BY: the changelog applied by key."""
    r = runnel_sql(args.runnel, srv, "-", stdin=TOTALS)
    assert r.returncode == 0 and "materialized view per_user_total created" in r.stdout, (r.stdout, r.stderr)

    def rows():
        try:
            v = http("GET", f"{srv.http}/v1/views/per_user_total")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None  # between the old view and its replacement
            raise
        assert v["key"] == ["user"], v["key"]
        return {x["row"]["user"]: (x["row"]["clicks"], x["row"]["total"]) for x in v["rows"]}
    harness.wait_until(lambda: rows() == totals, 60, "every user's total in the view")
    # The script sent again with OR REPLACE and a changed query: the view starts afresh and
    # fills with the new query's rows (every total doubled).
    again = TOTALS.replace("CREATE MATERIALIZED VIEW", "CREATE OR REPLACE MATERIALIZED VIEW").replace(
        "SUM(bytes) AS total", "SUM(bytes * 2) AS total")
    r = runnel_sql(args.runnel, srv, "-", stdin=again)
    assert r.returncode == 0 and "materialized view per_user_total replaced" in r.stdout, (r.stdout, r.stderr)
    doubled = {u: (n, t * 2) for u, (n, t) in totals.items()}
    harness.wait_until(lambda: rows() == doubled, 60, "every user's doubled total in the replaced view")
    r = runnel_sql(args.runnel, srv, "-", stdin="DROP MATERIALIZED VIEW per_user_total;")
    assert r.returncode == 0, r.stderr


def check_view(args, srv, data, want):
    """CREATE MATERIALIZED VIEW: rows over HTTP, kept across a restart, then DROP. Returns the server."""
    r = runnel_sql(args.runnel, srv, "-", stdin=VIEW)
    assert r.returncode == 0 and "materialized view per_second created" in r.stdout, (r.stdout, r.stderr)
    harness.wait_until(lambda: len(view_rows(srv, "per_second")) >= len(want), 60, "every window in the view")
    got = view_rows(srv, "per_second")
    wrong = [(k, got.get(k), v) for k, v in want.items() if got.get(k) != v]
    assert not wrong and len(got) == len(want), f"{len(wrong)} wrong rows (key, got, want), e.g. {wrong[:3]}"
    # A row is addressed by the values it shows: its key is them joined with '|', and the key
    # columns as query parameters find it; some of them find every row that matches.
    v = http("GET", f"{srv.http}/v1/views/per_second")
    first = v["rows"][0]
    shown = [str(first["row"][c]) for c in v["key"]]
    assert first["key"] == "|".join(shown), (first, v["key"])
    assert http("GET", f"{srv.http}/v1/views/per_second/rows/{urllib.parse.quote(first['key'])}") == first["row"]
    query = urllib.parse.urlencode({c: first["row"][c] for c in v["key"]})
    assert http("GET", f"{srv.http}/v1/views/per_second/rows?{query}")["rows"] == [first]
    user = first["row"]["user"]
    same_user = http("GET", f"{srv.http}/v1/views/per_second/rows?user={urllib.parse.quote(user)}")["rows"]
    assert same_user == [r for r in v["rows"] if r["row"]["user"] == user] and first in same_user, same_user
    assert http_status("GET", f"{srv.http}/v1/views/per_second/rows?nope=1") == 400
    harness.wait_until(lambda: http("GET", f"{srv.http}/v1/pipelines/per_second")["checkpoints"]["completed"] >= 1,
                       30, "a checkpoint of the view's pipeline")
    srv.stop()
    srv = harness.RunnelServer(args.runnel, name="sql", data_dir=os.path.join(data, "server"))
    srv.start()
    harness.wait_until(lambda: http_status("GET", f"{srv.http}/v1/views/per_second") == 200 and
                       view_rows(srv, "per_second") == got, 30, "the view back after a restart")
    r = runnel_sql(args.runnel, srv, "-", stdin="SHOW MATERIALIZED VIEWS;")
    assert r.returncode == 0 and "per_second" in r.stdout, (r.stdout, r.stderr)
    r = runnel_sql(args.runnel, srv, "-", stdin="DROP MATERIALIZED VIEW per_second;")
    assert r.returncode == 0 and "dropped" in r.stdout, (r.stdout, r.stderr)
    assert http_status("GET", f"{srv.http}/v1/views/per_second") == 404
    assert all(p["id"] != "per_second" for p in http("GET", f"{srv.http}/v1/pipelines")["pipelines"])
    r = runnel_sql(args.runnel, srv, "-", stdin="DROP MATERIALIZED VIEW per_second;")
    assert r.returncode == 1 and "does not exist" in r.stderr, (r.returncode, r.stderr)
    return srv


def check_shell(args, srv, want_windows):
    """The interactive shell: a SELECT's rows are redrawn until Enter; its view is then gone."""
    sh = subprocess.Popen([args.runnel, "sql", "--http", f"127.0.0.1:{srv.http_port}"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in sh.stdout], daemon=True).start()
    seen = []

    def saw(text):
        while True:
            try:
                seen.append(lines.get_nowait())
            except queue.Empty:
                break
        return any(text in l for l in seen)
    try:
        sh.stdin.write(CLICKS_TABLE + SHELL_QUERY)
        sh.stdin.flush()
        harness.wait_until(lambda: saw(f"-- {want_windows} rows,"), 60,
                           f"the shell showing all {want_windows} windows of u1")
        assert any(l.startswith("window_start") and "clicks" in l for l in seen), seen[:5]
        assert http("GET", f"{srv.http}/v1/views")["views"] != []
        sh.stdin.write("\n")
        sh.stdin.flush()
        harness.wait_until(lambda: saw("query stopped"), 30, "the push query to stop")
        assert http("GET", f"{srv.http}/v1/views")["views"] == []
        sh.stdin.write("quit;\n")
        sh.stdin.flush()
        assert sh.wait(timeout=30) == 0, sh.stderr.read()
    finally:
        if sh.poll() is None:
            sh.kill()
            sh.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runnel", default=harness.runnel_binary())
    args = ap.parse_args()
    rng = random.Random(5)
    base = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC
    events = [(f"u{rng.randrange(USERS)}", base + i * 2 + rng.randrange(400), rng.randrange(1000)) for i in range(EVENTS)]
    expected = defaultdict(lambda: [0, 0])
    for user, ms, size in events:
        w = expected[(user, sql_ts(ms // 1000 * 1000))]
        w[0] += 1
        w[1] += size
    closing = [("end", base + EVENTS * 2 + 60_000, 0) for _ in range(PARTITIONS)]  # one per partition

    data = tempfile.mkdtemp(prefix="runnel-sql-test-")
    script = os.path.join(data, "clicks.sql")
    bad = os.path.join(data, "bad.sql")
    with open(script, "w") as f:
        f.write(SCRIPT)
    with open(bad, "w") as f:
        f.write(BAD_SCRIPT)
    passed = 0
    srv = harness.RunnelServer(args.runnel, name="sql", data_dir=os.path.join(data, "server"))
    try:
        srv.start()
        http("POST", f"{srv.http}/v1/topics", {"name": "clicks", "partitions": PARTITIONS})

        # --explain plans and starts nothing.
        r = runnel_sql(args.runnel, srv, script, "--explain")
        assert r.returncode == 0, r.stderr
        assert "window" in r.stdout and "watermark" in r.stdout, r.stdout
        assert http("GET", f"{srv.http}/v1/pipelines")["pipelines"] == []
        passed += 1

        # A mistake: exit 1, the line and column, a caret under the column name.
        r = runnel_sql(args.runnel, srv, bad)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "line 3:26" in r.stderr and "usr" in r.stderr and "^" in r.stderr, r.stderr
        passed += 1

        # A misspelled option of a materialized view's table: refused at the option in the
        # user's own text, naming the closest option, and nothing starts.
        typo = os.path.join(data, "typo.sql")
        with open(typo, "w") as f:
            f.write("CREATE TABLE c (usr STRING)\n"
                    "WITH ('connector' = 'topic', 'topic' = 'clicks', 'scan.startup.mod' = 'latest-offset');\n"
                    "CREATE MATERIALIZED VIEW per_user AS SELECT usr, COUNT(*) AS n FROM c GROUP BY usr;\n")
        r = runnel_sql(args.runnel, srv, typo)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "line 2:50: table c: option 'scan.startup.mod' is not one the topic connector reads; " \
               "did you mean 'scan.startup.mode'?" in r.stderr, r.stderr
        assert http("GET", f"{srv.http}/v1/pipelines")["pipelines"] == []
        passed += 1

        # An error found only when the pipeline starts (the connector's own check) points at
        # the user's line and column too, not into the script the server stores: the INSERT
        # is on line 5, after a blank line, and `clicks` starts at column 39.
        late = os.path.join(data, "late.sql")
        with open(late, "w") as f:
            f.write("CREATE TABLE clicks (user_id STRING, url STRING) WITH ('connector' = 'topic', 'topic' = 'clicks',\n"
                    "  'format' = 'json', 'scan.startup.mode' = 'timestamp');\n"
                    "CREATE TABLE out_t (user_id STRING) WITH ('connector' = 'topic', 'topic' = 'out', 'format' = 'json');\n"
                    "\n"
                    "INSERT INTO out_t SELECT user_id FROM clicks;\n")
        r = runnel_sql(args.runnel, srv, late)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "line 5:39: planner: table clicks: 'scan.startup.mode' = 'timestamp' needs " \
               "'scan.startup.timestamp-millis'" in r.stderr, r.stderr
        assert "INSERT INTO out_t SELECT user_id FROM clicks;" in r.stderr, r.stderr
        assert http("GET", f"{srv.http}/v1/pipelines")["pipelines"] == []
        passed += 1

        r = runnel_sql(args.runnel, srv, script)
        assert r.returncode == 0, r.stderr
        assert "pipeline clicks started" in r.stdout, r.stdout
        produce(srv.bootstrap, events[:EVENTS // 2])
        harness.wait_until(lambda: http("GET", f"{srv.http}/v1/pipelines/clicks")["checkpoints"]["completed"] >= 2,
                           30, "two checkpoints of the SQL pipeline")
        srv.stop()
        # A new server on the same data directory: the pipeline comes back from its checkpoint.
        srv = harness.RunnelServer(args.runnel, name="sql", data_dir=os.path.join(data, "server"))
        srv.start()
        produce(srv.bootstrap, events[EVENTS // 2:] + closing)
        want = {(u, w): tuple(v) for (u, w), v in expected.items()}

        def complete():
            got = read_all(srv.bootstrap, "clicks-per-user", 2)
            return len(got) >= len(want)
        harness.wait_until(complete, 60, "every window in the output")
        # A few more checkpoints: nothing may be appended again.
        done = http("GET", f"{srv.http}/v1/pipelines/clicks")["checkpoints"]["completed"]
        harness.wait_until(lambda: http("GET", f"{srv.http}/v1/pipelines/clicks")["checkpoints"]["completed"] >= done + 3,
                           30, "three more checkpoints")
        rows = read_all(srv.bootstrap, "clicks-per-user", 2)
        seen = Counter((r["user"], r["window_start"]) for _, r in rows)
        dup = [k for k, n in seen.items() if n > 1]
        got = {(r["user"], r["window_start"]): (r["clicks"], r["total"]) for _, r in rows}
        missing = [k for k in want if k not in got]
        wrong = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]]
        extra = [k for k in got if k not in want]
        assert not dup, f"{len(dup)} windows twice, e.g. {dup[:3]}"
        assert not missing, f"{len(missing)} windows missing, e.g. {missing[:3]}"
        assert not wrong, f"{len(wrong)} wrong (window, got, want), e.g. {wrong[:3]}"
        assert not extra, f"{len(extra)} unexpected windows, e.g. {extra[:3]}"
        assert all(k.decode() == r["user"] for k, r in rows), "records are keyed by the sink's primary key"
        assert all(r["window_end"].endswith(".000") and len(r["window_end"]) == 23 for _, r in rows), rows[0]
        passed += 1

        srv = check_view(args, srv, data, want)
        passed += 1
        totals = defaultdict(lambda: [0, 0])
        for user, _, size in events + closing:
            totals[user][0] += 1
            totals[user][1] += size
        check_totals(args, srv, {u: tuple(v) for u, v in totals.items()})
        passed += 1
        check_shell(args, srv, sum(1 for (u, _) in want if u == "u1"))
        passed += 1

        # SHOW JOBS and STOP JOB from stdin.
        r = runnel_sql(args.runnel, srv, "-", stdin="SHOW JOBS;")
        assert r.returncode == 0 and "clicks" in r.stdout and "running" in r.stdout, (r.stdout, r.stderr)
        r = runnel_sql(args.runnel, srv, "-", stdin="STOP JOB 'clicks';")
        assert r.returncode == 0, r.stderr
        assert http("GET", f"{srv.http}/v1/pipelines")["pipelines"] == []
        r = runnel_sql(args.runnel, srv, "-", stdin="STOP JOB 'clicks';")
        assert r.returncode == 1 and "does not exist" in r.stderr, (r.returncode, r.stderr)
        # SHOW TABLES lists the server's catalog: the tables earlier scripts declared, kept
        # across the restart (the failed scripts above left none).
        r = runnel_sql(args.runnel, srv, "-", stdin=CLICKS_TABLE + "SHOW TABLES;")
        assert r.returncode == 0 and r.stdout.splitlines() == ["table clicks declared", "clicks", "per_user"], \
            (r.stdout, r.stderr)
        # SHOW FUNCTIONS lists the function registry: signatures, and whether pipelines run them.
        r = runnel_sql(args.runnel, srv, "-", stdin="SHOW FUNCTIONS;")
        assert r.returncode == 0, r.stderr
        lines = [l.split() for l in r.stdout.splitlines()]
        assert ["REGEXP_EXTRACT(text,", "text[,", "integer])", "yes"] in lines, r.stdout
        assert ["INITCAP(text)", "not", "yet"] in lines, r.stdout
        passed += 1

        # The Nexmark generator as a table: 50,000 events, of which 46 in 50 are bids.
        r = runnel_sql(args.runnel, srv, "-", stdin=NEXMARK)
        assert r.returncode == 0, r.stderr
        harness.wait_until(lambda: len(read_all(srv.bootstrap, "nexmark-q1", 1, committed=False)) >= 46000, 60,
                           "every bid of the Nexmark table")
        rows = read_all(srv.bootstrap, "nexmark-q1", 1, committed=False)
        assert len(rows) == 46000, len(rows)
        assert all(abs(r["price_eur"] - 0.908 * round(r["price_eur"] / 0.908)) < 1e-6 for _, r in rows[:100])
        passed += 1

        # The same bids counted per channel by two instances: the plan exchanges by channel, and
        # every bid is counted once in one row per (channel, window).
        r = runnel_sql(args.runnel, srv, "-", "--explain", stdin=NEXMARK_PARALLEL)
        assert r.returncode == 0 and "exchange by channel (parallelism 2)" in r.stdout, (r.stdout, r.stderr)
        r = runnel_sql(args.runnel, srv, "-", stdin=NEXMARK_PARALLEL)
        assert r.returncode == 0, r.stderr
        job = [j for j in http("GET", f"{srv.http}/v1/pipelines")["pipelines"] if j["id"] == "nexmark-parallel"]
        assert job and job[0]["parallelism"] == 2, job

        def counted():
            return sum(v["bids"] for _, v in read_all(srv.bootstrap, "nexmark-per-channel", 1))
        harness.wait_until(lambda: counted() >= 46000, 60, "every bid counted by the two instances")
        rows = read_all(srv.bootstrap, "nexmark-per-channel", 1)
        windows = Counter((v["channel"], v["window_start"]) for _, v in rows)
        assert counted() == 46000 and max(windows.values()) == 1, (counted(), windows.most_common(3))
        # A parallelism that is not a number of instances is refused at the SET.
        r = runnel_sql(args.runnel, srv, "-", stdin="SET 'parallelism.default' = 'many';")
        assert r.returncode == 1 and "line 1:1: 'parallelism.default' is a number of instances from 1 to 256, " \
            "not 'many'" in r.stderr, (r.returncode, r.stderr)
        passed += 1
        srv.stop()
    finally:
        if srv.alive():
            srv.stop(check=False)
        shutil.rmtree(data, ignore_errors=True)
    harness.summary("sql_pipeline_test", passed, 0)


if __name__ == "__main__":
    main()
