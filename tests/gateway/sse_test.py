#!/usr/bin/python3
"""Server-Sent Events (GET /v1/topics/{name}/events) against `runnel serve`, with urllib and
curl: history from the earliest offset, live records, a reconnect with Last-Event-ID that
resumes exactly after the last event seen, and bad requests as problem JSON.

Run: /usr/bin/python3 sse_test.py --runnel PATH
"""

import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, expect_problem, harness  # noqa: E402


class EventStream:
    """Reads `text/event-stream` events from an open response."""

    def __init__(self, url, headers=None):
        self.resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30)

    def next(self):
        ev = {}
        while True:
            line = self.resp.readline()
            assert line, "the event stream ended"
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in ev:
                    return ev
                ev = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            ev[name] = value

    def records(self, n):
        out = []
        while len(out) < n:
            ev = self.next()
            assert ev.get("event") == "record", ev
            out.append((ev["id"], json.loads(ev["data"])))
        return out

    def close(self):
        self.resp.close()


def produce(srv, topic, records):
    return expect(call("POST", f"{srv.http}/v1/topics/{topic}/records", {"records": records}), 200, "produce").json()


def test_history_live_and_resume(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "feed", "partitions": 2}), 201, "create")
    produce(srv, "feed", [{"value": f"h{i}", "partition": i % 2} for i in range(10)])
    url = f"{srv.http}/v1/topics/feed/events?from=earliest"
    es = EventStream(url)
    assert es.resp.headers.get("Content-Type") == "text/event-stream", es.resp.headers
    got = es.records(10)
    assert sorted(r["value"] for _, r in got) == sorted(f"h{i}" for i in range(10))
    for p in (0, 1):
        offs = [r["offset"] for _, r in got if r["partition"] == p]
        assert offs == list(range(5)), (p, offs)
    produce(srv, "feed", [{"value": f"l{i}", "partition": i % 2} for i in range(4)])
    live = es.records(4)
    assert sorted(r["value"] for _, r in live) == ["l0", "l1", "l2", "l3"], live
    last_id = live[-1][0]
    assert last_id == "0:6,1:6", last_id  # every partition's last offset sent
    es.close()

    produce(srv, "feed", [{"value": f"m{i}", "partition": i % 2} for i in range(6)])
    es = EventStream(url, headers={"Last-Event-ID": last_id})
    resumed = es.records(6)
    assert sorted(r["value"] for _, r in resumed) == sorted(f"m{i}" for i in range(6)), resumed
    assert all(r["offset"] >= 7 for _, r in resumed), resumed
    es.close()

    # curl, resuming through the query parameter (EventSource-less clients).
    p = subprocess.run(["curl", "-sN", "--max-time", "2", f"{srv.http}/v1/topics/feed/events?partitions=1&last_event_id=1:8"],
                       capture_output=True, text=True, timeout=30)
    events = [json.loads(line[len("data: "):]) for line in p.stdout.splitlines() if line.startswith("data: ")]
    assert [(e["partition"], e["offset"], e["value"]) for e in events] == [(1, 9, "m5")], p.stdout


def test_bad_requests(srv):
    expect_problem(call("GET", f"{srv.http}/v1/topics/none/events"), 404, "unknown-topic", "Unknown topic",
                   "topic 'none' does not exist", "/v1/topics/none/events")
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "two", "partitions": 2}), 201, "create")
    expect_problem(call("GET", f"{srv.http}/v1/topics/two/events?partitions=0,5"), 400, "invalid-parameter",
                   "Invalid parameter", "partitions must list partitions of 'two' (0 to 1), not '0,5'",
                   "/v1/topics/two/events")
    expect_problem(call("GET", f"{srv.http}/v1/topics/two/events", headers={"Last-Event-ID": "zero"}), 400,
                   "invalid-parameter", "Invalid parameter", "Last-Event-ID is a list of PARTITION:OFFSET, not 'zero'",
                   "/v1/topics/two/events")
    expect_problem(call("GET", f"{srv.http}/v1/topics/two/events?from=middle"), 400, "invalid-parameter",
                   "Invalid parameter", "from must be earliest or latest, not 'middle'", "/v1/topics/two/events")


def main():
    binary = harness.runnel_binary()
    with harness.RunnelServer(binary, name="gw-sse", shards=2) as srv:
        return gw.run_tests("sse_test", [test_history_live_and_resume, test_bad_requests], srv)


if __name__ == "__main__":
    sys.exit(main())
