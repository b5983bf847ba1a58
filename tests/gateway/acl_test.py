#!/usr/bin/python3
"""Kafka's ACLs on the HTTP gateway: REST, WebSocket and SSE against `runnel serve`.

One server runs `--authorizer acl --super-users User:admin` with `--http-basic-auth` (SCRAM
users admin, alice and bob made with `runnel user create`) and `--jwks-file` (an ES256 key the
test signs tokens with; JWT principals are `User:<sub>`). ACLs are added with `runnel acl add`
on the data directory before the server starts, as an operator would:

- alice may READ and WRITE `orders`, WRITE every `sales-` topic (PREFIXED) but not
  `sales-secret` (a LITERAL DENY, which wins), READ every `view_` topic; bob has no ACL;
  carol (a JWT) may READ `feed`.
- A WebSocket subscriber without READ gets a `forbidden` error message while one with READ
  streams; an event stream without READ is answered 403.
- JWTs: a valid token streams, an expired one is refused with 401, and a stream opened with a
  short-lived token is closed when it expires (WebSocket close 1008, the event stream ends).
- POST records without WRITE is 403 (problem JSON naming operation and resource) and writes
  nothing; with WRITE the records are written; the PREFIXED allow and the DENY behave as on
  Kafka.
- GET /v1/topics lists only the topics the principal may DESCRIBE; describing a hidden one is
  403; POST /v1/sql without ALTER on the CLUSTER is 403; the super user passes.
- A materialized view is read as the topic named as it: alice's PREFIXED READ on `view_`
  lets her read `view_users` (REST rows, WebSocket); bob is refused.
- Denials rise in runnel_authz_denied_total, the Kafka listeners' counter, and are logged
  with principal, address and resource.

Run: /usr/bin/python3 acl_test.py --runnel PATH
"""

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import harness  # noqa: E402
import websockets  # noqa: E402
from jwt_signer import Signer, write_jwks  # noqa: E402

BINARY = harness.runnel_binary()
USERS = {"admin": "admin secret", "alice": "alice secret", "bob": "bob secret"}
TIMEOUT = 30


def basic(user):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()}


def runnel(*args, stdin=None):
    p = subprocess.run([BINARY, *args], input=stdin, text=True, capture_output=True, timeout=60)
    assert p.returncode == 0, f"runnel {' '.join(args)} failed: {p.stderr}"
    return p.stdout


def forbidden(principal, op, rtype, name, instance):
    """The 403 problem of a denial (checked field by field by gw.expect_problem)."""
    return (403, "forbidden", "Forbidden", f"{principal} is not authorized to {op} {rtype} '{name}'", instance)


class GatewayAcls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gw-acl-itest-")
        cls.data_dir = os.path.join(cls.tmp, "data")
        for user, password in USERS.items():
            runnel("user", "create", "--data-dir", cls.data_dir, user, stdin=password + "\n")
        d = ["--data-dir", cls.data_dir]
        runnel("acl", "add", *d, "--allow-principal", "User:alice", "--operation", "READ", "--operation", "WRITE",
               "--topic", "orders")
        runnel("acl", "add", *d, "--allow-principal", "User:alice", "--operation", "WRITE", "--topic", "sales-",
               "--resource-pattern-type", "prefixed")
        runnel("acl", "add", *d, "--deny-principal", "User:alice", "--operation", "WRITE", "--topic", "sales-secret")
        runnel("acl", "add", *d, "--allow-principal", "User:carol", "--operation", "READ", "--topic", "feed")
        runnel("acl", "add", *d, "--allow-principal", "User:alice", "--operation", "READ", "--topic", "view_",
               "--resource-pattern-type", "prefixed")
        cls.signer = Signer("ES256", "ec-1")
        jwks = os.path.join(cls.tmp, "jwks.json")
        write_jwks(jwks, cls.signer)
        cls.srv = harness.RunnelServer(BINARY, name="gw-acl", data_dir=cls.data_dir, extra_args=[
            "--authorizer", "acl", "--super-users", "User:admin", "--http-basic-auth",
            "--jwks-file", jwks, "--jwt-audience", "runnel"]).start()
        cls.base = cls.srv.http
        for topic in ("orders", "sales-eu", "sales-secret", "hidden", "feed", "view-src"):
            gw.expect(cls.call("POST", "/v1/topics", {"name": topic, "partitions": 1}, "admin"), 201, topic)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop(check=True)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def call(cls, method, path, body=None, user=None, headers=None):
        hdrs = dict(headers or {})
        if user:
            hdrs.update(basic(user))
        return gw.call(method, cls.base + path, body, hdrs)

    def token(self, sub, exp_in=300):
        return self.signer.token({"sub": sub, "aud": "runnel", "exp": int(time.time()) + exp_in})

    def denied(self, op, rtype="TOPIC"):
        text = self.call("GET", "/metrics", user="admin").body.decode()
        m = re.search(rf'^runnel_authz_denied_total\{{resource_type="{rtype}",operation="{op}"\}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else 0.0

    def record_values(self, topic):
        r = gw.expect(self.call("GET", f"/v1/topics/{topic}/records?partition=0&offset=0", user="admin"), 200, topic)
        return [rec["value"] for rec in r.json()["records"]]

    def ws_url(self, query=""):
        return f"ws://127.0.0.1:{self.srv.http_port}/v1/ws{query}"

    # -- WebSocket and SSE ---------------------------------------------------------------------

    def test_websocket_subscriber_without_read_is_refused_and_one_with_read_streams(self):
        async def subscribe(user, topic):
            async with websockets.connect(self.ws_url(), extra_headers=basic(user), open_timeout=TIMEOUT) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": topic, "from": "earliest"}))
                first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if first["type"] != "subscribed":
                    return first
                gw.expect(self.call("POST", f"/v1/topics/{topic}/records", {"value": "for readers"}, "alice"), 200)
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    if m["type"] == "records" and "for readers" in [r["value"] for r in m["records"]]:
                        return m

        before = self.denied("READ")
        refused = asyncio.run(subscribe("bob", "orders"))
        self.assertEqual(refused, {"type": "error", "code": "forbidden",
                                   "message": "User:bob is not authorized to READ TOPIC 'orders'"})
        # A topic that does not exist is refused the same way: a refusal does not say which exist.
        self.assertEqual(asyncio.run(subscribe("bob", "no-such-topic"))["code"], "forbidden")
        self.assertEqual(self.denied("READ"), before + 2)
        self.assertEqual(asyncio.run(subscribe("alice", "orders"))["type"], "records")
        self.assertEqual(asyncio.run(subscribe("admin", "orders"))["type"], "records")  # the super user

    def test_event_stream_without_read_is_403(self):
        gw.expect_problem(self.call("GET", "/v1/topics/orders/events", user="bob"),
                          *forbidden("User:bob", "READ", "TOPIC", "orders", "/v1/topics/orders/events"))

    def test_websocket_with_a_valid_token_streams_and_an_expired_one_is_refused(self):
        async def refused(token):
            with self.assertRaises(websockets.InvalidStatusCode) as e:
                async with websockets.connect(self.ws_url(f"?access_token={token}"), open_timeout=TIMEOUT):
                    pass
            return e.exception.status_code

        async def streams(token):
            async with websockets.connect(self.ws_url(), extra_headers={"Authorization": f"Bearer {token}"},
                                          open_timeout=TIMEOUT) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": "feed", "from": "latest"}))
                self.assertEqual(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"], "subscribed")
                gw.expect(self.call("POST", "/v1/topics/feed/records", {"value": "to carol"}, "admin"), 200)
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    if m["type"] == "records":
                        return [r["value"] for r in m["records"]]

        self.assertEqual(asyncio.run(streams(self.token("carol"))), ["to carol"])
        self.assertEqual(asyncio.run(refused(self.token("carol", exp_in=-120))), 401)
        r = self.call("GET", "/v1/topics/feed/events", headers={"Authorization": f"Bearer {self.token('carol', -120)}"})
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.json()["detail"], "the token has expired")

    def test_websocket_is_closed_when_its_token_expires(self):
        def closes():  # /metrics needs credentials on this server
            text = self.call("GET", "/metrics", user="admin").body.decode()
            m = re.search(r'^runnel_stream_closes_total\{protocol="ws",reason="token_expired"\} (\S+)$', text, re.M)
            return float(m.group(1)) if m else 0.0

        before = closes()

        async def until_closed(token):
            async with websockets.connect(self.ws_url(f"?access_token={token}"), open_timeout=TIMEOUT) as ws:
                await ws.send(json.dumps({"type": "subscribe", "topic": "feed", "from": "latest"}))
                deadline = harness.Deadline(TIMEOUT, "the close of an expired token's WebSocket")
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), deadline.left())
                except websockets.ConnectionClosed:
                    return ws.close_code, ws.close_reason

        # exp is whole seconds: 2 s from now is 1 to 2 s of streaming.
        self.assertEqual(asyncio.run(until_closed(self.token("carol", exp_in=2))), (1008, "the token has expired"))
        self.assertEqual(closes(), before + 1)

    def test_event_stream_ends_when_its_token_expires(self):
        token = self.token("carol", exp_in=2)
        req = urllib.request.Request(f"{self.base}/v1/topics/feed/events?access_token={token}")
        events = []
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            self.assertEqual(resp.headers.get("Content-Type"), "text/event-stream")
            while line := resp.readline():  # returns b"" when the server ends the stream
                events.append(line.decode().rstrip("\n"))
        self.assertIn("event: error", events)
        data = [json.loads(e[6:]) for e in events if e.startswith("data: ")]
        self.assertEqual(data[-1], {"type": "error", "code": "token-expired", "message": "the token has expired"})

    # -- REST ------------------------------------------------------------------------------------

    def test_post_records_needs_write(self):
        before = self.denied("WRITE")
        written = self.record_values("orders")
        gw.expect_problem(self.call("POST", "/v1/topics/orders/records", {"value": "from bob"}, "bob"),
                          *forbidden("User:bob", "WRITE", "TOPIC", "orders", "/v1/topics/orders/records"))
        self.assertEqual(self.record_values("orders"), written)  # nothing was written
        self.assertEqual(self.denied("WRITE"), before + 1)
        self.srv.wait_for_log(r"authorization denied: principal User:bob from 127\.0\.0\.1 operation WRITE on TOPIC "
                              r"'orders' \(HTTP POST /v1/topics/orders/records\)")
        gw.expect(self.call("POST", "/v1/topics/orders/records", {"value": "from alice"}, "alice"), 200)
        self.assertEqual(self.record_values("orders"), written + ["from alice"])

    def test_prefixed_allow_and_deny_over_allow(self):
        gw.expect(self.call("POST", "/v1/topics/sales-eu/records", {"value": "eu"}, "alice"), 200)
        self.assertEqual(self.record_values("sales-eu"), ["eu"])
        gw.expect_problem(self.call("POST", "/v1/topics/sales-secret/records", {"value": "s"}, "alice"),
                          *forbidden("User:alice", "WRITE", "TOPIC", "sales-secret",
                                     "/v1/topics/sales-secret/records"))
        self.assertEqual(self.record_values("sales-secret"), [])
        # The prefix is a prefix of names, not a pattern of anything else.
        gw.expect_problem(self.call("POST", "/v1/topics/orders/records", {"value": "x"}, "bob"),
                          *forbidden("User:bob", "WRITE", "TOPIC", "orders", "/v1/topics/orders/records"))

    def test_topic_listing_hides_topics_the_principal_may_not_describe(self):
        def listed(user):
            r = gw.expect(self.call("GET", "/v1/topics", user=user), 200, user)
            return sorted(t["name"] for t in r.json()["topics"] if not t["name"].startswith("__"))

        # READ and WRITE imply DESCRIBE; the DENY is of WRITE only.
        self.assertEqual(listed("alice"), ["orders", "sales-eu", "sales-secret"])
        self.assertEqual(listed("bob"), [])
        self.assertEqual(listed("admin"), ["feed", "hidden", "orders", "sales-eu", "sales-secret", "view-src"])
        before = self.denied("DESCRIBE")
        gw.expect_problem(self.call("GET", "/v1/topics/hidden", user="alice"),
                          *forbidden("User:alice", "DESCRIBE", "TOPIC", "hidden", "/v1/topics/hidden"))
        self.assertEqual(self.denied("DESCRIBE"), before + 1)  # a list leaving topics out counts no denial
        gw.expect(self.call("GET", "/v1/topics/orders", user="alice"), 200)

    def test_creating_and_deleting_topics_need_create_and_delete(self):
        gw.expect_problem(self.call("POST", "/v1/topics", {"name": "bobs"}, "bob"),
                          *forbidden("User:bob", "CREATE", "TOPIC", "bobs", "/v1/topics"))
        gw.expect_problem(self.call("DELETE", "/v1/topics/orders", user="alice"),
                          *forbidden("User:alice", "DELETE", "TOPIC", "orders", "/v1/topics/orders"))
        gw.expect(self.call("GET", "/v1/topics/orders", user="admin"), 200)

    def test_sql_and_pipelines_need_the_cluster(self):
        before = self.denied("ALTER", "CLUSTER")
        gw.expect_problem(self.call("POST", "/v1/sql", {"sql": "STOP JOB x"}, "alice"),
                          *forbidden("User:alice", "ALTER", "CLUSTER", "kafka-cluster", "/v1/sql"))
        self.assertEqual(self.denied("ALTER", "CLUSTER"), before + 1)
        gw.expect_problem(self.call("GET", "/v1/pipelines", user="alice"),
                          *forbidden("User:alice", "DESCRIBE", "CLUSTER", "kafka-cluster", "/v1/pipelines"))
        # The super user gets past the ACLs to the SQL itself.
        r = self.call("POST", "/v1/sql", {"sql": "SELEKT 1"}, "admin")
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["type"], "urn:runnel:problem:invalid-sql")
        gw.expect(self.call("GET", "/v1/pipelines", user="admin"), 200)

    def test_a_view_is_read_as_the_topic_named_as_it(self):
        script = ("CREATE TABLE src (`user` STRING) WITH ('connector' = 'topic', 'topic' = 'view-src');\n"
                  "CREATE MATERIALIZED VIEW view_users AS SELECT `user`, COUNT(*) AS n FROM src GROUP BY `user`;")
        gw.expect(self.call("POST", "/v1/sql", script.encode(), "admin", {"Content-Type": "text/plain"}), 200)
        gw.expect(self.call("POST", "/v1/topics/view-src/records", {"value": {"user": "u1"}}, "admin"), 200)
        gw.wait_for("the view's row", lambda: self.call("GET", "/v1/views/view_users/rows/u1", user="admin").status == 200)
        # alice may READ topics starting with view_ (PREFIXED), so the view too; bob may not.
        gw.expect(self.call("GET", "/v1/views/view_users/rows/u1", user="alice"), 200)
        gw.expect_problem(self.call("GET", "/v1/views/view_users/rows/u1", user="bob"),
                          *forbidden("User:bob", "READ", "TOPIC", "view_users", "/v1/views/view_users/rows/u1"))
        gw.expect_problem(self.call("GET", "/v1/views/view_users/events", user="bob"),
                          *forbidden("User:bob", "READ", "TOPIC", "view_users", "/v1/views/view_users/events"))

        async def subscribe(user):
            async with websockets.connect(self.ws_url(), extra_headers=basic(user), open_timeout=TIMEOUT) as ws:
                await ws.send(json.dumps({"type": "subscribe", "view": "view_users"}))
                return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))

        self.assertEqual(asyncio.run(subscribe("bob")), {
            "type": "error", "code": "forbidden", "message": "User:bob is not authorized to READ TOPIC 'view_users'"})
        self.assertEqual(asyncio.run(subscribe("alice"))["type"], "subscribed")

    def test_open_routes_stay_open(self):
        gw.expect(self.call("GET", "/v1/health"), 200)
        gw.expect(self.call("GET", "/v1/openapi.json", user="bob"), 200)
        gw.expect(self.call("GET", "/metrics", user="bob"), 200)


if __name__ == "__main__":
    harness.run_unittests("gateway_acl_test")
