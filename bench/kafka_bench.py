#!/usr/bin/python3
"""kafka_bench: `runnel serve` through the Kafka protocol, side by side with Redis Streams and
NATS JetStream, and with the machine's limits (loopback TCP with iperf3, sequential writes with
fdatasync with fio), in one run on the same machine at the same record sizes.

Every server is started here on 127.0.0.1 with a free port and its own scratch directory under
--dir, and stopped (and its data removed) at the end, whatever happens. Produce throughput is
measured in interleaved rounds (each system takes its turn in every round, order rotated), so a
machine whose speed drifts (shared cores, a virtual disk that changes regime) is seen alike by
all. Prints a table, then one JSON document (also written to --json FILE); the ratios are
computed here. Exit status: 0 when every measurement ran, 1 when one failed, 2 when a tool is
missing.

    bench/kafka_bench.py --build build/release --dir build/bench-data --json build/bench-kafka.json

What each system is driven with:
  runnel  rdkafka_performance (librdkafka's own tool) produces and consumes; bench/kafka_lat
          (librdkafka) measures produce latency at a fixed rate.
  redis   redis-benchmark, XADD pipelined from 50 connections.
  nats    bench/nats_pub (libnats): js_PublishAsync with a window of pending acks.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

SIZES = (100, 1024)
# The targets.
TARGET_VS_REDIS = 5.0    # Runnel acks=all records/s >= 5x Redis appendfsync always, 100 B
TARGET_VS_FIO = 0.70     # Runnel acks=all MB/s at 1 KiB >= 70% of fio fdatasync=1 at 1 KiB
TARGET_P99_MS = 5.0      # Runnel produce p99 at half the measured maximum rate <= 5 ms
# librdkafka 2.0.2 (Debian bookworm) sends the last, partly filled batch of a run about 1 s late
# when linger.ms is left at its default; setting the same value (5 ms) explicitly avoids it (see
# docs/benchmarks.md). Every Kafka producer here sets it.
LINGER_EXPLICIT = ("-X", "linger.ms=5")
REDIS_CLIENTS = 50
REDIS_PIPELINE = 64
NATS_MAX_PENDING = 4096
# Beside each Runnel latency run, fio appends this many bytes per write at the same MB/s with an
# fdatasync after each: about what one group commit covers at those rates.
PACED_FIO_BLOCK = 64 * 1024


def log(msg):
    print(f"kafka_bench: {msg}", file=sys.stderr, flush=True)


def size_name(n):
    if n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_jiffies():
    """Busy (not idle, not iowait) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


SYNC_SECONDS = [0.0]


def settle():
    """Writes back every dirty page (sync) before a measured run, outside its timing, so no
    system pays at its own fdatasync for data another one left in the page cache (on ext4 a
    journal commit can carry other files' data along)."""
    t0 = time.monotonic()
    os.sync()
    SYNC_SECONDS[0] += time.monotonic() - t0


def run(cmd, timeout, **kw):
    """Runs a client to completion; returns (rc, stdout, stderr, cpu seconds, wall seconds)."""
    c0, t0 = children_cpu(), time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = -1, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), f"timed out after {timeout} s"
    return rc, out, err, children_cpu() - c0, time.monotonic() - t0


class Server:
    """A server process started by the benchmark, with its log in its scratch directory.

    `start` waits (with a deadline) for a ready line in the log; `stop` sends SIGTERM, waits,
    and kills it if it does not exit; the scratch directory is removed by the caller."""

    def __init__(self, name, cmd, logfile, ready_re, stop_signal=signal.SIGTERM):
        self.name, self.cmd, self.logfile, self.ready_re = name, cmd, logfile, re.compile(ready_re)
        self.stop_signal = stop_signal
        self.proc = None
        self.match = None
        self.exit_code = None
        self.stop_seconds = None

    def start(self, deadline_s=15):
        self._log = open(self.logfile, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            with open(self.logfile, errors="replace") as f:
                m = self.ready_re.search(f.read())
            if m:
                self.match = m
                return m
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was "
                                   f"ready: {self.tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready within {deadline_s} s: {self.tail()}")

    def cpu(self):
        return cpu_seconds(self.proc.pid) if self.proc and self.proc.poll() is None else 0.0

    def tail(self, n=5):
        try:
            with open(self.logfile, errors="replace") as f:
                return " | ".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            if self.proc:
                self.exit_code = self.proc.returncode
            return
        t0 = time.monotonic()
        self.proc.send_signal(self.stop_signal)
        try:
            self.exit_code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()
            self.exit_code = f"killed after 30 s ({self.stop_signal.name} ignored), {self.exit_code}"
        self.stop_seconds = time.monotonic() - t0
        self._log.close()


class Cell:
    """One system at one size and durability, summed over the rounds."""

    def __init__(self, system, label, size, durability, key):
        self.system, self.label, self.size, self.durability, self.key = (
            system, label, size, durability, key)
        self.records = 0
        self.seconds = 0.0
        self.rounds = []          # records/s of each round
        self.server_cpu = 0.0     # server CPU seconds during the measured runs
        self.client_cpu = 0.0
        self.wall = 0.0           # wall time of the runs (for CPU %)
        self.notes = []
        self.error = None

    def add(self, records, seconds, server_cpu, client_cpu, wall):
        self.records += records
        self.seconds += seconds
        self.rounds.append(records / seconds if seconds > 0 else 0.0)
        self.server_cpu += server_cpu
        self.client_cpu += client_cpu
        self.wall += wall

    def fail(self, why):
        if not self.error:
            self.error = why
        log(f"{self.label} {size_name(self.size)}: {why}")

    def rate(self):
        return self.records / self.seconds if self.seconds > 0 and not self.error else 0.0

    def mb_per_s(self):
        return self.rate() * self.size / 1e6

    def json(self):
        d = {"key": self.key, "system": self.system, "size": self.size,
             "durability": self.durability}
        if self.error:
            d["error"] = self.error
            return d
        d.update({"records": self.records, "seconds": round(self.seconds, 3),
                  "records_per_s": round(self.rate(), 1), "mb_per_s": round(self.mb_per_s(), 3),
                  "round_records_per_s": [round(r, 1) for r in self.rounds],
                  "server_cpu_percent": round(100 * self.server_cpu / self.wall, 1) if self.wall else None,
                  "client_cpu_percent": round(100 * self.client_cpu / self.wall, 1) if self.wall else None})
        if self.notes:
            d["notes"] = self.notes
        return d


# ------------------------------------------------------------------------------------------------
# Runnel through rdkafka_performance

RDPERF_PRODUCE_RE = re.compile(
    r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered \(offset (-?\d+), (\d+) failed\) "
    r"in (\d+)ms: \d+ msgs/s and [\d.]+ MB/s, (\d+) produce failures, (\d+) in queue")
RDPERF_CONSUME_RE = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms")


class Runnel:
    def __init__(self, args, scratch):
        self.args = args
        self.dir = os.path.join(scratch, "runnel")
        os.makedirs(self.dir)
        self.server = Server(
            "runnel",
            [args.runnel, "serve", "--data-dir", os.path.join(self.dir, "data"),
             "--kafka-addr", "127.0.0.1:0", "--shards", "2", "--http-addr", "127.0.0.1:0"],
            os.path.join(self.dir, "serve.log"), r"Kafka listener on 127\.0\.0\.1:(\d+)")
        self.brokers = None
        self.produced = {}  # topic -> records acknowledged into it

    def start(self):
        m = self.server.start()
        self.brokers = f"127.0.0.1:{m.group(1)}"

    def produce(self, topic, size, acks, count, timeout):
        """One rdkafka_performance produce run: (records, seconds, client cpu, wall) or raises."""
        rc, out, err, cpu, wall = run(
            [self.args.rdperf, "-P", "-t", topic, "-b", self.brokers, "-s", str(size),
             "-c", str(count), "-X", f"acks={acks}", *LINGER_EXPLICIT], timeout)
        m = None
        for m in RDPERF_PRODUCE_RE.finditer(out):
            pass
        if rc != 0 or not m:
            raise RuntimeError(f"rdkafka_performance exited {rc}: {(out + err)[-400:]}")
        produced, _, delivered, _, failed, ms, _, in_queue = (int(g) for g in m.groups())
        if delivered != count or failed or in_queue:
            raise RuntimeError(f"{delivered} of {count} delivered, {failed} failed, {in_queue} "
                               f"still queued")
        self.produced[topic] = self.produced.get(topic, 0) + delivered
        return delivered, ms / 1000.0, cpu, wall

    def consume(self, topic, size, timeout):
        rc, out, err, cpu, wall = run(
            [self.args.rdperf, "-C", "-t", topic, "-p", "0", "-b", self.brokers, "-o", "beginning",
             "-e"], timeout)
        m = None
        for m in RDPERF_CONSUME_RE.finditer(out):
            pass
        if rc != 0 or not m:
            raise RuntimeError(f"rdkafka_performance -C exited {rc}: {(out + err)[-400:]}")
        msgs, nbytes, ms = (int(g) for g in m.groups())
        if msgs != self.produced.get(topic, 0):
            raise RuntimeError(f"consumed {msgs} records, {self.produced.get(topic, 0)} were "
                               f"produced")
        return msgs, ms / 1000.0, cpu, wall

    def latency(self, topic, size, rate, seconds, extra):
        rc, out, err, cpu, wall = run(
            [self.args.kafka_lat, "--brokers", self.brokers, "--topic", topic, "--size", str(size),
             "--rate", f"{rate:.0f}", "--seconds", str(seconds), "--warmup", "1",
             "-X", "acks=all", *extra], seconds + 90)
        try:
            d = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"kafka_lat exited {rc}: {(out + err)[-400:]}")
        d["client_cpu_percent"] = round(100 * cpu / wall, 1) if wall else None
        return d

    def log_findings(self):
        """Warnings and errors the server logged during the run."""
        lines = []
        with open(self.server.logfile, errors="replace") as f:
            for line in f:
                if re.match(r"^\S+\s+(warn|warning|error|critical)\b", line):
                    lines.append(line.rstrip())
        return lines


# ------------------------------------------------------------------------------------------------
# Redis Streams through redis-benchmark

class Redis:
    def __init__(self, args, scratch):
        self.dir = os.path.join(scratch, "redis")
        os.makedirs(self.dir)
        self.port = free_port()
        self.server = Server(
            "redis-server",
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--auto-aof-rewrite-percentage", "0", "--daemonize", "no", "--protected-mode", "yes",
             "--logfile", ""],
            os.path.join(self.dir, "redis.log"), r"Ready to accept connections")
        self.expected = {}

    def start(self):
        self.server.start()

    def cli(self, *a):
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *a],
                           capture_output=True, text=True, timeout=30)
        return p.stdout.strip()

    def produce(self, key, size, fsync, count, timeout):
        if self.cli("CONFIG", "SET", "appendfsync", fsync) != "OK":
            raise RuntimeError(f"CONFIG SET appendfsync {fsync} failed")
        # redis-benchmark replaces __rand_int__ (12 characters) with 12 digits in every command,
        # so each value is exactly `size` bytes and no two are alike.
        value = "__rand_int__" + "x" * (size - 12)
        rc, out, err, cpu, wall = run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port), "-c", str(REDIS_CLIENTS),
             "-P", str(REDIS_PIPELINE), "-n", str(count), "-r", "1000000000", "--csv",
             "XADD", key, "*", "v", value], timeout)
        rows = [l for l in out.splitlines() if l.startswith('"XADD')]
        if rc != 0 or not rows:
            raise RuntimeError(f"redis-benchmark exited {rc}: {(out + err)[-400:]}")
        rps = float(rows[-1].split('","')[1])
        # Each connection sends whole pipelines, so up to clients x pipeline more than -n may go
        # out; the stream's length says how many were added.
        before = self.expected.get(key, 0)
        xlen = int(self.cli("XLEN", key) or -1)
        added = xlen - before
        if not count <= added <= count + REDIS_CLIENTS * REDIS_PIPELINE:
            raise RuntimeError(f"stream {key} grew by {added} entries, {count} were sent")
        self.expected[key] = xlen
        return added, added / rps, cpu, wall


# ------------------------------------------------------------------------------------------------
# NATS JetStream through bench/nats_pub

class Nats:
    def __init__(self, args, scratch):
        self.args = args
        self.dir = os.path.join(scratch, "nats")
        os.makedirs(self.dir)
        self.server = Server(
            "nats-server",
            ["nats-server", "-js", "-sd", os.path.join(self.dir, "store"), "-a", "127.0.0.1",
             "-p", "-1"],
            os.path.join(self.dir, "nats.log"),
            r"Listening for client connections on 127\.0\.0\.1:(\d+)[\s\S]*Server is ready",
            signal.SIGINT)  # nats-server exits 1 on SIGTERM, 0 on SIGINT; both shut down cleanly
        self.url = None

    def start(self):
        m = self.server.start()
        self.url = f"nats://127.0.0.1:{m.group(1)}"

    def publish(self, stream, size, seconds, rate=None):
        cmd = [self.args.nats_pub, "--url", self.url, "--stream", stream, "--subject",
               stream.lower(), "--size", str(size), "--seconds", f"{seconds:.3f}",
               "--max-pending", str(NATS_MAX_PENDING)]
        if rate:
            cmd += ["--rate", f"{rate:.0f}", "--warmup", "1"]
        rc, out, err, cpu, wall = run(cmd, seconds + 90)
        try:
            d = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"nats_pub exited {rc}: {(out + err)[-400:]}")
        if rc != 0 or "error" in d:
            raise RuntimeError(f"nats_pub exited {rc}: {d.get('error', err[-300:])}")
        d["client_cpu"] = cpu
        d["wall"] = wall
        return d


# ------------------------------------------------------------------------------------------------
# The machine's limits

def iperf3_loopback(seconds):
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            rc, out, err, _, _ = run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t",
                                      str(seconds), "-J"], seconds + 30)
            try:
                d = json.loads(out)
            except ValueError:
                d = {}
            if rc == 0 and "sum_received" in d.get("end", {}):
                bps = d["end"]["sum_received"]["bits_per_second"]
                return {"gbit_per_s": round(bps / 1e9, 2), "mb_per_s": round(bps / 8 / 1e6, 1),
                        "seconds": seconds, "version": d.get("start", {}).get("version", "")}
            if "unable to connect" not in (d.get("error", "") + err):
                return {"error": f"iperf3 exited {rc}: {d.get('error', err)[-300:]}"}
            time.sleep(0.1)
        return {"error": "iperf3 server did not accept connections"}
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait()


def fio_job(path, block, seconds, *extra):
    """One fio writer, sequential `block`-byte writes appending to a new file, fdatasync after
    each; `extra` adds options. Returns fio's JSON for the job, or raises. The file stays until
    the scratch directory goes, so unlinking it (and the disk's online discard) never overlaps a
    measurement."""
    cmd = ["fio", "--name=kafka-bench", f"--filename={path.replace(':', chr(92) + ':')}",
           "--rw=write", f"--bs={block}", "--ioengine=sync", "--fdatasync=1", "--fallocate=none",
           "--size=8g", "--time_based", f"--runtime={int(seconds * 1000)}ms",
           "--output-format=json", *extra]
    rc, out, err, cpu, wall = run(cmd, seconds + 60)
    try:
        job = json.loads(out[out.index("{"):])["jobs"][0]
        if rc != 0 or job.get("error"):
            raise ValueError
        return job, cpu, wall
    except (ValueError, KeyError, IndexError):
        raise RuntimeError(f"fio exited {rc}: {(out + err)[-300:]}")


def fio_fdatasync(path, block, seconds):
    """As fast as fio can (the same job as bench/storage_bench)."""
    job, cpu, wall = fio_job(path, block, seconds)
    w = job["write"]
    lat = job.get("sync", {}).get("lat_ns", {}).get("percentile", {})
    return {"writes": w["total_ios"], "seconds": w["runtime"] / 1000.0, "cpu": cpu,
            "wall": wall, "sync_p50_us": round(lat.get("50.000000", 0) / 1000, 1),
            "sync_p99_us": round(lat.get("99.000000", 0) / 1000, 1)}


def fio_paced_fdatasync(path, block, bytes_per_s, seconds):
    """The disk's own latency at a Runnel latency run's load: the writes paced at `bytes_per_s`
    (fio's rate limit). Returns the fdatasync latency percentiles in microseconds, the floor
    under any fsync-before-ack produce latency at that load."""
    job, _, _ = fio_job(path, block, seconds, f"--rate={int(bytes_per_s)}",
                        "--percentile_list=50:99:99.9")
    try:
        sync = job["sync"]["lat_ns"]
        pct = sync["percentile"]
        return {"block": block, "bytes_per_s": int(bytes_per_s), "syncs": sync["N"],
                "sync_us": {"p50": round(pct["50.000000"] / 1000, 1),
                            "p99": round(pct["99.000000"] / 1000, 1),
                            "p999": round(pct["99.900000"] / 1000, 1),
                            "max": round(sync["max"] / 1000, 1)}}
    except KeyError as e:
        raise RuntimeError(f"fio reported no sync latency: {e}")


def tool_version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return None


# ------------------------------------------------------------------------------------------------
# The run

def ratio(a, b):
    return a / b if a and b else None


def fmt_ratio(r):
    return f"{r:.2f}" if r is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/release",
                    help="build tree holding runnel, rdkafka_performance, nats_pub and kafka_lat")
    ap.add_argument("--runnel"), ap.add_argument("--rdperf")
    ap.add_argument("--nats-pub"), ap.add_argument("--kafka-lat")
    ap.add_argument("--dir", default="build/bench-data",
                    help="scratch parent on the disk to measure (a subdirectory is made and removed)")
    ap.add_argument("--seconds", type=float, default=6.0,
                    help="produce time per system, size and durability, over all rounds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-seconds", type=float, default=4.0,
                    help="each latency run (its first second is not counted)")
    ap.add_argument("--json", help="also write the JSON document to this file")
    args = ap.parse_args()
    b = args.build
    args.runnel = args.runnel or os.path.join(b, "src/app/runnel")
    args.rdperf = args.rdperf or os.path.join(b, "tests/rdperf/rdkafka_performance")
    args.nats_pub = args.nats_pub or os.path.join(b, "bench/nats_pub")
    args.kafka_lat = args.kafka_lat or os.path.join(b, "bench/kafka_lat")

    missing = [p for p in (args.runnel, args.rdperf, args.nats_pub, args.kafka_lat)
               if not os.access(p, os.X_OK)]
    missing += [t for t in ("redis-server", "redis-cli", "redis-benchmark", "nats-server", "iperf3",
                            "fio") if not shutil.which(t)]
    if missing:
        log("missing: " + ", ".join(missing) + " (build with ninja; Debian packages: redis-server "
            "redis-tools nats-server libnats-dev iperf3 fio, all in scripts/packages.txt)")
        return 2

    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_before = os.getloadavg()
    busy0 = machine_busy_jiffies()
    own0 = children_cpu() + sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    os.makedirs(args.dir, exist_ok=True)
    scratch = os.path.abspath(os.path.join(args.dir, f"kafka-bench-{os.getpid()}"))
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)

    runnel, redis, nats = Runnel(args, scratch), Redis(args, scratch), Nats(args, scratch)
    servers = [runnel.server, redis.server, nats.server]
    cells, latency, limits, consume, findings = [], [], {}, [], []
    errors = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    try:
        # The machine's limits first, on a quiet machine (no server started yet).
        log("iperf3 on loopback")
        limits["loopback_tcp"] = iperf3_loopback(3)

        for s in (runnel, redis, nats):
            log(f"starting {s.server.name}")
            s.start()

        # Produce cells, each warmed up by a probe that also sizes the first round.
        for size in SIZES:
            for acks, dur in (("all", "fsync before ack"), ("1", "page cache")):
                cells.append(Cell("runnel", f"runnel acks={acks}", size, dur,
                                  f"runnel_acks_{acks}"))
            for fsync, dur in (("always", "fsync before reply"), ("everysec", "fsync every 1 s")):
                cells.append(Cell("redis", f"redis appendfsync {fsync}", size, dur,
                                  f"redis_appendfsync_{fsync}"))
            cells.append(Cell("nats", "nats jetstream (file)", size,
                              "page cache (no fsync per message)", "nats_jetstream_file"))
        # Sequential writes with fdatasync after each: at 1 KiB (the acceptance peer) and at
        # 1 MiB (about one produce batch of librdkafka's: what one sync per large batch allows).
        for block in (1024, 1 << 20):
            cells.append(Cell("fio", "fio fdatasync=1", block, "fdatasync after each write",
                              "fio_fdatasync"))
        estimate = {}
        round_seconds = args.seconds / args.rounds

        def measure(cell, seconds, probe):
            size = cell.size
            settle()
            if cell.system == "runnel":
                acks = cell.key.rsplit("_", 1)[1]
                topic = f"bench-{size}-acks-{acks}"
                count = (500000 if size < 1024 else 150000) if probe else max(
                    1000, int(estimate[cell] * seconds))
                cpu0 = runnel.server.cpu()
                n, secs, ccpu, wall = runnel.produce(topic, size, acks, count, 120)
                return n, secs, runnel.server.cpu() - cpu0, ccpu, wall
            if cell.system == "redis":
                fsync = cell.key.rsplit("_", 1)[1]
                key = f"bench-{size}-{fsync}"
                count = 50000 if probe else max(1000, int(estimate[cell] * seconds))
                cpu0 = redis.server.cpu()
                n, secs, ccpu, wall = redis.produce(key, size, fsync, count, 120)
                return n, secs, redis.server.cpu() - cpu0, ccpu, wall
            if cell.system == "fio":
                if probe:
                    return 0, 0, 0, 0, 0
                d = fio_fdatasync(os.path.join(scratch, f"fio-{size}-{len(cell.rounds)}"), size,
                                  seconds)
                cell.notes.append(f"sync p50 {d['sync_p50_us']} us, p99 {d['sync_p99_us']} us")
                return d["writes"], d["seconds"], 0.0, d["cpu"], d["wall"]
            cpu0 = nats.server.cpu()
            d = nats.publish(f"BENCH{size}", size, 0.5 if probe else seconds)
            return d["acked"], d["seconds"], nats.server.cpu() - cpu0, d["client_cpu"], d["wall"]

        for cell in cells:
            if cell.system == "fio":
                continue
            log(f"probe: {cell.label} {size_name(cell.size)}")
            try:
                n, secs, *_ = measure(cell, 0, True)
                estimate[cell] = n / secs
            except (RuntimeError, OSError) as e:
                cell.fail(str(e))
        for rnd in range(args.rounds):
            order = cells[rnd % len(cells):] + cells[:rnd % len(cells)]
            if rnd % 2:
                order.reverse()
            for cell in order:
                if cell.error:
                    continue
                log(f"round {rnd + 1}/{args.rounds}: {cell.label} {size_name(cell.size)}")
                try:
                    n, secs, scpu, ccpu, wall = measure(cell, round_seconds, False)
                    cell.add(n, secs, scpu, ccpu, wall)
                    estimate[cell] = n / secs
                except (RuntimeError, OSError) as e:
                    cell.fail(str(e))

        # Consume everything the acks=all runs produced, from the beginning.
        for size in SIZES:
            topic = f"bench-{size}-acks-all"
            log(f"consume: runnel {size_name(size)}")
            entry = {"system": "runnel", "size": size, "topic": topic}
            try:
                settle()
                cpu0 = runnel.server.cpu()
                n, secs, ccpu, wall = runnel.consume(topic, size, 120)
                entry.update({"records": n, "seconds": secs, "records_per_s": round(n / secs, 1),
                              "mb_per_s": round(n * size / secs / 1e6, 2),
                              "server_cpu_percent": round(100 * (runnel.server.cpu() - cpu0) / wall, 1),
                              "client_cpu_percent": round(100 * ccpu / wall, 1)})
            except (RuntimeError, OSError) as e:
                entry["error"] = str(e)
                log(f"consume {size_name(size)}: {e}")
            consume.append(entry)

        # Produce latency at half of each system's measured maximum (acks=all for Runnel).
        def cell_of(key, size):
            return next(c for c in cells if c.key == key and c.size == size)

        # NATS first; then Redis and NATS are stopped, so their background work (NATS syncs
        # its store on a timer) cannot land in Runnel's latency runs.
        lat_runs = [
            ("nats", 100, "async", f"async publish, {NATS_MAX_PENDING} pending at most", None),
            ("runnel", 100, "linger5", "linger.ms=5 (librdkafka's default)", LINGER_EXPLICIT),
            ("runnel", 100, "linger1", "linger.ms=1", ["-X", "linger.ms=1"]),
            ("runnel", 1024, "linger5", "linger.ms=5 (librdkafka's default)", LINGER_EXPLICIT),
        ]
        for i, (system, size, tag, client, extra) in enumerate(lat_runs):
            if system == "runnel":
                redis.server.stop()
                nats.server.stop()
            key = "runnel_acks_all" if system == "runnel" else "nats_jetstream_file"
            max_rate = cell_of(key, size).rate()
            entry = {"system": system, "size": size, "tag": tag, "client": client,
                     "durability": "acks=all (fsync before ack)" if system == "runnel"
                     else "page cache (no fsync per message)",
                     "max_records_per_s": round(max_rate, 1)}
            if not max_rate:
                entry["error"] = "no maximum rate was measured"
            else:
                rate = max_rate / 2
                log(f"latency: {system} {size_name(size)} at {rate:.0f}/s, {client}")
                try:
                    settle()
                    if system == "runnel":
                        d = runnel.latency(f"latency-{size}-{i}", size, rate,
                                           args.latency_seconds, extra)
                    else:
                        d = nats.publish(f"LATENCY{size}", size, args.latency_seconds, rate)
                        d["client_cpu_percent"] = round(100 * d.pop("client_cpu") / d.pop("wall"), 1)
                    entry.update({k: d.get(k) for k in (
                        "rate", "achieved_rate", "sent", "latency_samples", "latency_us",
                        "queue_full", "max_behind_schedule_us", "warmup_seconds",
                        "client_cpu_percent", "error") if d.get(k) is not None})
                except (RuntimeError, OSError) as e:
                    entry["error"] = str(e)
            if system == "runnel" and entry.get("achieved_rate"):
                # The disk alone at the same load, right after: what an fsync costs then.
                bps = entry["achieved_rate"] * size
                log(f"latency: fio fdatasync per {size_name(PACED_FIO_BLOCK)} at "
                    f"{bps / 1e6:.1f} MB/s")
                try:
                    settle()
                    entry["disk"] = fio_paced_fdatasync(
                        os.path.join(scratch, f"fio-paced-{i}"), PACED_FIO_BLOCK, bps,
                        args.latency_seconds)
                except (RuntimeError, OSError) as e:
                    entry["disk"] = {"error": str(e)}
            if "error" in entry:
                log(f"latency {system} {size_name(size)}: {entry['error']}")
            latency.append(entry)
    except KeyboardInterrupt as e:
        errors.append(f"interrupted ({e})")
        log(f"interrupted ({e}); stopping the servers")
    except (RuntimeError, OSError) as e:
        errors.append(str(e))
        log(str(e))
    finally:
        for s in servers:
            try:
                s.stop()
            except OSError as e:
                errors.append(f"stopping {s.name}: {e}")
        if runnel.server.proc:
            findings = runnel.log_findings()
        shutil.rmtree(scratch, ignore_errors=True)

    busy1 = machine_busy_jiffies()
    own1 = children_cpu() + sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    tck = os.sysconf("SC_CLK_TCK")
    machine_busy_s = (busy1 - busy0) / tck
    own_s = own1 - own0
    wall = time.monotonic() - started
    ncpu = os.cpu_count()

    # Ratios, computed here.
    def get(key, size):
        return next((c for c in cells if c.key == key and c.size == size and not c.error), None)

    ratios = []

    def add_ratio(name, a, b, what, target=None, higher_is_better=True, cells_ab=None):
        r = ratio(a, b)
        entry = {"name": name, "value": round(r, 3) if r is not None else None, "of": what}
        if cells_ab and all(cells_ab):
            # Round k of both ran within the same round, so their ratio sees the same machine.
            per = [x / y for x, y in zip(cells_ab[0].rounds, cells_ab[1].rounds) if y > 0]
            # Both rates are records/s or both MB/s of the same size: the ratio is the same.
            if cells_ab[0].size != cells_ab[1].size:
                per = [v * cells_ab[0].size / cells_ab[1].size for v in per]
            entry["per_round"] = [round(v, 3) for v in per]
        if target is not None:
            entry["target"] = target
            entry["target_met"] = None if r is None else (r >= target if higher_is_better
                                                          else r <= target)
        ratios.append(entry)

    for size in SIZES:
        ra, r1 = get("runnel_acks_all", size), get("runnel_acks_1", size)
        rda, rde = get("redis_appendfsync_always", size), get("redis_appendfsync_everysec", size)
        nj = get("nats_jetstream_file", size)
        add_ratio(f"runnel_acks_all_vs_redis_always_{size}", ra and ra.rate(), rda and rda.rate(),
                  f"records/s at {size_name(size)}, fsync before the answer on both sides",
                  TARGET_VS_REDIS if size == 100 else None, cells_ab=(ra, rda))
        add_ratio(f"runnel_acks_1_vs_redis_everysec_{size}", r1 and r1.rate(), rde and rde.rate(),
                  f"records/s at {size_name(size)}, no fsync before the answer",
                  cells_ab=(r1, rde))
        add_ratio(f"runnel_acks_1_vs_nats_{size}", r1 and r1.rate(), nj and nj.rate(),
                  f"records/s at {size_name(size)}, no fsync before the answer", cells_ab=(r1, nj))
        add_ratio(f"runnel_acks_all_vs_nats_{size}", ra and ra.rate(), nj and nj.rate(),
                  f"records/s at {size_name(size)}; Runnel fsyncs, NATS does not",
                  cells_ab=(ra, nj))
    ra1k = get("runnel_acks_all", 1024)
    fio1k_cell, fio1m_cell = get("fio_fdatasync", 1024), get("fio_fdatasync", 1 << 20)
    fio1k = fio1k_cell.mb_per_s() if fio1k_cell else None
    fio1m = fio1m_cell.mb_per_s() if fio1m_cell else None
    add_ratio("runnel_acks_all_1024_vs_fio_fdatasync_1024", ra1k and ra1k.mb_per_s(), fio1k,
              "MB/s of 1 KiB records made durable vs fio, 1 KiB writes, fdatasync after each",
              TARGET_VS_FIO, cells_ab=(ra1k, fio1k_cell))
    add_ratio("runnel_acks_all_1024_vs_fio_fdatasync_1m", ra1k and ra1k.mb_per_s(), fio1m,
              "MB/s vs fio, 1 MiB writes, fdatasync after each (what one sync per large batch "
              "allows)", cells_ab=(ra1k, fio1m_cell))
    r1k1 = get("runnel_acks_1", 1024)
    loop_mb = limits.get("loopback_tcp", {}).get("mb_per_s")
    add_ratio("runnel_acks_1_1024_vs_loopback_tcp", r1k1 and r1k1.mb_per_s(), loop_mb,
              "MB/s of 1 KiB records vs one iperf3 TCP stream on loopback")
    for entry in latency:
        if entry["system"] == "runnel" and "latency_us" in entry:
            p99_ms = entry["latency_us"]["p99"] / 1000
            ratios.append({"name": f"runnel_p99_ms_{entry['size']}_{entry['tag']}",
                           "value": round(p99_ms, 3),
                           "of": f"produce p99 (ms) at half the maximum rate, "
                                 f"{size_name(entry['size'])}, acks=all, {entry['client']}",
                           "target": TARGET_P99_MS, "target_met": p99_ms <= TARGET_P99_MS})
            disk_p99 = entry.get("disk", {}).get("sync_us", {}).get("p99")
            if disk_p99:
                ratios.append({"name": f"disk_fdatasync_p99_ms_{entry['size']}_{entry['tag']}",
                               "value": round(disk_p99 / 1000, 3),
                               "of": f"the disk's own fdatasync p99 (ms), fio appending "
                                     f"{size_name(PACED_FIO_BLOCK)} writes at the MB/s of that "
                                     f"run"})

    machine = {
        "nproc": ncpu, "kernel": platform.release(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_busy_percent": round(100 * machine_busy_s / (wall * ncpu), 1),
        "benchmark_cpu_percent": round(100 * own_s / (wall * ncpu), 1),
        "other_processes_cpu_percent": round(100 * max(0.0, machine_busy_s - own_s) / (wall * ncpu), 1),
        "dir": os.path.abspath(args.dir),
        "versions": {
            "redis": tool_version(["redis-server", "--version"]),
            "nats": tool_version(["nats-server", "--version"]),
            "iperf3": tool_version(["iperf3", "--version"]),
            "fio": tool_version(["fio", "--version"]),
            "librdkafka": tool_version(["dpkg-query", "-W", "-f=${Version}", "librdkafka1"]),
            "libnats": tool_version(["dpkg-query", "-W", "-f=${Version}", "libnats3.4"]),
        },
    }
    doc = {
        "benchmark": "kafka_bench", "date": date, "seconds": round(wall, 1),
        "sync_between_runs_seconds": round(SYNC_SECONDS[0], 1), "machine": machine,
        "config": {"sizes": list(SIZES), "produce_seconds": args.seconds, "rounds": args.rounds,
                   "latency_seconds": args.latency_seconds, "runnel_shards": 2,
                   "runnel_partitions": 1, "redis_clients": REDIS_CLIENTS,
                   "redis_pipeline": REDIS_PIPELINE, "nats_max_pending": NATS_MAX_PENDING},
        "limits": limits,
        "produce": [c.json() for c in cells],
        "consume": consume,
        "latency": latency,
        "ratios": ratios,
        "servers": [{"name": s.name, "exit_code": s.exit_code,
                     "stop_seconds": round(s.stop_seconds, 3) if s.stop_seconds else None}
                    for s in servers],
        "runnel_log_warnings": findings[:20],
        "errors": errors + [f"{c.label} {size_name(c.size)}: {c.error}" for c in cells if c.error]
                  + [f"consume {e['size']}: {e['error']}" for e in consume if "error" in e]
                  + [f"latency {e['system']} {e['size']}: {e['error']}" for e in latency
                     if "error" in e],
    }
    print_table(doc, cells)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 1 if doc["errors"] else 0


def print_table(doc, cells):
    m = doc["machine"]
    print("kafka_bench: runnel serve (Kafka protocol) vs Redis Streams and NATS JetStream, and the "
          "machine's limits")
    print(f"nproc {m['nproc']}, load average {m['loadavg_before'][0]} before / "
          f"{m['loadavg_after'][0]} after; machine CPU {m['cpu_busy_percent']}% busy during the run, "
          f"this benchmark's processes {m['benchmark_cpu_percent']}%, others "
          f"{m['other_processes_cpu_percent']}%; {doc['seconds']} s in all, of which "
          f"{doc['sync_between_runs_seconds']} s in sync(2) between runs")
    print(f"{doc['config']['produce_seconds']} s per row in {doc['config']['rounds']} interleaved "
          f"rounds; one producer connection for Runnel and NATS, {REDIS_CLIENTS} connections x "
          f"pipeline {REDIS_PIPELINE} for Redis\n")
    lim = doc["limits"]
    lt = lim.get("loopback_tcp", {})
    print("machine limits")
    print(f"  loopback TCP (iperf3, 1 stream, 3 s)       "
          + (f"{lt['gbit_per_s']:.1f} Gbit/s = {lt['mb_per_s']:.0f} MB/s" if "error" not in lt
             else f"failed: {lt['error']}"))
    print("  sequential writes with fdatasync: the fio rows below (fio's records/s = writes/s)")
    print()
    print(f"{'size':<7} {'system':<26} {'durability':<36} {'records/s':>10} {'MB/s':>8} "
          f"{'srv cpu':>8} {'cli cpu':>8}  per round")
    for c in cells:
        if c.error or not c.rounds:
            print(f"{size_name(c.size):<7} {c.label:<26} {c.durability:<36} "
                  + (f"failed: {c.error}" if c.error else "not measured"))
            continue
        j = c.json()
        srv = "-" if c.system == "fio" else f"{j['server_cpu_percent']:.0f}%"
        print(f"{size_name(c.size):<7} {c.label:<26} {c.durability:<36} {c.rate():>10.0f} "
              f"{c.mb_per_s():>8.1f} {srv:>8} {j['client_cpu_percent']:>7.0f}%"
              f"  {' '.join(f'{r:.0f}' for r in c.rounds)}")
    print()
    for e in doc["consume"]:
        if "error" in e:
            print(f"consume {size_name(e['size'])} runnel: failed: {e['error']}")
        else:
            print(f"consume {size_name(e['size']):<7} runnel (rdkafka_performance -C, from the "
                  f"beginning) {e['records_per_s']:>10.0f} records/s {e['mb_per_s']:>8.1f} MB/s "
                  f"({e['records']} records; srv cpu {e['server_cpu_percent']:.0f}%, cli cpu "
                  f"{e['client_cpu_percent']:.0f}%)")
    print()
    print("produce latency at half the measured maximum rate (from the time each record was due "
          "on a fixed schedule to its acknowledgement; first 1 s not counted)")
    print(f"{'size':<7} {'system':<8} {'client':<36} {'rate/s':>9} {'achieved':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}")
    for e in doc["latency"]:
        if "latency_us" not in e:
            print(f"{size_name(e['size']):<7} {e['system']:<8} {e['client']:<36} failed: "
                  f"{e.get('error')}")
            continue
        l = e["latency_us"]
        achieved = e.get("achieved_rate") or e.get("rate")
        print(f"{size_name(e['size']):<7} {e['system']:<8} {e['client']:<36} {e['rate']:>9.0f} "
              f"{achieved:>9.0f} {l['p50'] / 1000:>8.2f} {l['p99'] / 1000:>8.2f} "
              f"{l['p999'] / 1000:>9.2f} {l['max'] / 1000:>8.2f}"
              + (f"  ({e['queue_full']} local queue-full stalls)" if e.get("queue_full") else "")
              + (f"  error: {e['error']}" if e.get("error") else ""))
        disk = e.get("disk")
        if disk and "sync_us" in disk:
            d = disk["sync_us"]
            print(f"{'':<7} {'disk':<8} {'fio: fdatasync per ' + size_name(disk['block']) + ' write, same MB/s':<36} "
                  f"{disk['syncs']:>9} {'syncs':>9} {d['p50'] / 1000:>8.2f} {d['p99'] / 1000:>8.2f} "
                  f"{d['p999'] / 1000:>9.2f} {d['max'] / 1000:>8.2f}")
        elif disk:
            print(f"{'':<7} {'disk':<8} fio failed: {disk.get('error')}")
    print()
    for r in doc["ratios"]:
        verdict = ""
        if "target" in r:
            op = "<=" if r["name"].startswith("runnel_p99") else ">="
            verdict = (f"; target {op} {r['target']}: "
                       + ("met" if r["target_met"] else "NOT met" if r["target_met"] is False
                          else "not measured"))
        spread = ""
        if r.get("per_round"):
            spread = f" [per round {min(r['per_round']):.2f}..{max(r['per_round']):.2f}]"
        print(f"{r['name']} = {fmt_ratio(r['value'])}{spread}  ({r['of']}){verdict}")
    if doc["runnel_log_warnings"]:
        print(f"\nrunnel logged {len(doc['runnel_log_warnings'])} warning/error line(s), first: "
              f"{doc['runnel_log_warnings'][0]}")
    for s in doc["servers"]:
        if s["exit_code"] not in (0, None):
            print(f"{s['name']} exit status on SIGTERM: {s['exit_code']}")
    for e in doc["errors"]:
        print(f"error: {e}")
    print()


if __name__ == "__main__":
    sys.exit(main())
