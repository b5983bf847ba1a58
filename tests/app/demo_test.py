#!/usr/bin/python3
"""`runnel serve --demo` (what `make run` starts): within seconds the topic demo-bids grows and
the engine pipeline's 5 s windows of bids per channel arrive in demo-bids-per-channel, one row
per named channel and window, with counts that add up to the bids of those channels.

Run: /usr/bin/python3 demo_test.py --runnel PATH
"""
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))
import harness  # noqa: E402

CHANNELS = {"Google", "Facebook", "Baidu", "Apple"}


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def main():
    binary = harness.runnel_binary()
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
            assert r["window_end"] - r["window_start"] == 5000, r
            assert r["count"] > 0 and r["avg_price"] > 0, r
        bids = sum(p["log_end_offset"] for p in get(f"{base}/v1/topics/demo-bids")["partitions"])
        assert bids > 0, "no bids in demo-bids"
        print(f"demo: {len(rows)} window rows over {len(windows)} windows; {bids} bids; first window {in_first}")


if __name__ == "__main__":
    main()
