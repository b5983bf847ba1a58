#!/usr/bin/python3
"""`runnel serve --demo` (what `make run` starts): within seconds the topic demo-bids grows and
the engine pipeline's 5 s windows of bids per channel arrive in demo-bids-per-channel, one row
per named channel and window, with counts that add up to the bids of those channels.

Then the same data directory is served again, after a SIGTERM and after a SIGKILL: each time the
pipeline is `running` again and its view gets windows newer than any before the restart.

Run: /usr/bin/python3 demo_test.py --runnel PATH
"""
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))
import harness  # noqa: E402

CHANNELS = {"Google", "Facebook", "Baidu", "Apple"}


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def first_run(binary):
    with harness.RunnelServer(binary, name="demo", shards=2, extra_args=["--demo", "--demo-rate", "5000"]) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        deadline = harness.Deadline(40, "two closed windows of bids per channel")
        rows = []
        while True:
            d = get(f"{base}/v1/topics/demo-bids-per-channel/records?partition=0&offset=0&limit=1000")
            rows = [r["value"] for r in d["records"]]
            windows = {r["window_start"] for r in rows}
            if len(windows) >= 2:
                break
            deadline.check(f"(rows so far: {rows[:4]})")
            time.sleep(0.2)  # polling a condition with a deadline
        first = min(windows)
        in_first = [r for r in rows if r["window_start"] == first]
        assert {r["channel"] for r in in_first} == CHANNELS, in_first
        for r in rows:
            assert harness.epoch_ms(r["window_end"]) - harness.epoch_ms(r["window_start"]) == 5000, r
            assert r["count"] > 0 and r["avg_price"] > 0, r
        bids = sum(p["log_end_offset"] for p in get(f"{base}/v1/topics/demo-bids")["partitions"])
        assert bids > 0, "no bids in demo-bids"
        print(f"demo: {len(rows)} window rows over {len(windows)} windows; {bids} bids; first window {in_first}")


def newest_window_end(base):
    """The newest window_end in the demo's view, or None while the view is missing or empty."""
    try:
        rows = get(f"{base}/v1/views/demo-bids-per-channel")["rows"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    ends = [json.loads(r["row"])["window_end"] if isinstance(r["row"], str) else r["row"]["window_end"]
            for r in rows]
    return max(ends) if ends else None


def wait_for_fresh_rows(srv, after, what):
    """Waits until the pipeline runs and its view holds a window ending after `after`; returns
    the newest window_end."""
    base = srv.http
    deadline = harness.Deadline(60, what)
    while True:
        p = get(f"{base}/v1/pipelines/demo-bids-per-channel")
        end = newest_window_end(base)
        # Counters may start again at 0, but the watermark lag shows once data flows.
        if p["state"] == "running" and end is not None and (after is None or end > after) and "watermark_lag_ms" in p:
            assert "error" not in p, p
            return end
        assert p["state"] in ("starting", "recovering", "running"), f"{what}: pipeline is {p}"
        deadline.check(f"(pipeline {p['state']}, newest window_end {end}, before {after})")
        time.sleep(0.2)  # polling a condition with a deadline


def restarts(binary):
    """`make run` twice on one data directory: after SIGTERM and after SIGKILL the demo lives."""
    tmp = tempfile.mkdtemp(prefix="demo-restart-")
    data = os.path.join(tmp, "data")
    args = ["--demo", "--demo-rate", "2000"]
    try:
        srv = harness.RunnelServer(binary, name="demo-1", shards=2, extra_args=args, data_dir=data).start()
        try:
            end1 = wait_for_fresh_rows(srv, None, "the first run's view")
        finally:
            srv.stop()
        srv = harness.RunnelServer(binary, name="demo-2", shards=2, extra_args=args, data_dir=data).start()
        try:
            end2 = wait_for_fresh_rows(srv, end1, "fresh windows after a SIGTERM restart")
            assert "unknown template" not in srv.log(), srv.log_tail()
        except BaseException:
            sys.stderr.write(srv.log_tail() + "\n")
            raise
        finally:
            srv._kill()  # SIGKILL: no flush, no shutdown
            srv.stop(check=False)
        with harness.RunnelServer(binary, name="demo-3", shards=2, extra_args=args, data_dir=data) as srv:
            end3 = wait_for_fresh_rows(srv, end2, "fresh windows after a SIGKILL restart")
            assert "unknown template" not in srv.log(), srv.log_tail()
        print(f"demo restarts: newest window_end {end1} -> {end2} (SIGTERM) -> {end3} (SIGKILL)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    binary = harness.runnel_binary()
    first_run(binary)
    restarts(binary)


if __name__ == "__main__":
    main()
