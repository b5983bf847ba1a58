#!/usr/bin/python3
"""The API routes behind the dashboard's pages, against `runnel serve`.

1. GET /v1/history: with the history sampled every 50 ms, a topic being produced to shows up
   with its records per second; the ring never holds more than its 720 samples; `range` takes
   5m, 15m and 1h only (400 otherwise).
2. POST /v1/pipelines/{id}/stop and /restart: a stopped pipeline keeps its definition and
   checkpoints, stays stopped across a restart of the server, and restarts from its last
   checkpoint; `checkpoints.recent` lists the last ones; unknown ids are 404.

Run: /usr/bin/python3 dashboard_api_test.py --runnel PATH
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, expect_problem, harness, wait_for  # noqa: E402

JOB = {"id": "counts", "template": "windowed_count", "checkpoint_interval_ms": 100,
       "params": {"input": "clicks", "output": "click-counts", "key": "user", "time": "ts", "window_ms": 1000}}


def produce(srv, n):
    recs = [{"key": f"u{i % 5}", "value": {"user": f"u{i % 5}", "ts": 1_000_000 + i}} for i in range(n)]
    expect(call("POST", f"{srv.http}/v1/topics/clicks/records", {"records": recs}), 200, "produce")


def history(srv, rng="5m"):
    return expect(call("GET", f"{srv.http}/v1/history?range={rng}"), 200, "history").json()


def test_history(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "clicks", "partitions": 2}), 201, "topic")

    def rate_seen():
        produce(srv, 50)
        h = history(srv)
        s = [x for x in h["series"] if x["kind"] == "topic" and x["name"] == "clicks"]
        return h if s and any(v for v in s[0]["values"] if v) else None
    h = wait_for("a records/s figure for clicks", rate_seen)
    assert h["interval_ms"] == 50 and h["points"] == 720, h
    assert len(h["times"]) <= 720 and h["times"] == sorted(h["times"]), h["times"][:5]
    assert all(len(s["values"]) == len(h["times"]) for s in h["series"]), h
    assert not [s for s in h["series"] if s["name"].startswith("__")], h["series"]
    for rng in ("15m", "1h"):
        history(srv, rng)
    expect_problem(call("GET", f"{srv.http}/v1/history?range=2d"), 400, "invalid-parameter", "Invalid parameter",
                   "unknown query parameter 'range=2d' (expected range=5m|15m|1h)", "/v1/history")


def state_of(srv):
    return expect(call("GET", f"{srv.http}/v1/pipelines/counts"), 200, "describe").json()


def test_stop_and_restart(srv):
    expect(call("POST", f"{srv.http}/v1/pipelines", JOB), 201, "create")
    produce(srv, 100)
    p = wait_for("two checkpoints", lambda: (lambda p: p if p["checkpoints"]["completed"] >= 2 else None)(state_of(srv)))
    recent = p["checkpoints"]["recent"]
    assert recent and recent[-1]["id"] == p["checkpoints"]["last_id"], p["checkpoints"]
    assert all(c["completed_at"] > 1_600_000_000_000 and c["duration_ms"] >= 0 for c in recent), recent
    stopped = expect(call("POST", f"{srv.http}/v1/pipelines/counts/stop"), 200, "stop").json()
    assert stopped["state"] == "stopped", stopped
    assert state_of(srv)["state"] == "stopped"
    for action in ("stop", "restart"):
        expect_problem(call("POST", f"{srv.http}/v1/pipelines/nope/{action}"), 404, "unknown-pipeline",
                       "Unknown pipeline", "pipeline 'nope' does not exist", f"/v1/pipelines/nope/{action}")


def test_stays_stopped_across_restart(first):
    first.stop()
    srv = harness.RunnelServer(first.binary, name="gw-dash-again", shards=2, data_dir=first.data_dir).start()
    try:
        assert state_of(srv)["state"] == "stopped", state_of(srv)
        r = expect(call("POST", f"{srv.http}/v1/pipelines/counts/restart"), 200, "restart").json()
        assert r["state"] in ("starting", "recovering", "running"), r
        wait_for("running again", lambda: state_of(srv)["state"] == "running")
        produce(srv, 10)
        wait_for("a checkpoint after the restart",
                 lambda: state_of(srv)["checkpoints"]["recent"])
        # Restarting a running pipeline is allowed: it resumes from its last checkpoint.
        expect(call("POST", f"{srv.http}/v1/pipelines/counts/restart"), 200, "restart running")
        wait_for("running once more", lambda: state_of(srv)["state"] == "running")
        expect(call("DELETE", f"{srv.http}/v1/pipelines/counts"), 204, "delete")
    finally:
        srv.stop()


def main():
    binary = harness.runnel_binary()
    with tempfile.TemporaryDirectory(prefix="gw-dash-") as d:
        with harness.RunnelServer(binary, name="gw-dash", shards=2, data_dir=os.path.join(d, "data"),
                                  extra_args=["--dashboard-sample-interval-ms", "50"]) as srv:
            code = gw.run_tests("dashboard_api_test", [test_history, test_stop_and_restart], srv)
            code |= gw.run_tests("dashboard_api_test (restart)", [test_stays_stopped_across_restart], srv)
    return code


if __name__ == "__main__":
    sys.exit(main())
