#!/usr/bin/python3
"""The REST API of `runnel serve` (/v1) with urllib: every route, and every failure checked as
an exact RFC 9457 problem. Records produced over REST are read back over REST and with
confluent-kafka; records produced with confluent-kafka are read back over REST. A second
server checks the bearer token; a third start checks that a non-loopback address without a
token is refused.

Run: /usr/bin/python3 rest_test.py --runnel PATH
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, expect_problem, harness  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from kafka.partitioner.default import murmur2  # noqa: E402


def test_health(srv):
    r = expect(call("GET", f"{srv.http}/v1/health"), 200, "health")
    assert r.headers.get("Content-Type") == "application/json"
    body = r.json()
    assert body["status"] == "ok" and isinstance(body["topics"], int), body


def test_create_list_describe_delete(srv):
    base = srv.http
    r = expect(call("POST", f"{base}/v1/topics",
                    {"name": "orders", "partitions": 3, "configs": {"retention.ms": "3600000", "segment.bytes": 1048576}}),
               201, "create")
    assert r.headers.get("Location") == "/v1/topics/orders", r.headers
    t = r.json()
    assert t["name"] == "orders" and len(t["partitions"]) == 3, t
    assert t["configs"]["retention.ms"] == "3600000" and t["configs"]["segment.bytes"] == "1048576", t
    assert [p["log_end_offset"] for p in t["partitions"]] == [0, 0, 0], t
    assert len(t["id"]) == 36, t
    names = [x["name"] for x in expect(call("GET", f"{base}/v1/topics"), 200, "list").json()["topics"]]
    assert "orders" in names, names
    d = expect(call("GET", f"{base}/v1/topics/orders"), 200, "describe").json()
    assert d == t, (d, t)
    expect_problem(call("POST", f"{base}/v1/topics", {"name": "orders"}), 409, "topic-exists", "Topic already exists",
                   "cannot create topic 'orders': topic 'orders' already exists", "/v1/topics")
    expect(call("POST", f"{base}/v1/topics", {"name": "doomed"}), 201, "create doomed")
    r = expect(call("DELETE", f"{base}/v1/topics/doomed"), 204, "delete")
    assert r.body == b"", r
    expect_problem(call("GET", f"{base}/v1/topics/doomed"), 404, "unknown-topic", "Unknown topic",
                   "topic 'doomed' does not exist", "/v1/topics/doomed")
    expect_problem(call("DELETE", f"{base}/v1/topics/doomed"), 404, "unknown-topic", "Unknown topic",
                   "topic 'doomed' does not exist", "/v1/topics/doomed")


def test_create_topic_bad_bodies(srv):
    url = f"{srv.http}/v1/topics"
    expect_problem(call("POST", url, b'{"name": "x",'), 400, "malformed-json", "Malformed JSON",
                   "the body is not JSON: incomplete JSON at line 1, column 14 (byte 13, the end of the body)",
                   "/v1/topics")
    expect_problem(call("POST", url, ["x"]), 400, "invalid-request", "Invalid request",
                   "the body must be an object: {\"name\":…,\"partitions\":N,\"configs\":{…}}", "/v1/topics")
    expect_problem(call("POST", url, {"partitions": 2}), 400, "invalid-request", "Invalid request",
                   "\"name\" is required", "/v1/topics")
    expect_problem(call("POST", url, {"name": "a", "replicas": 2}), 400, "invalid-request", "Invalid request",
                   "unknown field \"replicas\" (expected name, partitions, configs)", "/v1/topics")
    expect_problem(call("POST", url, {"name": "a", "partitions": 0}), 400, "invalid-request", "Invalid request",
                   "\"partitions\" must be an integer from 1 to 100000", "/v1/topics")
    expect_problem(call("POST", url, {"name": "bad/name"}), 400, "invalid-topic", "Invalid topic",
                   "topic name 'bad/name' has a character outside [a-zA-Z0-9._-]",
                   "/v1/topics")
    r = call("POST", url, {"name": "a", "configs": {"retention.ms": "soon"}})
    assert r.status == 400 and r.json()["type"] == "urn:runnel:problem:invalid-config", r
    assert "retention.ms" in r.json()["detail"], r


def test_produce_and_read_back(srv):
    base = srv.http
    expect(call("POST", f"{base}/v1/topics", {"name": "events", "partitions": 4}), 201, "create")
    one = expect(call("POST", f"{base}/v1/topics/events/records",
                      {"key": "k1", "value": {"n": 1}, "headers": {"src": "rest", "none": None}, "partition": 2,
                       "timestamp": 1700000000000}), 200, "one").json()
    assert one == {"offsets": [{"partition": 2, "offset": 0}]}, one
    many = [{"key": f"user-{i}", "value": f"v{i}"} for i in range(50)]
    r = expect(call("POST", f"{base}/v1/topics/events/records?acks=1", {"records": many}), 200, "many").json()
    assert len(r["offsets"]) == 50
    for i, o in enumerate(r["offsets"]):
        want = (murmur2(f"user-{i}".encode()) & 0x7fffffff) % 4
        assert o["partition"] == want, f"record {i} (key user-{i}) went to {o['partition']}, Java clients pick {want}"
    # Offsets of one partition are consecutive in the order sent.
    per = {}
    for o in r["offsets"]:
        per.setdefault(o["partition"], []).append(o["offset"])
    for p, offs in per.items():
        assert offs == list(range(offs[0], offs[0] + len(offs))), (p, offs)
    arr = expect(call("POST", f"{base}/v1/topics/events/records", [{"value": "a"}, {"value": "b"}]), 200, "array").json()
    assert len({o["partition"] for o in arr["offsets"]}) == 1, arr  # unkeyed: one partition per request

    got = expect(call("GET", f"{base}/v1/topics/events/records?partition=2&offset=0&limit=1"), 200, "read").json()
    rec = got["records"][0]
    assert rec == {"topic": "events", "partition": 2, "offset": 0, "timestamp": 1700000000000, "key": "k1",
                   "value": {"n": 1}, "headers": {"src": "rest", "none": None}}, rec
    assert got["next_offset"] == 1 and got["log_start_offset"] == 0, got
    # Everything back, partition by partition.
    seen = {}
    for p in range(4):
        page = expect(call("GET", f"{base}/v1/topics/events/records?partition={p}&limit=1000"), 200, "page").json()
        assert page["high_watermark"] == page["next_offset"], page
        for x in page["records"]:
            seen[(x["partition"], x["offset"])] = x
    for i, o in enumerate(r["offsets"]):
        x = seen[(o["partition"], o["offset"])]
        assert x["key"] == f"user-{i}" and x["value"] == f"v{i}", x
    # Without a partition: every partition, pages of `limit` shared among them, continued
    # with the previous page's next_offsets, until every record was seen once.
    across = {}
    query = ""
    for _ in range(1000):
        page = expect(call("GET", f"{base}/v1/topics/events/records?limit=8{query}"), 200, "all partitions").json()
        assert len(page["records"]) <= 8, page
        assert sorted(int(p) for p in page["next_offsets"]) == [0, 1, 2, 3], page
        assert [b["partition"] for b in page["partitions"]] == [0, 1, 2, 3], page
        for x in page["records"]:
            assert (x["partition"], x["offset"]) not in across, x
            across[(x["partition"], x["offset"])] = x
        if not page["records"]:
            assert all(page["next_offsets"][str(b["partition"])] == b["high_watermark"] for b in page["partitions"])
            break
        query = "&offsets=" + ",".join(f"{p}:{o}" for p, o in page["next_offsets"].items())
    assert across == seen, (len(across), len(seen))
    # By timestamp.
    page = expect(call("GET", f"{base}/v1/topics/events/records?partition=2&timestamp=1700000000001"), 200, "ts").json()
    assert all(x["offset"] >= 1 for x in page["records"]), page

    # confluent-kafka reads what REST wrote.
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("events", 2, 0)])
        msg = None
        deadline = time.monotonic() + 30
        while msg is None and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                msg = m
        assert msg is not None, "confluent-kafka got nothing"
        assert msg.key() == b"k1" and json.loads(msg.value()) == {"n": 1}, (msg.key(), msg.value())
        assert msg.timestamp()[1] == 1700000000000, msg.timestamp()
        assert (msg.headers() or []) == [("src", b"rest"), ("none", None)], msg.headers()
    finally:
        c.close()

    # REST reads what confluent-kafka wrote.
    p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "compression.type": "none", "linger.ms": 0})
    p.produce("events", key=b"ck", value=b"\xff\x00bin", partition=3, headers=[("h", b"x")])
    p.produce("events", key=b"ck2", value=b'[1,2,3]', partition=3)
    assert p.flush(30) == 0
    page = expect(call("GET", f"{base}/v1/topics/events/records?partition=3&limit=1000"), 200, "read kafka").json()
    tail = page["records"][-2:]
    assert tail[0]["key"] == "ck" and tail[0]["value_base64"] == "/wBiaW4=" and "value" not in tail[0], tail
    assert tail[0]["headers"] == {"h": "x"}, tail
    assert tail[1]["value"] == [1, 2, 3], tail


def test_compressed_batches_are_inflated(srv):
    """Batches a Kafka client compressed (every codec) come back as records over REST."""
    base = srv.http
    expect(call("POST", f"{base}/v1/topics", {"name": "packed", "partitions": 4}), 201, "create")
    codecs = ["gzip", "snappy", "lz4", "zstd"]
    for p, codec in enumerate(codecs):
        prod = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "compression.type": codec,
                         "linger.ms": 50})
        for i in range(200):
            prod.produce("packed", key=f"{codec}-{i}".encode(), value=json.dumps({"i": i, "pad": "z" * 50}).encode(),
                         partition=p, headers=[("codec", codec.encode())])
        assert prod.flush(30) == 0, codec
    for p, codec in enumerate(codecs):
        page = expect(call("GET", f"{base}/v1/topics/packed/records?partition={p}&limit=1000"), 200, codec).json()
        assert "skipped" not in page, page.get("skipped")
        recs = page["records"]
        assert [r["key"] for r in recs] == [f"{codec}-{i}" for i in range(200)], (codec, recs[:3])
        assert [r["value"]["i"] for r in recs] == list(range(200)), codec
        assert all(r["headers"] == {"codec": codec} for r in recs), codec
        assert [r["offset"] for r in recs] == list(range(200)), codec
        mid = expect(call("GET", f"{base}/v1/topics/packed/records?partition={p}&offset=150&limit=5"), 200, "mid").json()
        assert [r["offset"] for r in mid["records"]] == [150, 151, 152, 153, 154], (codec, mid)
        assert mid["next_offset"] == 155, mid


def test_records_failures(srv):
    base = srv.http
    expect(call("POST", f"{base}/v1/topics", {"name": "small", "partitions": 2}), 201, "create")
    url = f"{base}/v1/topics/small/records"
    inst = "/v1/topics/small/records"
    expect_problem(call("POST", url, b"{oops"), 400, "malformed-json", "Malformed JSON",
                   "the body is not JSON: syntax error at line 1, column 2 (byte 1)", inst)
    expect_problem(call("POST", url, []), 400, "invalid-request", "Invalid request", "no records to produce", inst)
    expect_problem(call("POST", url, [{"value": "a"}, {"vaule": "b"}]), 400, "invalid-request", "Invalid request",
                   "record 1: unknown field \"vaule\" (expected key, value, headers, partition, timestamp)", inst)
    expect_problem(call("POST", url, {"value": "a", "partition": 5}), 404, "unknown-partition", "Unknown partition",
                   "record 0: topic 'small' has 2 partitions, no partition 5", inst)
    expect_problem(call("POST", url + "?acks=0", {"value": "a"}), 400, "invalid-parameter", "Invalid parameter",
                   "acks must be 'all' or '1', not '0'", inst)
    expect_problem(call("POST", f"{base}/v1/topics/nope/records", {"value": "a"}), 404, "unknown-topic",
                   "Unknown topic", "topic 'nope' does not exist", "/v1/topics/nope/records")
    expect_problem(call("GET", f"{base}/v1/topics/nope/records"), 404, "unknown-topic", "Unknown topic",
                   "topic 'nope' does not exist", "/v1/topics/nope/records")
    expect_problem(call("GET", url + "?partition=9"), 404, "unknown-partition", "Unknown partition",
                   "topic 'small' has 2 partitions, no partition 9", inst)
    expect_problem(call("GET", url + "?partition=0&offset=3"), 400, "offset-out-of-range", "Offset out of range",
                   "offset 3 of partition 0 is outside the log, which holds [0, 0)", inst)
    expect_problem(call("GET", url + "?offsets=1:3"), 400, "offset-out-of-range", "Offset out of range",
                   "offset 3 of partition 1 is outside the log, which holds [0, 0)", inst)
    expect_problem(call("GET", url + "?offset=3"), 400, "invalid-parameter", "Invalid parameter",
                   "offset needs a partition; for every partition give offsets=PARTITION:OFFSET,…", inst)
    expect_problem(call("GET", url + "?offsets=0:1,0:2"), 400, "invalid-parameter", "Invalid parameter",
                   "offsets must be PARTITION:OFFSET pairs separated by commas, each partition once, not '0:1,0:2'",
                   inst)
    expect_problem(call("GET", url + "?offsets=5:0"), 404, "unknown-partition", "Unknown partition",
                   "topic 'small' has 2 partitions, no partition 5", inst)
    expect_problem(call("GET", url + "?partition=0&offset=1&timestamp=5"), 400, "invalid-parameter",
                   "Invalid parameter", "give offsets or a timestamp, not both", inst)
    expect_problem(call("GET", url + "?limit=abc"), 400, "invalid-parameter", "Invalid parameter",
                   "limit must be a non-negative integer, not 'abc'", inst)
    expect_problem(call("GET", url + "?limit=0"), 400, "invalid-parameter", "Invalid parameter",
                   "limit must be from 1 to 10000, not 0", inst)
    expect_problem(call("GET", url + "?colour=red"), 400, "invalid-parameter", "Invalid parameter",
                   "unknown query parameter 'colour' (expected partition, offset, offsets, timestamp, limit)", inst)
    expect_problem(call("GET", url + "?offset=%zz"), 400, "invalid-parameter", "Invalid parameter",
                   "broken percent escape in query parameter 'offset=%zz'", inst)


def test_oversize_wrong_method_unknown_route(srv):
    base = srv.http
    expect(call("POST", f"{base}/v1/topics", {"name": "big"}), 201, "create")
    body = json.dumps({"value": "x" * (1 << 20)}).encode()
    expect_problem(call("POST", f"{base}/v1/topics/big/records", body), 413, "payload-too-large", "Payload too large",
                   "the request body exceeds the limit of 1048576 bytes", "/v1/topics/big/records")
    r = call("PUT", f"{base}/v1/topics/big")
    expect_problem(r, 405, "method-not-allowed", "Method not allowed",
                   "/v1/topics/{name} does not support PUT; allowed: GET, DELETE", "/v1/topics/big")
    assert r.headers.get("Allow") == "GET, DELETE", r.headers
    r = call("DELETE", f"{base}/v1/topics")
    expect_problem(r, 405, "method-not-allowed", "Method not allowed",
                   "/v1/topics does not support DELETE; allowed: GET, POST", "/v1/topics")
    assert r.headers.get("Allow") == "GET, POST"
    expect_problem(call("GET", f"{base}/v1/nothing"), 404, "not-found", "Not found", "no route for GET /v1/nothing",
                   "/v1/nothing")
    expect_problem(call("GET", f"{base}/v1/topics/"), 404, "not-found", "Not found", "no route for GET /v1/topics/",
                   "/v1/topics/")
    expect_problem(call("GET", f"{base}/v1/ws"), 426, "upgrade-required", "Upgrade required",
                   "/v1/ws speaks WebSocket: send an Upgrade: websocket request", "/v1/ws")


def test_openapi_and_metrics(srv):
    doc = expect(call("GET", f"{srv.http}/v1/openapi.json"), 200, "openapi").json()
    assert doc["openapi"] == "3.1.0"
    for path in ["/v1/health", "/v1/topics", "/v1/topics/{name}", "/v1/topics/{name}/records",
                 "/v1/topics/{name}/events", "/v1/ws", "/metrics"]:
        assert path in doc["paths"], path
    r = expect(call("GET", f"{srv.http}/metrics"), 200, "metrics")
    assert r.headers.get("Content-Type") == "text/plain; version=0.0.4; charset=utf-8", r.headers
    text = r.body.decode()
    assert 'runnel_http_requests_total{route="/v1/topics/{name}",method="PUT",status="405"} 1' in text, text[:3000]
    assert 'runnel_partition_log_end_offset{topic="events",partition="2"} 1' in text, text[:3000]
    assert "process_resident_memory_bytes " in text and "process_open_fds " in text


def test_auth(binary):
    with harness.RunnelServer(binary, name="gw-auth", extra_args=["--http-token", "s3cret"]) as srv:
        expect(call("GET", f"{srv.http}/v1/health"), 200, "health needs no token")
        r = call("GET", f"{srv.http}/v1/topics")
        expect_problem(r, 401, "unauthorized", "Unauthorized",
                       "this server requires credentials (Authorization: Bearer TOKEN)", "/v1/topics")
        assert r.headers.get("WWW-Authenticate") == 'Bearer realm="runnel"', r.headers
        expect_problem(call("GET", f"{srv.http}/v1/topics", headers={"Authorization": "Bearer nope"}), 401,
                       "unauthorized", "Unauthorized", "the bearer token is not valid", "/v1/topics")
        expect(call("GET", f"{srv.http}/v1/topics", headers={"Authorization": "Bearer s3cret"}), 200, "with token")
        expect(call("GET", f"{srv.http}/v1/topics?access_token=s3cret"), 200, "token in query")
    # Beyond loopback a token is required: the server refuses to start. The address is from
    # TEST-NET-1 (RFC 5737), never assigned here, so nothing could listen even if it did start.
    import tempfile
    with tempfile.TemporaryDirectory(prefix="gw-auth-") as d:
        p = subprocess.run([binary, "serve", "--data-dir", os.path.join(d, "data"), "--kafka-addr", "127.0.0.1:0",
                            "--http-addr", "192.0.2.1:0", "--shards", "1"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert "authentication is required when the HTTP listener is not on a loopback address" in p.stderr, p.stderr


def main():
    binary = harness.runnel_binary()
    code = 0
    with harness.RunnelServer(binary, name="gw-rest", shards=2) as srv:
        code |= gw.run_tests("rest_test (server)", [
            test_health, test_create_list_describe_delete, test_create_topic_bad_bodies, test_produce_and_read_back,
            test_compressed_batches_are_inflated, test_records_failures, test_oversize_wrong_method_unknown_route, test_openapi_and_metrics], srv)
        assert not [w for w in srv.warnings() if "error" in w], srv.warnings()
    code |= gw.run_tests("rest_test (auth)", [test_auth], binary)
    return code


if __name__ == "__main__":
    sys.exit(main())
