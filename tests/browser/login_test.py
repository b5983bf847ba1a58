#!/usr/bin/python3
"""The dashboard's login in a real browser (headless Debian chromium, playwright-core), against a
server that takes HTTP basic credentials of the users of `runnel user` (--http-basic-auth).

Creates a user, starts `runnel serve --http-basic-auth` and a topic with records, then runs
login.mjs: the page's first API request is refused (401) and the login form appears; a wrong
password is refused again; the right one is kept for the tab (sessionStorage) and sent with
every request: the status turns ok, the topic is listed with its records, and the live tail
over the WebSocket (credentials in the query) shows a record produced afterwards.

Run: /usr/bin/python3 login_test.py --runnel PATH [--node PATH] [--npm PATH]
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness  # noqa: E402
from dashboard_test import arg, ensure_playwright  # noqa: E402

USER, PASSWORD = "dana", "dashboard password"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def call(method, url, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": AUTH})
    with urllib.request.urlopen(req, timeout=30) as r:
        data = r.read()
        return r.status, (json.loads(data) if data else None)


def main():
    binary = harness.runnel_binary()
    node, npm = arg("--node", "node"), arg("--npm", "npm")
    ensure_playwright(npm)
    with tempfile.TemporaryDirectory(prefix="dashboard-login-") as d:
        data_dir = os.path.join(d, "data")
        p = subprocess.run([binary, "user", "create", "--data-dir", data_dir, USER], input=PASSWORD + "\n",
                           text=True, capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        with harness.RunnelServer(binary, name="login", shards=2, data_dir=data_dir,
                                  extra_args=["--http-basic-auth"]) as srv:
            base = f"http://127.0.0.1:{srv.http_port}"
            assert call("POST", f"{base}/v1/topics", {"name": "signed-in", "partitions": 1})[0] == 201
            assert call("POST", f"{base}/v1/topics/signed-in/records",
                        {"records": [{"value": {"n": i}} for i in range(10)]})[0] == 200
            p = subprocess.run([node, os.path.join(HERE, "login.mjs"), base, USER, PASSWORD, "signed-in", AUTH],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=150)
            out = p.stdout.decode(errors="replace")
            print(out, flush=True)
            assert p.returncode == 0, f"dashboard login check failed ({p.returncode})"
    print("login_test: passed")


if __name__ == "__main__":
    main()
