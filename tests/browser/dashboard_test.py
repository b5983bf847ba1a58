#!/usr/bin/python3
"""The dashboard in a real browser: headless Debian chromium driven by playwright-core (npm).

Starts `runnel serve` on free loopback ports, creates a topic and produces to it over REST
for the whole test, then runs dashboard.mjs against http://127.0.0.1:PORT/: the page must load
with no console error and no failed request, show the topic with a records/s figure that
moves, draw the throughput chart, show the demo's job as a running pipeline reading records, and
tail records over the WebSocket. The screenshot is saved
in the build tree (`dashboard.png` in the working directory) and its path printed.

playwright-core is installed from tests/browser/package-lock.json (`npm ci`) when missing.
Run: /usr/bin/python3 dashboard_test.py --runnel PATH [--node PATH] [--npm PATH]
"""
import json
import os
import subprocess
import sys
import threading
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness  # noqa: E402


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def ensure_playwright(npm):
    harness.npm_ci(npm, HERE, "playwright-core")


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def main():
    binary = harness.runnel_binary()
    node, npm = arg("--node", "node"), arg("--npm", "npm")
    ensure_playwright(npm)
    # --demo runs a durable job, so the pipelines section has a live row.
    with harness.RunnelServer(binary, name="browser", shards=2, extra_args=["--demo", "--demo-rate", "2000"]) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        assert post(f"{base}/v1/topics", {"name": "clicks", "partitions": 3}) == 201
        stop = threading.Event()

        def produce():
            i = 0
            while not stop.is_set():
                post(f"{base}/v1/topics/clicks/records",
                     {"records": [{"key": f"user-{(i + k) % 17}", "value": {"n": i + k}} for k in range(50)]})
                i += 50
                stop.wait(0.02)  # a steady, modest rate

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        shot = os.path.abspath("dashboard.png")
        try:
            p = subprocess.run([node, os.path.join(HERE, "dashboard.mjs"), base + "/", "clicks", shot,
                                "demo-bids-per-channel"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=120)
        finally:
            stop.set()
            producer.join(10)
        out = p.stdout.decode(errors="replace")
        print(out, flush=True)
        assert p.returncode == 0, f"dashboard check failed ({p.returncode})"
        print(f"screenshot: {shot}")
        assert os.path.getsize(shot) > 10000, "screenshot is empty"
    print("dashboard_test: passed")


if __name__ == "__main__":
    main()
