#!/usr/bin/python3
"""ws_bench: the gateway's WebSocket push, measured end to end, with Redis pub/sub as the peer.

1. Produce-to-WebSocket latency: bench/ws_lat (C++: librdkafka producer and Beast WebSocket
   client in one process) sends records at a fixed rate (10K and 100K records/s) to
   `runnel serve`, each stamped with the time it was due, and takes for every record the time
   from due to arrival at its WebSocket subscription (p50/p99/p99.9), on one clock.
2. Fan-out: 1,000 subscribers (WebSocket clients spread over client processes) each receive
   every one of N records of 100 bytes; records/s delivered = subscribers x N / (last arrival
   - first arrival). The same clients, in the same run, subscribe to a Redis pub/sub channel
   (redis-server started here on a free port) and receive the same N payloads published
   pipelined over one connection.

The fan-out clients are Python (asyncio) in several processes: they share the machine's cores
with the servers, so both systems are measured under the same client cost. Prints a
table, then one JSON document (also written to --json FILE).

    bench/ws_bench.py --build build/release --json build/bench-ws.json
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

PAYLOAD = 100
# Each client's send-queue bound on the server. The Python fan-out clients pause for tens of
# milliseconds now and then (a process starting, the garbage collector) on a machine whose
# cores they share with both servers; the bench gives them 32 MiB rather than the default 1 MiB.
CLIENT_QUEUE_BYTES = 32 << 20


def log(msg):
    print(f"ws_bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


class Runnel:
    def __init__(self, binary, scratch):
        self.binary = binary
        self.dir = os.path.join(scratch, "runnel")
        self.proc = None

    def start(self):
        self.logname = os.path.join(os.path.dirname(self.dir), "runnel.log")
        self.logf = open(self.logname, "w")
        self.proc = subprocess.Popen([self.binary, "serve", "--data-dir", self.dir, "--kafka-addr", "127.0.0.1:0",
                                      "--http-addr", "127.0.0.1:0", "--shards", "2",
                                      "--http-client-queue-bytes", str(CLIENT_QUEUE_BYTES)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.logf)
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(self.logname) as f:
                text = f.read()
            m = re.search(r"Kafka listener on 127\.0\.0\.1:(\d+), HTTP listener on 127\.0\.0\.1:(\d+)", text)
            if m:
                self.kafka = f"127.0.0.1:{m.group(1)}"
                self.http_port = int(m.group(2))
                self.http = f"http://127.0.0.1:{self.http_port}"
                return
            time.sleep(0.02)
        raise RuntimeError(f"runnel serve did not start:\n{text}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Redis:
    def __init__(self, scratch):
        self.dir = os.path.join(scratch, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir,
                                      "--client-output-buffer-limit", "pubsub 0 0 0"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def resp(*parts):
    out = [f"*{len(parts)}\r\n".encode()]
    for p in parts:
        b = p if isinstance(p, bytes) else str(p).encode()
        out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return b"".join(out)


# ---- producer processes ------------------------------------------------------------------

def burst_producer_kafka(bootstrap, topic, n, out):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 2, "compression.type": "none",
                  "queue.buffering.max.messages": 1000000})
    v = b"x" * PAYLOAD
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value=v, partition=0)
                break
            except BufferError:
                p.poll(0.001)
    p.flush(60)
    out.put(n)


def burst_producer_redis(port, channel, n, out):
    s = socket.create_connection(("127.0.0.1", port))
    cmd = resp("PUBLISH", channel, b"x" * PAYLOAD)
    chunk = 1000
    sent = 0
    f = s.makefile("rb")
    while sent < n:
        k = min(chunk, n - sent)
        s.sendall(cmd * k)
        for _ in range(k):
            f.readline()
        sent += k
    s.close()
    out.put(n)


# ---- subscriber processes ----------------------------------------------------------------

async def ws_client(url, topic, n, first, last):
    import websockets
    async with websockets.connect(url, max_size=None, open_timeout=60, close_timeout=5) as ws:
        # The topic is empty when the subscribers connect: "earliest" misses nothing.
        await ws.send(json.dumps({"type": "subscribe", "topic": topic, "from": "earliest"}))
        json.loads(await ws.recv())
        got = 0
        yield True
        while got < n:
            m = json.loads(await ws.recv())
            if m["type"] == "records":
                if got == 0:
                    first.append(time.time())
                got += len(m["records"])
        last.append(time.time())


async def redis_client(port, channel, n, first, last):
    r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    w.write(resp("SUBSCRIBE", channel))
    await w.drain()
    for _ in range(6):  # *3, $9, subscribe, $N, channel, :1
        await r.readline()
    yield True
    got = 0
    while got < n:
        await r.readline()                 # *3
        await r.readline(); await r.readline()   # $7 message
        await r.readline(); await r.readline()   # $N channel
        size = int((await r.readline())[1:])
        await r.readexactly(size + 2)
        if got == 0:
            first.append(time.time())
        got += 1
    last.append(time.time())
    w.close()


def fanout_client_process(kind, target, topic, n, count, ready_q, result_q):
    async def run():
        first, last = [], []
        gens = []
        for _ in range(count):
            g = ws_client(target, topic, n, first, last) if kind == "runnel" else redis_client(target, topic, n, first, last)
            gens.append(g)
        # Connect and subscribe all, then report ready.
        await asyncio.gather(*(g.__anext__() for g in gens))
        ready_q.put(count)

        async def drain(g):
            try:
                await g.__anext__()
            except StopAsyncIteration:
                pass
        await asyncio.wait_for(asyncio.gather(*(drain(g) for g in gens)), 600)
        result_q.put((min(first), max(last), len(last)))

    asyncio.run(run())


def fanout(kind, target, topic, subscribers, n, procs, produce):
    ctx = multiprocessing.get_context("spawn")
    ready_q, result_q, prod_q = ctx.Queue(), ctx.Queue(), ctx.Queue()
    per = [subscribers // procs + (1 if i < subscribers % procs else 0) for i in range(procs)]
    ps = [ctx.Process(target=fanout_client_process, args=(kind, target, topic, n, c, ready_q, result_q)) for c in per]
    for p in ps:
        p.start()
    ready = 0
    while ready < subscribers:
        ready += ready_q.get(timeout=300)
    pp = ctx.Process(target=produce, args=(prod_q,))
    t0 = time.time()
    pp.start()
    prod_q.get(timeout=300)
    pp.join()
    results = [result_q.get(timeout=600) for _ in ps]
    for p in ps:
        p.join()
    first = min(r[0] for r in results)
    last = max(r[1] for r in results)
    done = sum(r[2] for r in results)
    assert done == subscribers, f"{done} of {subscribers} subscribers finished"
    return {"subscribers": subscribers, "records": n, "seconds": last - first,
            "records_per_s_delivered": subscribers * n / (last - first), "produce_started_to_last_s": last - t0}


# ---- latency -----------------------------------------------------------------------------

def latency(ws_lat, runnel, topic, rate, seconds):
    """bench/ws_lat: a paced librdkafka producer and a Beast WebSocket subscriber, one clock."""
    p = subprocess.run([ws_lat, "--brokers", runnel.kafka, "--http", f"127.0.0.1:{runnel.http_port}",
                        "--topic", topic, "--rate", str(rate), "--seconds", str(seconds), "--size", str(PAYLOAD)],
                       capture_output=True, text=True, timeout=seconds + 120)
    if not p.stdout.strip():
        raise RuntimeError(f"ws_lat failed ({p.returncode}): {p.stderr}")
    r = json.loads(p.stdout)
    if p.returncode != 0:
        log(f"latency at {rate}/s: {r['received']} of {r['sent']} records arrived ({r['closed'] or 'timed out'})")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="build directory (runnel and bench/ws_lat)")
    ap.add_argument("--json")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rates", default="10000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--fanout-records", type=int, default=2000)
    ap.add_argument("--client-procs", type=int, default=4)
    args = ap.parse_args()
    for tool in ("redis-server",):
        if not shutil.which(tool):
            log(f"{tool} not found")
            return 2
    scratch = tempfile.mkdtemp(prefix="ws-bench-")
    runnel = Runnel(os.path.join(args.build, "src", "app", "runnel"), scratch)
    ws_lat = os.path.join(args.build, "bench", "ws_lat")
    redis = Redis(scratch)
    doc = {"bench": "ws_bench", "machine": {"nproc": os.cpu_count(), "platform": platform.platform(),
                                              "loadavg_before": os.getloadavg()},
           "config": {"payload_bytes": PAYLOAD, "seconds": args.seconds, "client_procs": args.client_procs,
                      "repeat": args.repeat, "client_queue_bytes": CLIENT_QUEUE_BYTES},
           "latency": [], "fanout": {}}
    code = 0
    try:
        runnel.start()
        redis.start()
        for rate in [int(r) for r in args.rates.split(",")]:
            # The machine's cores are shared: each rate runs --repeat times; the table shows the
            # run with the median p99, the JSON has every run.
            runs = []
            for i in range(args.repeat):
                topic = f"lat-{rate}-{i}"
                http("POST", f"{runnel.http}/v1/topics", {"name": topic, "partitions": 1})
                log(f"latency at {rate} records/s for {args.seconds} s (run {i + 1} of {args.repeat})")
                runs.append(latency(ws_lat, runnel, topic, rate, args.seconds))
            median = sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2]
            doc["latency"].append(dict(median, runs=runs))
        http("POST", f"{runnel.http}/v1/topics", {"name": "fan", "partitions": 1})
        n = args.fanout_records
        log(f"fan-out: {n} records to {args.subscribers} WebSocket subscribers")
        doc["fanout"]["runnel"] = fanout("runnel", f"ws://127.0.0.1:{runnel.http_port}/v1/ws", "fan", args.subscribers,
                                         n, args.client_procs, _Bound(burst_producer_kafka, runnel.kafka, "fan", n))
        log(f"fan-out: {n} messages to {args.subscribers} Redis pub/sub subscribers")
        doc["fanout"]["redis"] = fanout("redis", redis.port, "fan", args.subscribers, n, args.client_procs,
                                        _Bound(burst_producer_redis, redis.port, "fan", n))
        doc["fanout"]["runnel_vs_redis"] = (doc["fanout"]["runnel"]["records_per_s_delivered"]
                                            / doc["fanout"]["redis"]["records_per_s_delivered"])
    except Exception as e:  # noqa: BLE001 - report and still print what was measured
        log(f"failed: {e!r}")
        doc["error"] = repr(e)
        code = 1
    finally:
        runnel.stop()
        redis.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(doc)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return code


class _Bound:
    """A picklable producer call: fn(*args, out_queue)."""

    def __init__(self, fn, *args):
        self.fn = fn
        self.args = args

    def __call__(self, out):
        self.fn(*self.args, out)


def print_table(doc):
    print(f"ws_bench: gateway WebSocket push vs Redis pub/sub, {doc['config']['payload_bytes']} B records, "
          f"nproc {doc['machine']['nproc']}")
    print(f"{'produce -> WebSocket latency':<34} {'sent':>8} {'recv':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}")
    for r in doc["latency"]:
        print(f"  {r['rate']:>7.0f} records/s for {r['seconds']:.0f} s{'':<8} {r['sent']:>8} {r['received']:>8} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['p999_ms']:>9.2f}")
    f = doc.get("fanout", {})
    if "runnel" in f and "redis" in f:
        print(f"{'fan-out':<34} {'subs':>8} {'records':>8} {'seconds':>8} {'records/s delivered':>20}")
        for k, label in (("runnel", "runnel WebSocket /v1/ws"), ("redis", "Redis pub/sub")):
            r = f[k]
            print(f"  {label:<32} {r['subscribers']:>8} {r['records']:>8} {r['seconds']:>8.2f} "
                  f"{r['records_per_s_delivered']:>20.0f}")
        print(f"  runnel / redis: {f['runnel_vs_redis']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
