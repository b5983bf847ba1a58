#!/usr/bin/python3
"""HTTPS and authentication of the HTTP gateway against `runnel serve`.

One server with `--http-tls` (a CA and server certificate the test makes with `openssl`),
`--http-basic-auth` (a user made with `runnel user create`), `--jwks-file` (RS256 and ES256
keys the test makes and signs tokens with, through python3-cryptography) and `--metrics-addr`:

1. HTTPS answers with the test's certificate; plain HTTP on that port gets no answer.
2. Basic credentials: the right password is 200, a wrong one 401 problem JSON with
   WWW-Authenticate naming both schemes, counted in runnel_auth_failures_total and logged.
3. JWTs: valid RS256 and ES256 tokens are 200; expired, wrong audience, alg=none, unknown kid
   and a bad signature are 401 with the reason.
4. WSS: a subscriber with a valid token streams records; without one the upgrade is refused
   with 401. SSE over TLS with basic credentials in the query streams too.
5. /metrics on the plain metrics listener needs no credentials and serves nothing else; on
   the main listener it needs them.
6. SIGHUP makes new connections use a certificate rotated on disk.

Run: /usr/bin/python3 auth_test.py --runnel PATH
"""

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import Response, harness  # noqa: E402
import websockets  # noqa: E402
from jwt_signer import Signer, b64url, write_jwks  # noqa: E402

BINARY = harness.runnel_binary()


def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert p.returncode == 0, f"openssl {' '.join(args)} failed:\n{p.stderr.decode(errors='replace')}"


def make_server_certificate(d, name, cn):
    """A certificate for 127.0.0.1 and localhost signed by the test CA: NAME.crt, NAME.key."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={cn}", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", "server.ext", cwd=d)


def make_certificates(d):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=Runnel HTTP Test CA", cwd=d)
    make_server_certificate(d, "server", "localhost")


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="gw-auth-tls-")
        make_certificates(cls.dir)
        data_dir = os.path.join(cls.dir, "data")
        p = subprocess.run([BINARY, "user", "create", "--data-dir", data_dir, "alice"], input="wonderland\n",
                           text=True, capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        cls.rsa = Signer("RS256", "rsa-1")
        cls.ec = Signer("ES256", "ec-1")
        jwks = os.path.join(cls.dir, "jwks.json")
        write_jwks(jwks, cls.rsa, cls.ec)
        cls.srv = harness.RunnelServer(BINARY, name="gw-auth-tls", data_dir=data_dir, extra_args=[
            "--http-tls", "--tls-cert-file", os.path.join(cls.dir, "server.crt"),
            "--tls-key-file", os.path.join(cls.dir, "server.key"), "--http-basic-auth", "--jwks-file", jwks,
            "--jwt-audience", "runnel", "--metrics-addr", "127.0.0.1:0"]).start()
        cls.base = f"https://127.0.0.1:{cls.srv.http_port}"
        m = cls.srv.wait_for_log(r"metrics listener on 127\.0\.0\.1:(\d+)")
        cls.metrics_url = f"http://127.0.0.1:{m.group(1)}/metrics"
        cls.tls = ssl.create_default_context(cafile=os.path.join(cls.dir, "ca.crt"))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop(check=True)
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def call(self, method, path, body=None, headers=None, url=None):
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(url or self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.tls) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def claims(self, exp_in=300, **extra):
        c = {"sub": "carol", "aud": "runnel", "exp": int(time.time()) + exp_in}
        c.update(extra)
        return c

    def bearer(self, token):
        return {"Authorization": f"Bearer {token}"}

    def expect_401(self, resp, detail):
        self.assertEqual(resp.status, 401, resp)
        self.assertEqual(resp.headers.get("Content-Type"), "application/problem+json")
        self.assertEqual(resp.json()["detail"], detail)
        self.assertEqual(resp.headers.get("WWW-Authenticate"),
                         'Basic realm="runnel", charset="UTF-8", Bearer realm="runnel"')

    def metrics(self):
        with urllib.request.urlopen(self.metrics_url, timeout=30) as r:
            return r.read().decode()

    def counter(self, series):
        for line in self.metrics().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    def test_https_serves_the_certificate_and_plain_http_gets_no_answer(self):
        r = self.call("GET", "/v1/health")
        self.assertEqual(r.status, 200, r)
        with socket.create_connection(("127.0.0.1", self.srv.http_port), timeout=30) as s:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = b""
            try:
                while chunk := s.recv(4096):
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        self.assertFalse(got.startswith(b"HTTP/"), got[:80])

    def test_basic_credentials(self):
        self.assertEqual(self.call("GET", "/v1/topics", headers={"Authorization": basic("alice", "wonderland")}).status,
                         200)
        before = self.counter('runnel_auth_failures_total{listener="http",mechanism="basic"}')
        self.expect_401(self.call("GET", "/v1/topics", headers={"Authorization": basic("alice", "wrong")}),
                        "invalid user name or password")
        self.expect_401(self.call("GET", "/v1/topics", headers={"Authorization": basic("mallory", "wonderland")}),
                        "invalid user name or password")
        self.expect_401(self.call("GET", "/v1/topics"),
                        "this server requires credentials (Authorization: Basic with a user's name and password or "
                        "Authorization: Bearer TOKEN)")
        self.assertEqual(self.counter('runnel_auth_failures_total{listener="http",mechanism="basic"}'), before + 2)
        self.srv.wait_for_log(r"HTTP authentication failed from 127\.0\.0\.1:\d+ \(basic, user alice\): "
                              r"invalid user name or password")
        # A burst with the same credentials is answered from the remembered success.
        for _ in range(20):
            self.assertEqual(self.call("GET", "/v1/health", headers={"Authorization": basic("alice", "x")}).status, 200)
            self.assertEqual(
                self.call("GET", "/v1/topics", headers={"Authorization": basic("alice", "wonderland")}).status, 200)

    def test_jwt_bearer_tokens(self):
        for signer in (self.rsa, self.ec):
            r = self.call("GET", "/v1/topics", headers=self.bearer(signer.token(self.claims())))
            self.assertEqual(r.status, 200, (signer.alg, r))
        self.expect_401(self.call("GET", "/v1/topics", headers=self.bearer(self.rsa.token(self.claims(exp_in=-120)))),
                        "the token has expired")
        self.expect_401(self.call("GET", "/v1/topics",
                                  headers=self.bearer(self.ec.token(self.claims(aud="someone-else")))),
                        "the token's audience does not include 'runnel'")
        none = b64url(b'{"alg":"none"}') + "." + b64url(json.dumps(self.claims()).encode()) + "."
        self.expect_401(self.call("GET", "/v1/topics", headers=self.bearer(none)),
                        "the token's alg 'none' is not accepted (RS256 or ES256)")
        stranger = Signer("RS256", "rsa-2")
        self.expect_401(self.call("GET", "/v1/topics", headers=self.bearer(stranger.token(self.claims()))),
                        "no RS256 key in the JWKS has kid 'rsa-2'")
        impostor = Signer("ES256", "ec-1")
        self.expect_401(self.call("GET", "/v1/topics", headers=self.bearer(impostor.token(self.claims()))),
                        "the token's signature is not valid")
        self.assertGreaterEqual(self.counter('runnel_auth_failures_total{listener="http",mechanism="jwt"}'), 5)

    def test_websocket_over_tls_needs_a_token(self):
        token = self.ec.token(self.claims())
        auth = self.bearer(token)
        r = self.call("POST", "/v1/topics", {"name": "wss-feed"}, headers=auth)
        self.assertIn(r.status, (200, 201), r)
        url = f"wss://127.0.0.1:{self.srv.http_port}/v1/ws"

        async def refused():
            with self.assertRaises(websockets.InvalidStatusCode) as e:
                async with websockets.connect(url, ssl=self.tls, open_timeout=30):
                    pass
            self.assertEqual(e.exception.status_code, 401)

        async def streams(connect_url, headers):
            async with websockets.connect(connect_url, ssl=self.tls, extra_headers=headers, open_timeout=30) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": "wss-feed", "from": "latest"}))
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                self.assertEqual(first["type"], "subscribed", first)
                r = self.call("POST", "/v1/topics/wss-feed/records", {"records": [{"value": "over tls"}]},
                              headers=auth)
                self.assertEqual(r.status, 200, r)
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if m["type"] == "records":
                        return [rec["value"] for rec in m["records"]]

        asyncio.run(refused())
        self.assertEqual(asyncio.run(streams(url, auth)), ["over tls"])
        self.assertEqual(asyncio.run(streams(f"{url}?access_token={token}", {})), ["over tls"])

    def test_event_stream_over_tls_with_basic_credentials_in_the_query(self):
        auth = {"Authorization": basic("alice", "wonderland")}
        r = self.call("POST", "/v1/topics", {"name": "sse-feed"}, headers=auth)
        self.assertIn(r.status, (200, 201), r)
        self.assertEqual(self.call("POST", "/v1/topics/sse-feed/records", {"records": [{"value": "hello"}]},
                                   headers=auth).status, 200)
        self.assertEqual(self.call("GET", "/v1/topics/sse-feed/events?from=earliest").status, 401)
        q = urllib.parse.quote(basic("alice", "wonderland"))
        req = urllib.request.Request(f"{self.base}/v1/topics/sse-feed/events?from=earliest&authorization={q}")
        with urllib.request.urlopen(req, timeout=30, context=self.tls) as resp:
            self.assertEqual(resp.headers.get("Content-Type"), "text/event-stream")
            while True:
                line = resp.readline().decode()
                self.assertTrue(line, "the event stream ended")
                if line.startswith("data: "):
                    self.assertEqual(json.loads(line[6:])["value"], "hello")
                    break

    def peer_common_name(self):
        with socket.create_connection(("127.0.0.1", self.srv.http_port), timeout=30) as raw:
            with self.tls.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                subject = dict(x[0] for x in s.getpeercert()["subject"])
                return subject["commonName"]

    def test_sighup_reloads_the_certificate_for_new_connections(self):
        self.assertEqual(self.peer_common_name(), "localhost")
        make_server_certificate(self.dir, "rotated", "rotated.localhost")
        for ext in ("crt", "key"):
            shutil.copyfile(os.path.join(self.dir, f"rotated.{ext}"), os.path.join(self.dir, f"server.{ext}"))
        self.srv.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: self.peer_common_name() == "rotated.localhost", 30, "the rotated certificate")

    def test_metrics_listener_is_open_and_serves_only_metrics(self):
        text = self.metrics()
        self.assertIn("runnel_http_connections", text)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(self.metrics_url.replace("/metrics", "/v1/topics"), timeout=30)
        self.assertEqual(e.exception.code, 404)
        self.assertEqual(self.call("GET", "/metrics").status, 401)


if __name__ == "__main__":
    harness.run_unittests("gateway_auth_test")
