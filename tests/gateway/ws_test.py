#!/usr/bin/python3
"""WebSocket subscriptions (/v1/ws) with Debian's python3-websockets against `runnel serve`.

1. 200 concurrent subscribers of one topic receive every record of every partition, in
   order, while records are produced over REST.
2. A stalled subscriber (tiny receive buffer, never reads) is closed as a slow consumer while
   the server's resident memory stays bounded and five normal subscribers get everything
   promptly; it then resumes from its last offsets and nothing is missing.
3. A subscriber resuming from an offset that retention already removed gets a `gap` message
   (from, to) before the data.
4. Bad messages close with 1008 / 1003 and a reason; ping gets pong; unknown topics get an
   error message.

Run: /usr/bin/python3 ws_test.py --runnel PATH
"""

import asyncio
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, metric, harness  # noqa: E402
import websockets  # noqa: E402


def ws_url(srv):
    return f"ws://127.0.0.1:{srv.http_port}/v1/ws"


def produce(srv, topic, records, acks="1"):
    r = expect(call("POST", f"{srv.http}/v1/topics/{topic}/records?acks={acks}", {"records": records}), 200, "produce")
    return r.json()["offsets"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Collector:
    """Receives a subscription's messages and checks order per partition."""

    def __init__(self, name, partitions):
        self.name = name
        self.next = {p: None for p in range(partitions)}
        self.values = {p: [] for p in range(partitions)}
        self.gaps = []
        self.errors = []
        self.count = 0

    def take(self, msg):
        m = json.loads(msg)
        t = m["type"]
        if t == "records":
            for r in m["records"]:
                p = r["partition"]
                assert r["topic"] == m["topic"] and p == m["partition"], m
                assert set(r) >= {"topic", "partition", "offset", "timestamp", "key", "value", "headers"}, r
                if self.next[p] is not None:
                    assert r["offset"] == self.next[p], \
                        f"{self.name}: partition {p} expected offset {self.next[p]}, got {r['offset']}"
                self.next[p] = r["offset"] + 1
                self.values[p].append(r["value"])
                self.count += 1
        elif t == "gap":
            self.gaps.append(m)
            self.next[m["partition"]] = m["to"]
        elif t == "error":
            self.errors.append(m)
        return m


async def subscriber(url, topic, partitions, total, name, start, done_at, cols=None):
    col = Collector(name, partitions)
    if cols is not None:
        cols.append(col)
    async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topic": topic, "from": start}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert first["type"] == "subscribed" and first["partitions"] == list(range(partitions)), first
        while col.count < total:
            col.take(await asyncio.wait_for(ws.recv(), 60))
    done_at[name] = time.monotonic()
    return col


def test_200_subscribers_in_order(srv):
    topic, parts, n = "fanout", 3, 3000
    expect(call("POST", f"{srv.http}/v1/topics", {"name": topic, "partitions": parts}), 201, "create")
    expected = {p: [] for p in range(parts)}

    async def run():
        done_at = {}
        subs = [asyncio.create_task(subscriber(ws_url(srv), topic, parts, n, f"s{i}",
                                               "earliest" if i % 2 else {"offsets": {"0": 0, "1": 0, "2": 0}},
                                               done_at)) for i in range(200)]
        # Produce while the subscribers connect, catch up and go live.
        loop = asyncio.get_running_loop()
        for b in range(30):
            recs = [{"key": f"k{(b * 100 + i) % 17}", "value": {"seq": b * 100 + i}} for i in range(100)]
            offs = await loop.run_in_executor(None, produce, srv, topic, recs)
            for r, o in zip(recs, offs):
                expected[o["partition"]].append((o["offset"], r["value"]))
            await asyncio.sleep(0.01)
        return await asyncio.wait_for(asyncio.gather(*subs), 240)

    cols = asyncio.run(run())
    for p in range(parts):
        expected[p].sort()
        want = [v for _, v in expected[p]]
        for c in cols:
            assert c.values[p] == want, f"{c.name} partition {p}: {len(c.values[p])} values, {len(want)} expected"
            assert not c.gaps and not c.errors, (c.gaps, c.errors)
    readers = metric(srv, "runnel_stream_partition_readers")
    assert readers <= parts, f"{readers} partition readers for {parts} partitions"


def test_stalled_client_is_closed_and_resumes(srv):
    topic, n, size = "stall", 40000, 1000
    expect(call("POST", f"{srv.http}/v1/topics", {"name": topic, "partitions": 1}), 201, "create")
    pid = srv.proc.pid
    baseline = rss_kib(pid)
    peak = [baseline]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    payload = "x" * size

    async def run():
        # The stalled client: a small receive buffer, and it never reads until told to.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        s.connect(("127.0.0.1", srv.http_port))
        stalled = await websockets.connect(ws_url(srv), sock=s, max_size=None, max_queue=1, read_limit=16 * 1024)
        await stalled.send(json.dumps({"type": "subscribe", "topic": topic, "from": "earliest"}))
        done_at = {}
        live = []
        normal = [asyncio.create_task(subscriber(ws_url(srv), topic, 1, n, f"n{i}", "earliest", done_at, live))
                  for i in range(5)]
        loop = asyncio.get_running_loop()
        for b in range(n // 500):
            await loop.run_in_executor(None, produce, srv, topic,
                                       [{"value": f"{b * 500 + i}:{payload}"} for i in range(500)])
            # Pace the producer to the normal clients (this Python process decodes every
            # message of all five): each stays within half a MiB of the head, while the
            # stalled client falls further behind with every batch.
            deadline = time.monotonic() + 60
            while len(live) < 5 or min(c.count for c in live) < (b + 1) * 500:
                assert time.monotonic() < deadline, f"normal clients stuck at {[c.count for c in live]}"
                await asyncio.sleep(0.005)
        produced_at = time.monotonic()
        cols = await asyncio.wait_for(asyncio.gather(*normal), 120)
        lag = max(done_at.values()) - produced_at
        # The server closes the stalled client; wait for its counter.
        deadline = time.monotonic() + 30
        while metric(srv, 'runnel_stream_slow_consumer_closes_total{protocol="ws"}') < 1:
            assert time.monotonic() < deadline, "stalled client was not closed as a slow consumer"
            await asyncio.sleep(0.1)
        assert metric(srv, 'runnel_stream_closes_total{protocol="ws",reason="slow_consumer"}') >= 1
        # Now read what reached it, until the close.
        col = Collector("stalled", 1)
        code = None
        try:
            while True:
                col.take(await asyncio.wait_for(stalled.recv(), 30))
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else 1006
        assert code in (4008, 1006), f"stalled client closed with {code}"
        got_before = col.count
        assert got_before < n, "the stalled client got everything: it was not stalled"
        # Resume from the last offset seen.
        resume_from = col.next[0] or 0
        async with websockets.connect(ws_url(srv), max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": topic, "from": {"offsets": {"0": resume_from}}}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            while col.count < n:
                col.take(await asyncio.wait_for(ws.recv(), 60))
        return cols, col, lag, got_before

    try:
        cols, col, lag, got_before = asyncio.run(run())
    finally:
        stop.set()
        sampler.join()
    want = [f"{i}:{payload}" for i in range(n)]
    for c in cols:
        assert c.values[0] == want, f"{c.name}: {len(c.values[0])} of {n}"
    assert col.values[0] == want, f"resumed stalled client: {len(col.values[0])} of {n}, gaps {col.gaps}"
    grown_mib = (peak[0] - baseline) / 1024
    produced_mib = n * size / (1 << 20)
    print(f"     stalled client got {got_before} records before its close; server RSS grew {grown_mib:.1f} MiB "
          f"while {produced_mib:.0f} MiB were produced; normal clients finished {lag:.2f} s after the last produce")
    with open(f"/proc/{pid}/maps") as f:
        sanitized = "libasan" in f.read()  # ASan keeps freed memory in quarantine: RSS says nothing
    if not sanitized:
        assert grown_mib < 24, f"server RSS grew {grown_mib:.1f} MiB with a stalled client"
    assert lag < 15, f"normal subscribers finished {lag:.1f} s after the last produce"
    assert "slow consumer" in srv.log()


def test_retention_gap(srv):
    topic = "short"
    expect(call("POST", f"{srv.http}/v1/topics",
                {"name": topic, "partitions": 1, "configs": {"segment.bytes": "1024", "retention.bytes": "2048"}}),
           201, "create")
    for b in range(20):
        produce(srv, topic, [{"value": f"{b}-{i}-" + "y" * 100} for i in range(10)])
    # Retention runs every 100 ms in this server; wait until it removed the start.
    deadline = time.monotonic() + 30
    while True:
        t = call("GET", f"{srv.http}/v1/topics/{topic}").json()
        start, end = t["partitions"][0]["log_start_offset"], t["partitions"][0]["log_end_offset"]
        if start > 0:
            break
        assert time.monotonic() < deadline, f"retention did not remove anything: {t}"
        time.sleep(0.05)

    async def run():
        col = Collector("gap", 1)
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": topic, "from": {"offsets": {"0": 3}}}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            first = col.take(await asyncio.wait_for(ws.recv(), 30))
            assert first["type"] == "gap", first
            while col.next[0] is None or col.next[0] < end:
                col.take(await asyncio.wait_for(ws.recv(), 30))
        return first, col

    first, col = asyncio.run(run())
    assert first["from"] == 3 and first["to"] >= start and first["reason"] == "retention", (first, start)
    assert first["partition"] == 0 and first["topic"] == topic
    assert col.next[0] == end


def test_bad_messages_and_control(srv):
    async def run():
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv()) == {"type": "pong"}
            await ws.send(json.dumps({"type": "subscribe", "topic": "no-such-topic"}))
            m = json.loads(await ws.recv())
            assert m == {"type": "error", "code": "unknown-topic", "message": "topic 'no-such-topic' does not exist"}, m
            pong = await ws.ping()
            await asyncio.wait_for(pong, 10)  # protocol-level ping answered
            await ws.send("{not json")
            try:
                await asyncio.wait_for(ws.recv(), 10)
                raise AssertionError("no close after malformed JSON")
            except websockets.ConnectionClosed as e:
                assert e.rcvd.code == 1008 and e.rcvd.reason.startswith("malformed JSON"), e
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send(json.dumps({"type": "dance"}))
            try:
                await asyncio.wait_for(ws.recv(), 10)
                raise AssertionError("no close after an unknown type")
            except websockets.ConnectionClosed as e:
                assert e.rcvd.code == 1008, e
                assert e.rcvd.reason == 'unknown message type "dance" (subscribe, unsubscribe, ping)', e.rcvd.reason
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send(b"\x00\x01")
            try:
                await asyncio.wait_for(ws.recv(), 10)
                raise AssertionError("no close after a binary message")
            except websockets.ConnectionClosed as e:
                assert e.rcvd.code == 1003 and e.rcvd.reason == "binary messages are not supported", e
        # The three closes above, by reason.
        assert metric(srv, 'runnel_stream_closes_total{protocol="ws",reason="bad_message"}') >= 3

    asyncio.run(run())


def test_deleted_topic_ends_subscriptions(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "doomed-ws", "partitions": 2}), 201, "create")

    async def run():
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topic": "doomed-ws"}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            produce(srv, "doomed-ws", [{"value": "x", "partition": 0}, {"value": "y", "partition": 1}])
            got = 0
            while got < 2:
                m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                got += len(m.get("records", []))
            expect(call("DELETE", f"{srv.http}/v1/topics/doomed-ws"), 204, "delete")
            ends = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(2)]
            for e in ends:
                assert e == {"type": "error", "code": "subscription-ended",
                             "message": "topic 'doomed-ws' was deleted"}, e
            await ws.send(json.dumps({"type": "ping"}))  # the connection stays usable
            assert json.loads(await ws.recv()) == {"type": "pong"}

    asyncio.run(run())


def main():
    binary = harness.runnel_binary()
    with harness.RunnelServer(binary, name="gw-ws", shards=2, extra_args=["--retention-check-ms", "100"]) as srv:
        code = gw.run_tests("ws_test", [test_bad_messages_and_control, test_200_subscribers_in_order,
                                        test_stalled_client_is_closed_and_resumes, test_retention_gap,
                                        test_deleted_topic_ends_subscriptions], srv)
        errors = [w for w in srv.warnings() if re.search(r"\s(error|critical)\s", w)]
        assert not errors, errors
    return code


if __name__ == "__main__":
    sys.exit(main())
