"""Helpers shared by the gateway integration tests: HTTP calls with urllib and exact checks
of problem+json answers. Runs under /usr/bin/python3; starts servers through the Kafka tests'
harness (tests/kafka/harness.py)."""

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))

import harness  # noqa: E402,F401


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HTTP {self.status} {self.headers.get('Content-Type')} {self.body[:400]!r}"


def wait_for(what, cond, seconds=30):
    """Polls `cond` until it returns something true (returned), failing after `seconds`."""
    deadline = harness.Deadline(seconds, what)
    while True:
        v = cond()
        if v:
            return v
        deadline.check()
        time.sleep(0.05)  # polling a condition with a deadline


def call(method, url, body=None, headers=None, timeout=30):
    """One request; answers with any status (errors are answers too)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def metric(srv, name_and_labels):
    """The value of one series (`name` or `name{labels}` exactly as exposed) in the server's
    /metrics, 0 when absent."""
    text = call("GET", f"{srv.http}/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name_and_labels + " "):
            return float(line.split()[-1])
    return 0.0


def expect(resp, status, what=""):
    assert resp.status == status, f"{what}: expected HTTP {status}, got {resp!r}"
    return resp


def expect_problem(resp, status, kind, title, detail, instance):
    """Checks the whole RFC 9457 problem: every field, exactly."""
    assert resp.status == status, f"expected HTTP {status} ({kind}), got {resp!r}"
    ctype = resp.headers.get("Content-Type")
    assert ctype == "application/problem+json", f"content type {ctype!r} for {resp!r}"
    got = resp.json()
    want = {"type": f"urn:runnel:problem:{kind}", "title": title, "status": status, "detail": detail}
    if instance is not None:
        want["instance"] = instance
    assert got == want, f"problem mismatch:\n got  {got}\n want {want}"


def run_tests(name, tests, *args):
    """Runs each test function with `args`; prints a line per test and a summary; exit code."""
    started = time.monotonic()
    passed = failed = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t(*args)
            passed += 1
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.2f} s)", flush=True)
        except Exception:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {t.__name__}\n{traceback.format_exc()}", flush=True)
    harness.summary(name, passed, failed, seconds=time.monotonic() - started)
    return 0 if failed == 0 else 1
