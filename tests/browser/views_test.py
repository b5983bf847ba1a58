#!/usr/bin/python3
"""The dashboard's pages in a real browser (headless Debian chromium, playwright-core), against a
server that needs a bearer token (--http-token): the page is opened as /?access_token=TOKEN and
must send the token itself.

Starts `runnel serve --demo` with the history sampled every 100 ms, creates topic `orders` (3
partitions) with keyed JSON records carrying headers, waits (on a condition, with a deadline)
until the server's history holds at least 20 samples, then runs views.mjs, which checks:
the throughput chart is filled from that history as soon as the page loads and a range can be
chosen; the topic browser finds a record by key and one by partition and offset and shows it
(value pretty-printed, headers); the demo pipeline's page draws its operator graph (SVG edges from the source on) and checkpoints,
and Stop then Restart work; the page of a pipeline held back by an empty partition says what it
waits for; the SQL page streams the rows of a SELECT on `orders` and shows a
bad query's error at its line and column.

Run: /usr/bin/python3 views_test.py --runnel PATH [--node PATH] [--npm PATH] [--screenshots DIR]
With --screenshots, a PNG of each page is written there (scripts/dashboard-screenshots uses it).
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness  # noqa: E402
from dashboard_test import arg, ensure_playwright  # noqa: E402

TOKEN = "dashboard-secret"


def call(method, url, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        data = r.read()
        return r.status, (json.loads(data) if data else None)


def wait_for(what, fn, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling interval of a condition with a deadline, not a synchronisation


def main():
    binary = harness.runnel_binary()
    node, npm = arg("--node", "node"), arg("--npm", "npm")
    shots = arg("--screenshots", "")
    ensure_playwright(npm)
    with harness.RunnelServer(binary, name="views", shards=2,
                              extra_args=["--demo", "--demo-rate", "500", "--http-token", TOKEN,
                                          "--dashboard-sample-interval-ms", "100"]) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        assert call("POST", f"{base}/v1/topics", {"name": "orders", "partitions": 3})[0] == 201
        records = [{"key": f"user-{i % 13}", "value": {"user_id": f"user-{i % 13}", "amount": i},
                    "headers": {"source": "web" if i % 2 else "app"}} for i in range(300)]
        assert call("POST", f"{base}/v1/topics/orders/records", {"records": records})[0] == 200
        # The history fills on the server's timer; the page must show it at load.
        # A view over a topic whose second partition never gets a record, with no idle timeout:
        # its pipeline waits, and its page must say for what.
        assert call("POST", f"{base}/v1/topics", {"name": "half", "partitions": 2})[0] == 201
        assert call("POST", f"{base}/v1/topics/half/records",
                    {"records": [{"partition": 0, "value": {"k": "a", "ts": 1_700_000_000_000}}]})[0] == 200
        assert call("POST", f"{base}/v1/sql", {"sql": (
            "CREATE TABLE half (k STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'topic', "
            "'topic' = 'half', 'format' = 'json');\nCREATE MATERIALIZED VIEW held AS SELECT window_start, COUNT(*) AS n "
            "FROM TABLE(TUMBLE(TABLE half, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY window_start, window_end;")})[0] == 200
        wait_for("20 history samples with orders in them", lambda: (
            lambda h: len(h["times"]) >= 20 and any(s["name"] == "orders" for s in h["series"]))(
                call("GET", f"{base}/v1/history?range=5m")[1]))
        p = subprocess.run([node, os.path.join(HERE, "views.mjs"), f"{base}/?access_token={TOKEN}", "orders",
                            "demo-bids-per-channel", "held", shots],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=150)
        out = p.stdout.decode(errors="replace")
        print(out, flush=True)
        assert p.returncode == 0, f"dashboard pages check failed ({p.returncode})"
        # The push query's temporary view was dropped by Stop.
        views = call("GET", f"{base}/v1/views")[1]["views"]
        assert not [v for v in views if v["name"].startswith("dashboard_")], views
    print("views_test: passed")


if __name__ == "__main__":
    main()
