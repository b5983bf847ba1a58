#!/usr/bin/python3
"""jobs_bench: durable pipelines inside `runnel serve`, end to end.

1. Throughput: 1,000,000 JSON events in a 4-partition topic, then a windowed_count pipeline
   (1 s tumbling windows, 1,000 keys) submitted over REST; events/s from its submission until
   its source has taken every event, exactly-once and at-least-once. The same events counted by
   a hand-written Python loop over the same JSON lines give the scale of "just parsing them"
   on this machine (not a target: Python is slow).
2. Window close to client: a pipeline keeps a materialized view (latest 100 ms window per key,
   at-least-once, as live views run); a WebSocket client is subscribed to the view. For each
   of 200 windows the bench appends the window's events, then the event that moves the
   watermark past its end, and takes the time from sending that append (acks=1) to the view
   change of that window arriving at the client (p50/p99/max), all on one clock. The same through the
   exactly-once output topic read over WebSocket adds the checkpoint interval (100 ms here).

Prints a table, then one JSON document (also written to --json FILE).

    bench/jobs_bench.py --build build/release --json build/bench-jobs.json
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "kafka"))
import harness  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
import websockets  # noqa: E402

EVENTS = 1_000_000
KEYS = 1000


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def source_taken(base, job):
    p = http("GET", f"{base}/v1/pipelines/{job}")
    return next((o["records_out"] for o in p["operators"] if o["operator"].endswith(".source")), 0)


def throughput(srv, delivery, lines, parallelism=1):
    base = srv.http
    topic = f"events-{delivery}-{parallelism}"
    http("POST", f"{base}/v1/topics", {"name": topic, "partitions": 4})
    prod = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                     "queue.buffering.max.messages": 2_000_000, "acks": "all"})
    for i, line in enumerate(lines):
        while True:
            try:
                prod.produce(topic, key=f"k{i % KEYS}", value=line)
                break
            except BufferError:
                prod.poll(0.01)
    assert prod.flush(120) == 0
    job = f"tp-{delivery}-{parallelism}"
    t0 = time.monotonic()
    http("POST", f"{base}/v1/pipelines", {"id": job, "template": "windowed_count", "parallelism": parallelism,
                                          "params": {
        "input": topic, "output": f"counts-{delivery}-{parallelism}", "key": "key", "time": "ts", "window_ms": 1000,
        "bound_ms": 100, "delivery": delivery, "output_partitions": 4}})
    while source_taken(base, job) < EVENTS:
        time.sleep(0.02)
    secs = time.monotonic() - t0
    return {"delivery": delivery, "parallelism": parallelism, "events": EVENTS, "seconds": round(secs, 3),
            "events_per_s": round(EVENTS / secs)}


def python_loop(lines):
    t0 = time.monotonic()
    counts = {}
    for line in lines:
        e = json.loads(line)
        k = (e["key"], e["ts"] // 1000)
        counts[k] = counts.get(k, 0) + 1
    secs = time.monotonic() - t0
    return {"events_per_s": round(len(lines) / secs), "windows": len(counts)}


async def window_latency(srv, windows=200):
    base = srv.http
    http("POST", f"{base}/v1/topics", {"name": "ticks", "partitions": 2})
    http("POST", f"{base}/v1/pipelines", {"id": "live", "template": "windowed_count", "checkpoint_interval_ms": 100,
                                          "params": {"input": "ticks", "output": "tick-counts", "key": "key",
                                                     "time": "ts", "window_ms": 100, "view": "tick-view",
                                                     "delivery": "exactly_once"}})
    prod = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 0, "acks": "1"})
    start = 2_000_000_000_000

    def append(records):
        acked = []
        for part, key, ts in records:
            prod.produce("ticks", key=key, value=json.dumps({"key": key, "ts": ts}), partition=part,
                         on_delivery=lambda err, m: acked.append(err))
        prod.flush(10)
        assert all(e is None for e in acked), acked

    # The view exists once the pipeline has started.
    append([(p, "warm", start - 1000) for p in range(2)])
    deadline = time.monotonic() + 30
    while True:
        try:
            http("GET", f"{base}/v1/views/tick-view")
            break
        except Exception:  # noqa: BLE001 - 404 until the pipeline runs
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    view_lat, topic_lat = [], []
    async with websockets.connect(f"ws://127.0.0.1:{srv.http_port}/v1/ws", max_size=None) as view_ws, \
               websockets.connect(f"ws://127.0.0.1:{srv.http_port}/v1/ws", max_size=None) as topic_ws:
        await view_ws.send(json.dumps({"type": "subscribe", "view": "tick-view"}))
        while json.loads(await view_ws.recv())["type"] != "snapshot_end":
            pass
        await topic_ws.send(json.dumps({"type": "subscribe", "topic": "tick-counts", "from": "latest"}))
        assert json.loads(await topic_ws.recv())["type"] == "subscribed"
        async def reader(ws, q):
            async for raw in ws:
                await q.put((time.monotonic(), json.loads(raw)))

        view_q, topic_q = asyncio.Queue(), asyncio.Queue()
        readers = [asyncio.create_task(reader(view_ws, view_q)), asyncio.create_task(reader(topic_ws, topic_q))]

        async def arrival(q, match):
            while True:
                t, m = await asyncio.wait_for(q.get(), 10)
                if match(m):
                    return t

        for w in range(windows):
            ws_start = start + w * 100
            await asyncio.to_thread(append, [(p, f"k{p}", ws_start + 10 + p) for p in range(2)])
            t_send = time.monotonic()
            await asyncio.to_thread(append, [(p, "tick", ws_start + 100) for p in range(2)])  # closes window w
            shown = harness.sql_time(ws_start)  # window_start as rows show a TIMESTAMP
            got_view = await arrival(view_q, lambda m: m.get("type") == "change" and m["row"]["window_start"] == shown)
            got_topic = await arrival(topic_q, lambda m: m.get("type") == "records" and any(
                r["value"]["window_start"] == shown for r in m["records"]))
            view_lat.append((got_view - t_send) * 1000)
            topic_lat.append((got_topic - t_send) * 1000)
        for r in readers:
            r.cancel()

    def stats(xs):
        xs = sorted(xs)
        return {"p50_ms": round(statistics.median(xs), 2), "p99_ms": round(xs[int(len(xs) * 0.99) - 1], 2),
                "max_ms": round(xs[-1], 2), "windows": len(xs)}
    return {"view_at_least_once": stats(view_lat), "topic_exactly_once": stats(topic_lat)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--json")
    args = ap.parse_args()
    binary = os.path.join(args.build, "src/app/runnel")
    lines = [json.dumps({"key": f"k{i % KEYS}", "ts": 1_000_000 + i // 10}) for i in range(EVENTS)]
    doc = {"machine": {"nproc": os.cpu_count(), "kernel": platform.release()}, "runnel_shards": 2}
    with harness.RunnelServer(binary, name="jobs-bench", shards=2) as srv:
        doc["throughput"] = [throughput(srv, "exactly_once", lines), throughput(srv, "at_least_once", lines),
                             throughput(srv, "exactly_once", lines, parallelism=2)]
        doc["python_loop"] = python_loop(lines)
        doc["window_close_to_client"] = asyncio.run(window_latency(srv))
    print("durable pipeline throughput (windowed_count, 1 s windows, 1,000 keys, 1M JSON events from the log)")
    print(f"{'delivery':<16}{'instances':>10}{'events/s':>14}{'seconds':>10}")
    for t in doc["throughput"]:
        print(f"{t['delivery']:<16}{t['parallelism']:>10}{t['events_per_s']:>14,}{t['seconds']:>10}")
    print(f"{'python loop':<16}{doc['python_loop']['events_per_s']:>14,}  (json.loads + dict count, same lines)")
    print("\nwindow close to client (from sending the append that closes a window to its result arriving)")
    print(f"{'path':<34}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for k, v in doc["window_close_to_client"].items():
        print(f"{k:<34}{v['p50_ms']:>9}{v['p99_ms']:>9}{v['max_ms']:>9}")
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
