#!/usr/bin/python3
"""Alerts through the webhook sink, against `runnel serve` and a local HTTP receiver.

A windowed_count pipeline POSTs every window with at least 3 swipes of a card to the receiver.
1. Receiver up (its first two answers are 500): every alert arrives exactly once.
2. Receiver down (connections refused) while alerts are due: the sink retries (the retry
   counter in /metrics grows); once the receiver is back on the same port every alert arrives,
   none lost, none twice.
3. The receiver answers 400 for one card: those alerts go to the dead-letter topic with the
   reason, and the others still arrive.

Run: /usr/bin/python3 webhook_test.py --runnel PATH
"""

import http.server
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, harness  # noqa: E402


class Receiver:
    """An HTTP server on a fixed loopback port that records every POST; can go down and up."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.lock = threading.Lock()
        self.got = []          # (idempotency key, body)
        self.fail_next = 0     # answer 500 this many times
        self.refuse_card = None
        self.server = None
        self.is_down = True

    def up(self):
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if rec.is_down:
                    # A kept-alive connection of a receiver that went down: drop it unanswered.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                with rec.lock:
                    if rec.fail_next > 0:
                        rec.fail_next -= 1
                        status = 500
                    elif body.get("card") == rec.refuse_card:
                        status = 400
                    else:
                        status = 200
                        rec.got.append((self.headers["Idempotency-Key"], body))
                reply = b"busy" if status == 500 else b"no such card" if status == 400 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.is_down = False
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        self.is_down = True
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def alerts(self):
        with self.lock:
            return [(b["card"], harness.epoch_ms(b["window_start"])) for _, b in self.got]


def swipes(window, counts):
    """Swipes in window `window` (1 s windows from 1,000,000 ms): `counts` maps card -> n."""
    out = []
    for card, n in counts.items():
        for i in range(n):
            out.append({"key": card, "value": {"card": card, "ts": 1_000_000 + window * 1000 + i * 10}})
    return out


def closing(window):
    return [{"partition": p, "value": {"card": "-", "ts": 1_000_000 + window * 1000}} for p in range(2)]


def produce(srv, records):
    expect(call("POST", f"{srv.http}/v1/topics/swipes/records?acks=all", {"records": records}), 200, "produce")


def wait_for(what, cond, seconds=30):
    deadline = harness.Deadline(seconds, what)
    while not cond():
        deadline.check()
        time.sleep(0.05)  # polling a condition with a deadline


def retried(srv):
    text = call("GET", f"{srv.http}/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("runnel_webhook_requests_total{") and 'outcome="retried"' in line)


def test_alerts(srv):
    rec = Receiver()
    rec.up()
    try:
        expect(call("POST", f"{srv.http}/v1/topics", {"name": "swipes", "partitions": 2}), 201, "topic")
        job = {"id": "alerts", "template": "windowed_count", "checkpoint_interval_ms": 100,
               "params": {"input": "swipes", "output": "swipe-counts", "key": "card", "time": "ts", "window_ms": 1000,
                          "webhook": f"http://127.0.0.1:{rec.port}/alerts", "min_count": 3,
                          "webhook.backoff.initial": "50ms", "webhook.backoff.max": "200ms"}}
        expect(call("POST", f"{srv.http}/v1/pipelines", job), 201, "pipeline")
        expected = set()

        # 1. Up, with two 500s first.
        rec.fail_next = 2
        for w in range(3):
            counts = {f"c{i}": (i + w) % 5 + 1 for i in range(8)}
            produce(srv, swipes(w, counts))
            expected |= {(c, 1_000_000 + w * 1000) for c, n in counts.items() if n >= 3}
        produce(srv, closing(4))
        wait_for("alerts of windows 0-2", lambda: len(rec.alerts()) >= len(expected))
        assert sorted(rec.alerts()) == sorted(expected), (sorted(rec.alerts()), sorted(expected))

        # 2. Down while alerts are due, then up again on the same port.
        rec.down()
        before = retried(srv)
        for w in range(4, 7):
            counts = {f"c{i}": (i * w) % 6 + 1 for i in range(8)}
            produce(srv, swipes(w, counts))
            expected |= {(c, 1_000_000 + w * 1000) for c, n in counts.items() if n >= 3}
        produce(srv, closing(8))
        wait_for("the sink retrying while the receiver is down", lambda: retried(srv) >= before + 3)
        rec.up()
        wait_for("every alert after the outage", lambda: len(rec.alerts()) >= len(expected))
        got = rec.alerts()
        assert len(got) == len(set(got)), f"alerts delivered twice: {[a for a in got if got.count(a) > 1]}"
        assert sorted(got) == sorted(expected), (sorted(got), sorted(expected))
        keys = [k for k, _ in rec.got]
        assert len(keys) == len(set(keys)) and all(k.startswith("alerts-webhook-") for k in keys), keys[:5]

        # 3. Refused rows go to the dead-letter topic; the rest still arrive.
        rec.refuse_card = "c1"
        produce(srv, swipes(9, {"c1": 4, "c2": 5}))
        produce(srv, closing(11))
        wait_for("c2's alert of window 9", lambda: ("c2", 1_009_000) in rec.alerts())
        dead = []

        def read_dead():
            r = call("GET", f"{srv.http}/v1/topics/swipe-counts.webhook-dead/records?partition=0&offset=0&limit=100")
            if r.status != 200:
                return False
            dead[:] = [x["value"] for x in r.json()["records"]]
            return len(dead) >= 1

        wait_for("the refused alert in the dead-letter topic", read_dead)
        assert len(dead) == 1, dead
        assert dead[0]["row"]["card"] == "c1" and dead[0]["row"]["count"] == 4, dead
        assert dead[0]["reason"] == f"HTTP 400 from http://127.0.0.1:{rec.port}/alerts: no such card", dead
        assert dead[0]["attempts"] == 1, dead
        assert ("c1", 1_009_000) not in rec.alerts()
    finally:
        if rec.server:
            rec.down()


def test_bad_webhook_options(srv):
    base = {"input": "swipes", "output": "o", "key": "card", "time": "ts", "window_ms": 1000}
    for extra, why in [({"webhook": "https://example.test/x"}, "'https://example.test/x': https is not supported yet; use http://"),
                       ({"webhook": "ftp://x"}, "'ftp://x' is not an http:// URL"),
                       ({"webhook": "http://127.0.0.1:99999/"}, "'http://127.0.0.1:99999/': the port must be a number from 1 to 65535"),
                       ({"webhook": "http://127.0.0.1:1/", "webhook.timeout": "soon"},
                        "'webhook.timeout' must be a duration such as 100ms or 5s, not 'soon'"),
                       ({"webhook": "http://127.0.0.1:1/", "webhook.colour": "red"}, "unknown webhook option 'webhook.colour'")]:
        r = call("POST", f"{srv.http}/v1/pipelines", {"id": "bad", "template": "windowed_count", "params": dict(base, **extra)})
        assert r.status == 422 and r.json()["detail"] == why, (r, why)


def main():
    binary = harness.runnel_binary()
    with harness.RunnelServer(binary, name="gw-webhook", shards=2) as srv:
        code = gw.run_tests("webhook_test", [test_alerts, test_bad_webhook_options], srv)
    return code


if __name__ == "__main__":
    sys.exit(main())
