#!/usr/bin/python3
"""Hostile HTTP input against `runnel serve` without a token on loopback.

1. Web pages of other sites cannot drive the API: a foreign Host (DNS rebinding) and a
   foreign Origin (cross-site forms, fetches and WebSockets) are refused with 403 problems,
   while same-origin pages, names the operator allowed and clients without Origin work.
2. Bodies must declare what they are (415 otherwise) and be UTF-8 (400 naming the byte);
   every answer is strict UTF-8 JSON, also for records and dead letters holding binary
   payloads, over REST and WebSocket.
3. A slowloris client is disconnected at the header deadline, a trickling body at the body
   deadline, while a normal client keeps being served; connections past
   --http-max-connections get 503 without harming the rest.
4. HOP(slide 1 ms, size 1 day) over three records is refused at the HOP call (it made
   86,400,000 rows and 2 GB before); the bound can be raised with SET.
5. A partition cut inside acknowledged data and one with a torn tail are counted in
   /metrics at recovery, and a produce to the corrupt one names the partition and the cause.
6. A pipeline whose state outgrows --pipeline-max-memory-bytes fails with the figures; the
   server goes on.

Run: /usr/bin/python3 hostile_test.py --runnel PATH
"""

import asyncio
import base64
import http.client
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, metric, expect_problem, harness  # noqa: E402
import websockets  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

HEADER_TIMEOUT_MS = 1500


def raw(srv, method, path, headers=None, body=None):
    """One request with exactly the headers given (Host included, none added)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return gw.Response(r.status, r.headers, r.read())
    finally:
        conn.close()


def strict_json(resp):
    """The body parsed as strict UTF-8 JSON (a stray byte fails here)."""
    return json.loads(resp.body.decode("utf-8", errors="strict"))


def ws_handshake(srv, origin):
    """The status line of a WebSocket upgrade sent with `origin` (None: no Origin header)."""
    with socket.create_connection(("127.0.0.1", srv.http_port), timeout=30) as s:
        lines = ["GET /v1/ws HTTP/1.1", f"Host: 127.0.0.1:{srv.http_port}", "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
        if origin:
            lines.append(f"Origin: {origin}")
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode()


def test_foreign_host_is_refused(srv):
    port = srv.http_port
    before = metric(srv, 'runnel_http_requests_refused_total{reason="host"}')
    evil = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}",
            "Content-Type": "text/plain"}
    expect_problem(raw(srv, "POST", "/v1/sql", evil, b"SHOW JOBS;"), 403, "forbidden-host", "Forbidden host",
                   f"this server does not answer to the host name 'attacker.example:{port}' "
                   "(allow it with --http-allowed-hosts)", "/v1/sql")
    r = raw(srv, "GET", "/v1/topics", {"Host": f"attacker.example:{port}"})
    assert r.status == 403 and strict_json(r)["type"] == "urn:runnel:problem:forbidden-host", r
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        expect(raw(srv, "GET", "/v1/topics", {"Host": host}), 200, host)
    assert metric(srv, 'runnel_http_requests_refused_total{reason="host"}') >= before + 2


def test_cross_origin_requests_are_refused(srv):
    port = srv.http_port
    host = f"127.0.0.1:{port}"
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "csrf", "partitions": 1}), 201, "create")
    detail = ("requests from the origin 'http://attacker.example' are refused: only this server's own pages and "
              "--http-allowed-origins may send them")
    # The form a page of another site can send without a preflight.
    expect_problem(raw(srv, "POST", "/v1/sql", {"Host": host, "Origin": "http://attacker.example",
                                                "Content-Type": "text/plain"}, b"SHOW JOBS;"),
                   403, "forbidden-origin", "Forbidden origin", detail, "/v1/sql")
    expect_problem(raw(srv, "POST", "/v1/topics/csrf/records", {"Host": host, "Origin": "http://attacker.example",
                                                               "Content-Type": "application/json"},
                       json.dumps({"value": "forged"}).encode()),
                   403, "forbidden-origin", "Forbidden origin", detail, "/v1/topics/csrf/records")
    expect_problem(raw(srv, "DELETE", "/v1/topics/csrf", {"Host": host, "Origin": "http://attacker.example"}),
                   403, "forbidden-origin", "Forbidden origin", detail, "/v1/topics/csrf")
    r = raw(srv, "GET", "/v1/topics/csrf/events", {"Host": host, "Origin": "null", "Accept": "text/event-stream"})
    assert r.status == 403 and strict_json(r)["type"] == "urn:runnel:problem:forbidden-origin", r
    assert ws_handshake(srv, "http://attacker.example") == "HTTP/1.1 403 Forbidden"
    # Nothing was written and the topic survived.
    t = expect(call("GET", f"{srv.http}/v1/topics/csrf"), 200, "topic").json()
    assert [p["log_end_offset"] for p in t["partitions"]] == [0], t
    assert metric(srv, 'runnel_http_requests_refused_total{reason="origin"}') >= 5


def test_same_origin_and_clients_without_origin_work(srv):
    port = srv.http_port
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "same-origin"}), 201, "create")
    for origin in (f"http://127.0.0.1:{port}", None):
        h = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
        if origin:
            h["Origin"] = origin
        r = raw(srv, "POST", "/v1/topics/same-origin/records", h, json.dumps({"value": "ok"}).encode())
        expect(r, 200, f"produce with Origin {origin}")
    r = raw(srv, "POST", "/v1/topics/same-origin/records",
            {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}", "Content-Type": "application/json"},
            json.dumps({"value": "ok"}).encode())
    expect(r, 200, "same-origin produce")
    r = raw(srv, "POST", "/v1/sql", {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}",
                                     "Content-Type": "text/plain"}, b"SHOW JOBS;")
    assert r.status == 200 and strict_json(r)["results"][0]["kind"] == "show_jobs", r
    assert ws_handshake(srv, f"http://127.0.0.1:{port}") == "HTTP/1.1 101 Switching Protocols"
    assert ws_handshake(srv, None) == "HTTP/1.1 101 Switching Protocols"


def test_operator_allowed_names(binary):
    with harness.RunnelServer(binary, name="gw-allowed", extra_args=[
            "--http-allowed-hosts", "runnel.internal,proxy.example:8443",
            "--http-allowed-origins", "https://app.example"]) as srv:
        port = srv.http_port
        expect(raw(srv, "GET", "/v1/topics", {"Host": "runnel.internal"}), 200, "allowed name, any port")
        expect(raw(srv, "GET", "/v1/topics", {"Host": "proxy.example:8443"}), 200, "allowed name:port")
        r = raw(srv, "GET", "/v1/topics", {"Host": "proxy.example:9999"})
        assert r.status == 403, r
        r = raw(srv, "POST", "/v1/topics", {"Host": f"127.0.0.1:{port}", "Origin": "https://app.example",
                                            "Content-Type": "application/json"}, json.dumps({"name": "x"}).encode())
        expect(r, 201, "allowed origin")
        r = raw(srv, "POST", "/v1/topics", {"Host": f"127.0.0.1:{port}", "Origin": "http://app.example",
                                            "Content-Type": "application/json"}, json.dumps({"name": "y"}).encode())
        assert r.status == 403, r


def test_bodies_must_declare_their_type(srv):
    expect_problem(call("POST", f"{srv.http}/v1/topics", json.dumps({"name": "t"}).encode(),
                        {"Content-Type": "text/plain"}),
                   415, "unsupported-media-type", "Unsupported media type",
                   "the body's Content-Type is 'text/plain'; /v1/topics takes application/json", "/v1/topics")
    expect_problem(call("POST", f"{srv.http}/v1/sql", b"SHOW JOBS;",
                        {"Content-Type": "application/x-www-form-urlencoded"}),
                   415, "unsupported-media-type", "Unsupported media type",
                   "the body's Content-Type is 'application/x-www-form-urlencoded'; /v1/sql takes application/sql, "
                   "text/plain or application/json", "/v1/sql")
    for ctype in ("application/sql", "text/plain; charset=utf-8", "application/json"):
        body = json.dumps({"sql": "SHOW JOBS;"}).encode() if ctype == "application/json" else b"SHOW JOBS;"
        r = call("POST", f"{srv.http}/v1/sql", body, {"Content-Type": ctype})
        assert r.status == 200, (ctype, r)


def test_bodies_must_be_utf8(srv):
    before = metric(srv, 'runnel_http_requests_refused_total{reason="encoding"}')
    r = call("POST", f"{srv.http}/v1/sql", b"\xff", {"Content-Type": "text/plain"})
    expect_problem(r, 400, "invalid-encoding", "Invalid text encoding",
                   "the body is not UTF-8: byte 0 (0xff) does not start a valid UTF-8 sequence", "/v1/sql")
    strict_json(r)
    r = call("POST", f"{srv.http}/v1/topics", b'{"name": "caf\xc3\xa9\xe9"}')
    expect_problem(r, 400, "invalid-encoding", "Invalid text encoding",
                   "the body is not UTF-8: byte 15 (0xe9) does not start a valid UTF-8 sequence", "/v1/topics")
    r = call("GET", f"{srv.http}/v1/topics/%ff%fe")
    assert r.status == 400 and strict_json(r)["type"] == "urn:runnel:problem:invalid-encoding", r
    assert metric(srv, 'runnel_http_requests_refused_total{reason="encoding"}') >= before + 3
    srv.assert_alive()


def produce_binary(srv, topic, records):
    p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 0})
    for key, value in records:
        p.produce(topic, key=key, value=value, partition=0)
    assert p.flush(30) == 0


def test_binary_records_are_json_over_rest_and_ws(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "binary", "partitions": 1}), 201, "create")
    key, value = b"\xff\x00k", b"\x80\x81\xfe\xff"
    produce_binary(srv, "binary", [(key, value)])
    r = expect(call("GET", f"{srv.http}/v1/topics/binary/records?partition=0&offset=0"), 200, "read")
    recs = strict_json(r)["records"]
    assert len(recs) == 1, recs
    assert base64.b64decode(recs[0]["key_base64"]) == key and base64.b64decode(recs[0]["value_base64"]) == value, recs

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{srv.http_port}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "binary", "from": "earliest"}))
            got = []
            while not got:
                m = await asyncio.wait_for(ws.recv(), 30)
                assert isinstance(m, str), m  # a text frame: UTF-8 by the protocol
                got += json.loads(m).get("records", [])
            return got

    got = asyncio.run(run())
    assert base64.b64decode(got[0]["value_base64"]) == value, got

    async def bad_type():
        # The close reason quotes the first 40 bytes of the type, which cut an "é" in two.
        async with websockets.connect(f"ws://127.0.0.1:{srv.http_port}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "x" + "\u00e9" * 40}, ensure_ascii=False))
            try:
                await asyncio.wait_for(ws.recv(), 30)
                raise AssertionError("no close after an unknown type")
            except websockets.ConnectionClosed as e:
                return e.rcvd

    rcvd = asyncio.run(bad_type())
    assert rcvd is not None and rcvd.code == 1008, rcvd  # a reason that is not UTF-8 fails the close (1007)
    assert rcvd.reason.startswith('unknown message type "x' + "\u00e9" * 19 + "\ufffd"), rcvd.reason


def test_dead_letter_of_a_binary_payload_is_json(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "dl-in", "partitions": 1}), 201, "create")
    produce_binary(srv, "dl-in", [(None, b"\xff\xfe{not json")])
    script = ("SET 'pipeline.name' = 'dl';\n"
              "CREATE TABLE src (a BIGINT) WITH ('connector' = 'topic', 'topic' = 'dl-in', 'format' = 'json');\n"
              "CREATE TABLE out_t (a BIGINT) WITH ('connector' = 'blackhole');\n"
              "INSERT INTO out_t SELECT a FROM src;\n")
    expect(call("POST", f"{srv.http}/v1/sql", script.encode(), {"Content-Type": "application/sql"}), 200, "sql")

    def dead_letters():
        r = call("GET", f"{srv.http}/v1/topics/dl.dead/records?partition=0&offset=0")
        return r.status == 200 and strict_json(r)["records"]

    recs = harness.wait_until(dead_letters, 60, "a record in dl.dead")
    v = recs[0]["value"]
    assert isinstance(v, dict), recs  # the dead letter is a JSON object, embedded as JSON
    assert base64.b64decode(v["payload_base64"]) == b"\xff\xfe{not json", v
    assert v["reason"], v
    expect(call("DELETE", f"{srv.http}/v1/pipelines/dl"), 204, "stop")


def test_slowloris_is_cut_at_the_header_deadline(srv):
    before = metric(srv, 'runnel_http_read_timeouts_total{phase="header"}')
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=60)
        s.sendall(b"GET /v1/topics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes its headers
        slow.append(s)
    started = time.monotonic()
    # A normal client is served while the slow ones hold their connections.
    expect(call("GET", f"{srv.http}/v1/health"), 200, "health while slowloris")
    for s in slow:
        for _ in range(100):  # keep trickling: one header line per read attempt
            try:
                s.sendall(b"X-a: b\r\n")
                s.settimeout(0.2)
                if s.recv(1) == b"":
                    break
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                break
        else:
            raise AssertionError("a slowloris connection stayed open for 20 s of trickling")
        s.close()
    held = time.monotonic() - started
    # Generous: the deadline is 1.5 s; the old server held such clients for 120 s.
    assert held < 60, f"slow connections held {held:.1f} s"
    harness.wait_until(lambda: metric(srv, 'runnel_http_read_timeouts_total{phase="header"}') >= before + 20, 30,
                       "20 header timeouts counted")
    expect(call("GET", f"{srv.http}/v1/health"), 200, "health after slowloris")


def test_slow_body_is_cut_at_the_body_deadline(srv):
    before = metric(srv, 'runnel_http_read_timeouts_total{phase="body"}')
    with socket.create_connection(("127.0.0.1", srv.http_port), timeout=60) as s:
        s.sendall(f"POST /v1/topics HTTP/1.1\r\nHost: 127.0.0.1:{srv.http_port}\r\nContent-Type: application/json\r\n"
                  "Content-Length: 1000\r\n\r\n{".encode())
        started = time.monotonic()
        s.settimeout(0.2)
        closed = False
        while time.monotonic() - started < 20 and not closed:
            try:
                s.sendall(b" ")
                closed = s.recv(1) == b""
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
        assert closed, "a request whose body trickles in stayed open for 20 s"
    harness.wait_until(lambda: metric(srv, 'runnel_http_read_timeouts_total{phase="body"}') >= before + 1, 30,
                       "a body timeout counted")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


HOP_TABLES = (
    "CREATE TABLE hop_in (v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)\n"
    "  WITH ('connector' = 'topic', 'topic' = 'hop-in', 'format' = 'json');\n"
    "CREATE TABLE hop_out (window_start TIMESTAMP(3), n BIGINT) WITH ('connector' = 'blackhole');\n")


def hop_insert(slide, size):
    return ("INSERT INTO hop_out SELECT window_start, COUNT(*)\n"
            f"FROM TABLE(HOP(TABLE hop_in, DESCRIPTOR(ts), INTERVAL {slide}, INTERVAL {size}))\n"
            "GROUP BY window_start, window_end;\n")


def test_hop_with_a_million_windows_per_row_is_refused(srv):
    """3 records through HOP(slide 1 ms, size 1 day) were 86,400,000 rows and 2 GB: now the
    script is refused at the HOP call, and the server's memory does not move."""
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "hop-in"}), 201, "create")
    for i in range(3):
        expect(call("POST", f"{srv.http}/v1/topics/hop-in/records", {"value": {"v": i, "ts": 1000 + i}}), 200, "produce")
    rss_before = rss_kib(srv.proc.pid)
    script = HOP_TABLES + hop_insert("'0.001' SECOND", "'1' DAY")
    r = call("POST", f"{srv.http}/v1/sql", script.encode(), {"Content-Type": "application/sql"})
    assert r.status == 400, r
    p = strict_json(r)
    assert p["type"] == "urn:runnel:problem:invalid-sql", p
    assert (p["line"], p["column"]) == (5, 12), p  # the HOP of FROM TABLE(HOP(…
    assert "HOP puts each row into 86400000 windows (size 86400000 ms / slide 1 ms), more than the limit of 1000" \
        in p["detail"], p
    # The bound is the script's to raise, and a bad value is refused at its SET.
    r = call("POST", f"{srv.http}/v1/sql",
             ("SET 'table.exec.window.max-windows-per-row' = 'lots';\n" + HOP_TABLES).encode(),
             {"Content-Type": "application/sql"})
    assert r.status == 400 and strict_json(r)["line"] == 1, r
    script = ("SET 'pipeline.name' = 'hop-ok';\nSET 'table.exec.window.max-windows-per-row' = '2000';\n" + HOP_TABLES
              + hop_insert("'1' SECOND", "'30' MINUTE"))  # 1800 windows per row
    r = call("POST", f"{srv.http}/v1/sql", script.encode(), {"Content-Type": "application/sql"})
    assert r.status == 200, r
    harness.wait_until(lambda: call("GET", f"{srv.http}/v1/pipelines/hop-ok").json()["state"] == "running", 60,
                       "the raised-bound pipeline running")
    expect(call("DELETE", f"{srv.http}/v1/pipelines/hop-ok"), 204, "stop")
    grown = rss_kib(srv.proc.pid) - rss_before
    assert grown < 200 * 1024, f"resident memory grew {grown} KiB"  # the old plan took 2 GB
    srv.assert_alive()


def health_over_new_connection(srv):
    """The raw answer to GET /v1/health on a fresh connection, read to its close."""
    with socket.create_connection(("127.0.0.1", srv.http_port), timeout=30) as s:
        s.sendall(f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{srv.http_port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk


def test_connections_past_the_limit_get_503(binary):
    with harness.RunnelServer(binary, name="gw-maxconn", extra_args=["--http-max-connections", "8"]) as srv:
        idle = [socket.create_connection(("127.0.0.1", srv.http_port), timeout=30) for _ in range(8)]
        # The count is taken in accept order, so the ninth connection is the one refused,
        # however the shards happen to be scheduled.
        data = health_over_new_connection(srv)
        assert data.startswith(b"HTTP/1.1 503"), data[:200]
        body = json.loads(data.split(b"\r\n\r\n", 1)[1].decode("utf-8"))
        assert body["detail"] == ("the server has 8 HTTP connections open, its limit (--http-max-connections); "
                                  "try again later"), body
        # The connections inside the limit are still served.
        first = idle[0]
        first.sendall(f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{srv.http_port}\r\nConnection: close\r\n\r\n"
                      .encode())
        answer = b""
        while chunk := first.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        for s in idle:
            s.close()
        # Once the idle ones are gone the server answers again, and counted what it refused.
        harness.wait_until(lambda: health_over_new_connection(srv).startswith(b"HTTP/1.1 200"), 30,
                           "health after the flood")
        assert metric(srv, 'runnel_http_requests_refused_total{reason="connections"}') >= 1


def test_storage_faults_show_in_metrics_and_answers(binary):
    """A partition cut inside acknowledged data is corrupt at recovery, one with bytes after its
    durable end has a torn tail: both are counted in /metrics, and a produce to the corrupt one
    is answered with a problem naming the partition and the cause."""
    import shutil
    import tempfile
    data = tempfile.mkdtemp(prefix="runnel-faults-")
    try:
        with harness.RunnelServer(binary, name="gw-faults", data_dir=data) as srv:
            for t in ("cut", "torn"):
                expect(call("POST", f"{srv.http}/v1/topics", {"name": t, "partitions": 1}), 201, t)
                for i in range(3):
                    expect(call("POST", f"{srv.http}/v1/topics/{t}/records?acks=all", {"value": f"v{i}" * 50}), 200, t)
        seg = lambda t: os.path.join(data, "topics", t, "0", "00000000000000000000.log")  # noqa: E731
        size = os.path.getsize(seg("cut"))
        with open(seg("cut"), "r+b") as f:
            f.truncate(size - 20)  # inside the last acknowledged batch
        with open(seg("torn"), "ab") as f:
            f.write(b"\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x01\x00half a batch")  # never acknowledged
        with harness.RunnelServer(binary, name="gw-faults", data_dir=data) as srv:
            assert metric(srv, "runnel_storage_corrupt_partitions_total") == 1, metric(srv, "runnel_storage_corrupt_partitions_total")
            assert metric(srv, "runnel_storage_torn_tails_truncated_total") == 1
            r = call("POST", f"{srv.http}/v1/topics/cut/records?acks=all", {"value": "more"})
            expect_problem(r, 507, "storage-error", "Storage failure",
                           "producing to partition 0 of 'cut': the partition holds a corrupt batch in durable data",
                           "/v1/topics/cut/records")
            expect(call("POST", f"{srv.http}/v1/topics/torn/records?acks=all", {"value": "more"}), 200, "torn is usable")
            # A pipeline writing into the corrupt partition fails, with the cause, and is counted.
            script = ("SET 'pipeline.name' = 'into-cut';\n"
                      "CREATE TABLE src (line STRING) WITH ('connector' = 'topic', 'topic' = 'torn', 'format' = 'raw');\n"
                      "CREATE TABLE dst (line STRING) WITH ('connector' = 'topic', 'topic' = 'cut', "
                      "'sink.delivery-guarantee' = 'at-least-once');\n"
                      "INSERT INTO dst SELECT line FROM src;\n")
            expect(call("POST", f"{srv.http}/v1/sql", script.encode(), {"Content-Type": "application/sql"}), 200, "sql")
            st = harness.wait_until(lambda: (lambda j: j if j["state"] == "failed" else None)(
                call("GET", f"{srv.http}/v1/pipelines/into-cut").json()), 60, "the pipeline into 'cut' failed")
            assert "corrupt" in st["error"], st
            assert metric(srv, "runnel_pipelines_failed_total") == 1
            for name in ("runnel_storage_disk_full_total", "runnel_storage_fsync_failures_total",
                         "runnel_pipelines_failed_total", 'runnel_storage_append_failures_total{cause="no_space"}'):
                text = call("GET", f"{srv.http}/metrics").body.decode()
                assert any(line.startswith(name + " ") for line in text.splitlines()), f"{name} is not in /metrics"
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_a_pipeline_over_its_memory_budget_fails_alone(binary):
    """GROUP BY over ever new keys grows state without bound: with a 64 KiB budget the pipeline
    fails with the figures at a checkpoint, is counted, and the server serves on."""
    with harness.RunnelServer(binary, name="gw-budget", extra_args=["--pipeline-max-memory-bytes", "65536"]) as srv:
        expect(call("POST", f"{srv.http}/v1/topics", {"name": "keys"}), 201, "create")
        script = ("SET 'pipeline.name' = 'per-key';\n"
                  "CREATE TABLE keys (k STRING) WITH ('connector' = 'topic', 'topic' = 'keys', 'format' = 'json');\n"
                  "CREATE TABLE counts (k STRING, n BIGINT) WITH ('connector' = 'blackhole');\n"
                  "INSERT INTO counts SELECT k, COUNT(*) FROM keys GROUP BY k;\n")
        expect(call("POST", f"{srv.http}/v1/sql", script.encode(), {"Content-Type": "application/sql"}), 200, "sql")

        def state():
            return call("GET", f"{srv.http}/v1/pipelines/per-key").json()

        harness.wait_until(lambda: state()["checkpoints"]["completed"] >= 1, 60, "a first checkpoint")
        small = state()
        assert small["state"] == "running" and 0 < small["memory_bytes"] < 65536, small
        for batch in range(10):  # 10,000 distinct keys of ~40 bytes each
            records = [{"value": {"k": f"key-{batch}-{i}-" + "x" * 30}} for i in range(1000)]
            expect(call("POST", f"{srv.http}/v1/topics/keys/records", {"records": records}), 200, "produce")
        st = harness.wait_until(lambda: (lambda j: j if j["state"] == "failed" else None)(state()), 60,
                                "the pipeline failed over its budget")
        assert st["error"].startswith("memory budget exceeded: operator state ") and \
            st["error"].endswith("more than the limit of 65536 bytes (--pipeline-max-memory-bytes)"), st
        assert st["memory_bytes"] > 65536, st
        assert metric(srv, "runnel_pipelines_memory_budget_exceeded_total") == 1
        assert metric(srv, "runnel_pipelines_failed_total") == 1
        assert metric(srv, 'runnel_job_memory_bytes{pipeline="per-key"}') > 0
        expect(call("GET", f"{srv.http}/v1/health"), 200, "the server serves on")
        srv.assert_alive()


def main():
    binary = harness.runnel_binary()
    with harness.RunnelServer(binary, name="gw-hostile", shards=2,
                              extra_args=["--http-header-timeout-ms", str(HEADER_TIMEOUT_MS),
                                          "--http-body-timeout-ms", str(HEADER_TIMEOUT_MS)]) as srv:
        code = gw.run_tests("hostile_test", [
            test_foreign_host_is_refused, test_cross_origin_requests_are_refused,
            test_same_origin_and_clients_without_origin_work, test_bodies_must_declare_their_type,
            test_bodies_must_be_utf8, test_binary_records_are_json_over_rest_and_ws,
            test_dead_letter_of_a_binary_payload_is_json, test_slowloris_is_cut_at_the_header_deadline,
            test_slow_body_is_cut_at_the_body_deadline, test_hop_with_a_million_windows_per_row_is_refused], srv)
    code |= gw.run_tests("hostile_test (own servers)", [test_operator_allowed_names,
                                                        test_connections_past_the_limit_get_503,
                                                        test_storage_faults_show_in_metrics_and_answers,
                                                        test_a_pipeline_over_its_memory_budget_fails_alone], binary)
    return code


if __name__ == "__main__":
    sys.exit(main())
