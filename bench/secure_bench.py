#!/usr/bin/python3
"""secure_bench: what TLS and SASL cost `runnel serve`, and what a burst of failed logins costs
the clients that did log in.

One server with three Kafka listeners (PLAINTEXT, SASL_SSL and SASL_PLAINTEXT, SCRAM and PLAIN
over the same users), certificates made here with openssl (tests/kafka/harness.py), a user
made with `runnel user create`. Two measurements, each in interleaved rounds (every case takes
its turn in every round, order rotated, so a busy machine is seen alike by all):

1. tls: produce throughput of rdkafka_performance (librdkafka's own tool, as kafka_bench) over
   SASL_SSL with SCRAM-SHA-512 against PLAINTEXT, at 100 B and 1 KiB, same server, same client,
   same run; the ratio SASL_SSL / PLAINTEXT is what security costs. Beside it the machine's
   limits: one iperf3 TCP stream on loopback, and `openssl speed` of the cipher the server
   negotiated (one core encrypting 16 KiB records).
2. logins: the same producer over SASL_SSL, alone and during a burst of --failed-logins failed
   logins (half PLAIN with a wrong password, which makes the server derive the password's
   PBKDF2 key, half SCRAM-SHA-512 with a wrong proof) sent from --burst-connections connections
   at once to the SASL_PLAINTEXT listener. The producer prints its progress every 100 ms; its
   rate during the burst window is compared with its rate in the same window of a run without
   the burst. Goal: at most 20% lost.

Prints a table, then one JSON document (also written to --json FILE). Exit status: 0 when every
measurement ran, 1 when one failed, 2 when a tool is missing.

    bench/secure_bench.py --build build/release --json build/bench-secure.json
"""

import argparse
import base64
import datetime
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "kafka"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import harness  # noqa: E402
import kafka_bench as kb  # noqa: E402  (iperf3, the rdkafka_performance output, CPU accounting)
import kafka_wire as kw  # noqa: E402

SIZES = (100, 1024)
USER = "bench"
PASSWORD = "bench password, long enough"
TARGET_BURST_LOSS = 0.20  # the producer may lose at most this much during the burst
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
SASL_AUTHENTICATION_FAILED = 58


def log(msg):
    print(f"secure_bench: {msg}", file=sys.stderr, flush=True)


class Producer:
    """One rdkafka_performance produce run, its progress read as it prints it (every
    --interval ms, line-buffered through stdbuf) into a timeline of (ms since its start,
    records delivered)."""

    def __init__(self, args, brokers, topic, size, count, settings):
        self.cmd = ["stdbuf", "-oL", args.rdperf, "-P", "-t", topic, "-b", brokers, "-s", str(size),
                    "-c", str(count), "-i", "100", "-v", "-X", f"acks={args.acks}", *kb.LINGER_EXPLICIT]
        for k, v in settings.items():
            self.cmd += ["-X", f"{k}={v}"]
        self.count = count
        self.timeline = []        # (ms, delivered)
        self.origin = None        # time.monotonic() of the producer's own zero
        self.final = None
        self.error = None
        self.cpu = 0.0
        self.other_lines = []     # the last lines that were not progress reports
        self._seen = threading.Condition()

    def start(self):
        self._c0 = kb.children_cpu()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            m = kb.RDPERF_PRODUCE_RE.search(line)
            if not m:
                self.other_lines = (self.other_lines + [line.rstrip()])[-5:]
                continue
            now = time.monotonic()
            produced, _, delivered, _, failed, ms, _, in_queue = (int(g) for g in m.groups())
            with self._seen:
                if self.origin is None:
                    self.origin = now - ms / 1000.0
                self.timeline.append((ms, delivered))
                self.final = (delivered, failed, in_queue, ms)
                self._seen.notify_all()

    def wait_for_ms(self, ms, timeout):
        """Waits until the producer has reported progress at `ms` or later (or ended)."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while not (self.timeline and self.timeline[-1][0] >= ms) and self.proc.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"the producer reported no progress past {ms} ms in {timeout} s")
                self._seen.wait(min(left, 0.1))

    def ms_at(self, t):
        return (t - self.origin) * 1000.0

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"rdkafka_performance did not finish within {timeout} s")
        self._reader.join(timeout=10)
        self.cpu = kb.children_cpu() - self._c0
        err = self.proc.stderr.read()
        # rdkafka_performance exits 1 when its own two counters differ at exit, which happens
        # now and then with every record delivered (its last report says so); that last report
        # is what counts here.
        if rc not in (0, 1) or not self.final or (rc == 1 and self.final[0] != self.count):
            raise RuntimeError(f"rdkafka_performance exited {rc} (delivered, failed, queued, ms: {self.final}): "
                               f"{' | '.join(self.other_lines)[-300:]} {err[-300:]}")
        delivered, failed, in_queue, ms = self.final
        if delivered != self.count or failed or in_queue:
            raise RuntimeError(f"{delivered} of {self.count} delivered, {failed} failed, {in_queue} still queued")
        return delivered / (ms / 1000.0)

    def delivered_at(self, ms):
        """Records delivered at `ms`, interpolated between the reports around it."""
        points = [(0, 0)] + self.timeline
        for (m0, d0), (m1, d1) in zip(points, points[1:]):
            if m0 <= ms <= m1:
                return d0 + (d1 - d0) * ((ms - m0) / (m1 - m0) if m1 > m0 else 1.0)
        return points[-1][1]

    def rate_between(self, a_ms, b_ms):
        return (self.delivered_at(b_ms) - self.delivered_at(a_ms)) / ((b_ms - a_ms) / 1000.0) if b_ms > a_ms else 0.0


def failed_login(port, mechanism):
    """One failed login on a fresh connection: returns the SaslAuthenticate error code (58
    expected) or raises. SCRAM's wrong proof is random bytes: the client pays no PBKDF2."""
    with kw.Connection(port, timeout=60, client_id="secure-bench-burst") as conn:
        _, body = conn.request(SASL_HANDSHAKE, 1, kw.string(mechanism))
        if kw.Reader(body).i16() != 0:
            raise RuntimeError(f"SaslHandshake {mechanism} refused")
        if mechanism == "PLAIN":
            token = f"\0{USER}\0not the password".encode()
        else:
            nonce = base64.b64encode(os.urandom(18)).decode()
            _, body = conn.request(SASL_AUTHENTICATE, 1, kw.nbytes(f"n,,n={USER},r={nonce}".encode()))
            r = kw.Reader(body)
            if r.i16() != 0:
                raise RuntimeError("SCRAM client-first refused")
            r.string()
            server_first = r.bytes().decode()
            server_nonce = dict(p.split("=", 1) for p in server_first.split(","))["r"]
            proof = base64.b64encode(os.urandom(64)).decode()
            token = f"c=biws,r={server_nonce},p={proof}".encode()
        _, body = conn.request(SASL_AUTHENTICATE, 1, kw.nbytes(token))
        return kw.Reader(body).i16()


class Burst:
    """--failed-logins failed logins from --burst-connections threads at once, alternating
    PLAIN and SCRAM-SHA-512; records when it started and ended and the error codes seen."""

    def __init__(self, port, total, connections):
        self.port, self.total, self.connections = port, total, connections
        self.next = 0
        self.codes = {}
        self.errors = []
        self.lock = threading.Lock()

    def _worker(self):
        while True:
            with self.lock:
                if self.next >= self.total:
                    return
                i = self.next
                self.next += 1
            try:
                code = failed_login(self.port, "PLAIN" if i % 2 == 0 else "SCRAM-SHA-512")
            except (OSError, RuntimeError, kw.Closed) as e:
                code = None
                with self.lock:
                    self.errors.append(str(e))
            with self.lock:
                self.codes[code] = self.codes.get(code, 0) + 1

    def run(self):
        c0 = kb.children_cpu()
        self.started = time.monotonic()
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.ended = time.monotonic()
        self.client_cpu = kb.children_cpu() - c0
        return self.ended - self.started


def negotiated_cipher(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            name, version, bits = t.cipher()
            return {"cipher": name, "version": version, "bits": bits}


def openssl_speed(cipher):
    """One core encrypting 16 KiB records with the AEAD of `cipher` (TLS 1.3 names), in MB/s."""
    evp = {"TLS_AES_256_GCM_SHA384": "aes-256-gcm", "TLS_AES_128_GCM_SHA256": "aes-128-gcm",
           "TLS_CHACHA20_POLY1305_SHA256": "chacha20-poly1305"}.get(cipher)
    if not evp:
        return {"error": f"no openssl speed name for {cipher}"}
    rc, out, err, _, _ = kb.run(["openssl", "speed", "-mr", "-seconds", "2", "-bytes", "16384", "-evp", evp], 60)
    m = re.search(r"^\+F:\d+:[^:]+:([\d.]+)", out, re.M)
    if rc != 0 or not m:
        return {"error": f"openssl speed exited {rc}: {(out + err)[-300:]}"}
    return {"evp": evp, "record_bytes": 16384, "mb_per_s": round(float(m.group(1)) / 1e6, 1)}


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--seconds", type=float, default=4.0, help="each produce run of the tls part")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--acks", default="1", help="the producer's acks (1: page cache, so the disk does not hide TLS)")
    ap.add_argument("--failed-logins", type=int, default=1000)
    ap.add_argument("--burst-connections", type=int, default=8)
    ap.add_argument("--burst-size", type=int, default=100, help="record size of the producer beside the burst")
    ap.add_argument("--burst-seconds", type=float, default=12.0,
                    help="length of the producer runs beside (and without) the burst")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--server-arg", action="append", default=[], help="one more flag for runnel serve (repeatable)")
    ap.add_argument("--json")
    args = ap.parse_args()
    args.runnel = os.path.join(args.build, "src/app/runnel")
    args.rdperf = os.path.join(args.build, "tests/rdperf/rdkafka_performance")
    missing = [p for p in (args.runnel, args.rdperf) if not os.access(p, os.X_OK)]
    missing += [t for t in ("openssl", "iperf3", "stdbuf") if not shutil.which(t)]
    if missing:
        log("missing: " + ", ".join(missing))
        return 2

    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_before = os.getloadavg()
    errors, limits, tls_cells, login_rounds = [], {}, [], []
    tmp = tempfile.mkdtemp(prefix="runnel-secure-bench-")
    try:
        log("iperf3 on loopback")
        limits["loopback_tcp"] = kb.iperf3_loopback(3)
        certs = harness.make_certificates(tmp)
        data = os.path.join(tmp, "data")
        harness.create_user(args.runnel, data, USER, PASSWORD)
        srv = harness.RunnelServer(args.runnel, shards=args.shards, name="secure-bench", data_dir=data, extra_args=[
            "--kafka-listener", "SASL_SSL://127.0.0.1:0", "--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0",
            "--tls-cert-file", certs["server.crt"], "--tls-key-file", certs["server.key"],
            "--sasl-mechanisms", "SCRAM-SHA-512,PLAIN", *args.server_arg])
        with srv:
            ports = {n: harness.listener_port(srv, n) for n in ("PLAINTEXT", "SASL_SSL", "SASL_PLAINTEXT")}
            limits["tls"] = negotiated_cipher(ports["SASL_SSL"], certs["ca.crt"])
            limits["cipher_speed"] = openssl_speed(limits["tls"]["cipher"])
            settings = {
                "PLAINTEXT": {},
                "SASL_SSL": {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                             "sasl.username": USER, "sasl.password": PASSWORD, "ssl.ca.location": certs["ca.crt"]},
            }

            def produce(listener, topic, size, count):
                p = Producer(args, f"127.0.0.1:{ports[listener]}", topic, size, count, settings[listener])
                c0 = kb.cpu_seconds(srv.proc.pid)
                p.start()
                rate = p.wait(120 + count / 2000)
                return p, rate, kb.cpu_seconds(srv.proc.pid) - c0

            # 1. TLS: a probe per size and listener sizes the rounds.
            for size in SIZES:
                counts = {}
                for listener in settings:
                    _, rate, _ = produce(listener, f"probe-{listener}-{size}".lower(), size, 20000)
                    counts[listener] = max(20000, int(rate * args.seconds))
                cells = {l: {"listener": l, "size": size, "rounds": [], "server_cpu_s": 0.0, "client_cpu_s": 0.0,
                             "seconds": 0.0, "records": 0} for l in settings}
                for r in range(args.rounds):
                    order = list(settings) if r % 2 == 0 else list(reversed(settings))
                    for listener in order:
                        log(f"tls: {listener} {kb.size_name(size)} round {r + 1}")
                        p, rate, srv_cpu = produce(listener, f"tls-{listener}-{size}".lower(), size, counts[listener])
                        c = cells[listener]
                        c["rounds"].append(round(rate, 1))
                        c["records"] += counts[listener]
                        c["seconds"] += counts[listener] / rate
                        c["server_cpu_s"] += srv_cpu
                        c["client_cpu_s"] += p.cpu
                for c in cells.values():
                    c["records_per_s"] = round(c["records"] / c["seconds"], 1)
                    c["mb_per_s"] = round(c["records_per_s"] * size / 1e6, 2)
                    c["server_cpu_percent"] = round(100 * c["server_cpu_s"] / c["seconds"], 1)
                    c["client_cpu_percent"] = round(100 * c["client_cpu_s"] / c["seconds"], 1)
                    tls_cells.append(c)

            # 2. Failed logins beside an authenticated producer.
            size = args.burst_size
            _, rate, _ = produce("SASL_SSL", "burst-probe", size, 50000)
            count = max(50000, int(rate * args.burst_seconds))
            for r in range(args.rounds):
                entry = {"round": r + 1}
                for mode in (("alone", "burst") if r % 2 == 0 else ("burst", "alone")):
                    log(f"logins: producer {mode}, round {r + 1}")
                    p = Producer(args, f"127.0.0.1:{ports['SASL_SSL']}", f"burst-{mode}", size, count,
                                 settings["SASL_SSL"])
                    c0 = kb.cpu_seconds(srv.proc.pid)
                    p.start()
                    p.wait_for_ms(1000, 60)  # connected, authenticated and warmed up
                    if mode == "burst":
                        burst = Burst(ports["SASL_PLAINTEXT"], args.failed_logins, args.burst_connections)
                        burst.run()
                        window = (p.ms_at(burst.started), p.ms_at(burst.ended))
                    whole = p.wait(120 + count / 2000)
                    entry[mode] = {"whole_run_records_per_s": round(whole, 1),
                                   "server_cpu_s": round(kb.cpu_seconds(srv.proc.pid) - c0, 2)}
                    entry[mode + "_producer"] = p
                    if mode == "burst":
                        entry["logins"] = {"seconds": round(burst.ended - burst.started, 3),
                                          "window_ms": [round(window[0]), round(window[1])],
                                          "codes": {str(k): v for k, v in burst.codes.items()},
                                          "failed_logins_per_s": round(args.failed_logins / (burst.ended - burst.started), 1),
                                          "client_cpu_s": round(burst.client_cpu, 2),
                                          "errors": burst.errors[:3]}
                        if p.final and window[1] > p.final[3]:
                            entry["logins"]["note"] = "the producer ended before the burst did"
                # The window, cut to where both producers still ran (a burst may outlast them).
                a, b = entry["logins"]["window_ms"]
                b = min(b, entry["burst_producer"].final[3], entry["alone_producer"].final[3])
                entry["window_measured_ms"] = [round(a), round(b)]
                during = entry["burst_producer"].rate_between(a, b)
                without = entry["alone_producer"].rate_between(a, b)
                entry["during_burst_records_per_s"] = round(during, 1)
                entry["same_window_alone_records_per_s"] = round(without, 1)
                entry["ratio"] = ratio(during, without)
                for k in ("alone_producer", "burst_producer"):
                    del entry[k]
                login_rounds.append(entry)
            metrics = {}
            with urllib.request.urlopen(f"{srv.http}/metrics", timeout=10) as resp:
                for line in resp.read().decode().splitlines():
                    if line.startswith(("runnel_auth_", "runnel_sasl_")):
                        name, value = line.rsplit(" ", 1)
                        metrics[name] = float(value)
    except (RuntimeError, OSError, AssertionError, TimeoutError) as e:
        errors.append(str(e))
        log(str(e))
        metrics = {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ratios = []
    for size in SIZES:
        cs = {c["listener"]: c for c in tls_cells if c["size"] == size}
        if len(cs) == 2:
            per = [ratio(s, p) for s, p in zip(cs["SASL_SSL"]["rounds"], cs["PLAINTEXT"]["rounds"])]
            ratios.append({"name": f"sasl_ssl_vs_plaintext_{size}", "value": ratio(cs["SASL_SSL"]["records_per_s"],
                                                                                   cs["PLAINTEXT"]["records_per_s"]),
                           "per_round": per,
                           "of": f"records/s at {kb.size_name(size)}, SASL_SSL SCRAM-SHA-512 / PLAINTEXT, acks={args.acks}"})
    sasl_1k = next((c for c in tls_cells if c["listener"] == "SASL_SSL" and c["size"] == 1024), None)
    speed = limits.get("cipher_speed", {}).get("mb_per_s")
    if sasl_1k and speed:
        ratios.append({"name": "sasl_ssl_1024_vs_cipher_speed", "value": ratio(sasl_1k["mb_per_s"], speed),
                       "of": "MB/s of 1 KiB records over SASL_SSL vs one core running the negotiated cipher"})
    loop = limits.get("loopback_tcp", {}).get("mb_per_s")
    if sasl_1k and loop:
        ratios.append({"name": "sasl_ssl_1024_vs_loopback_tcp", "value": ratio(sasl_1k["mb_per_s"], loop),
                       "of": "MB/s of 1 KiB records over SASL_SSL vs one iperf3 TCP stream on loopback"})
    if login_rounds and all(e.get("ratio") for e in login_rounds):
        during = sum(e["during_burst_records_per_s"] for e in login_rounds)
        without = sum(e["same_window_alone_records_per_s"] for e in login_rounds)
        value = ratio(during, without)
        ratios.append({"name": "producer_during_failed_login_burst", "value": value,
                       "per_round": [e["ratio"] for e in login_rounds],
                       "of": f"records/s of a SASL_SSL producer ({kb.size_name(args.burst_size)}) during "
                             f"{args.failed_logins} failed logins from {args.burst_connections} connections vs the "
                             f"same window without them",
                       "target": 1 - TARGET_BURST_LOSS, "target_met": value >= 1 - TARGET_BURST_LOSS})

    doc = {"benchmark": "secure_bench", "date": date, "seconds": round(time.monotonic() - started, 1),
           "machine": {"nproc": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                       "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
           "config": {"sizes": list(SIZES), "seconds": args.seconds, "rounds": args.rounds, "acks": args.acks,
                      "shards": args.shards, "failed_logins": args.failed_logins,
                      "burst_connections": args.burst_connections, "burst_size": args.burst_size,
                      "server_args": args.server_arg},
           "limits": limits, "tls": tls_cells, "logins": login_rounds, "auth_metrics": metrics,
           "ratios": ratios, "errors": errors}
    print_table(doc)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 1 if errors else 0


def print_table(doc):
    m, lim = doc["machine"], doc["limits"]
    print(f"secure_bench: nproc {m['nproc']}, load average {m['loadavg_before'][0]} before / "
          f"{m['loadavg_after'][0]} after; {doc['seconds']} s; {doc['config']['rounds']} interleaved rounds")
    lt, tls, sp = lim.get("loopback_tcp", {}), lim.get("tls", {}), lim.get("cipher_speed", {})
    print("machine limits")
    if "mb_per_s" in lt:
        print(f"  loopback TCP (iperf3, 1 stream)            {lt['mb_per_s']:.0f} MB/s")
    if tls:
        print(f"  negotiated                                 {tls.get('version')} {tls.get('cipher')}")
    if "mb_per_s" in sp:
        print(f"  openssl speed {sp['evp']}, 16 KiB, 1 core  {sp['mb_per_s']:.0f} MB/s")
    print(f"\n{'size':<7} {'listener':<11} {'records/s':>10} {'MB/s':>8} {'srv cpu':>8} {'cli cpu':>8}  per round")
    for c in doc["tls"]:
        print(f"{kb.size_name(c['size']):<7} {c['listener']:<11} {c['records_per_s']:>10.0f} {c['mb_per_s']:>8.1f} "
              f"{c['server_cpu_percent']:>7.0f}% {c['client_cpu_percent']:>7.0f}%  "
              + " ".join(f"{r:.0f}" for r in c["rounds"]))
    print()
    for e in doc["logins"]:
        b = e["logins"]
        print(f"round {e['round']}: {sum(b['codes'].values())} failed logins in {b['seconds']:.2f} s "
              f"({b['failed_logins_per_s']:.0f}/s, codes {b['codes']}); producer {e['during_burst_records_per_s']:.0f} "
              f"records/s during, {e['same_window_alone_records_per_s']:.0f} in the same window alone "
              f"(ratio {e['ratio']})" + (f"; {b['note']}" if "note" in b else ""))
    if doc["auth_metrics"]:
        print("server metrics: " + ", ".join(f"{k} {v:g}" for k, v in doc["auth_metrics"].items()))
    print()
    for r in doc["ratios"]:
        verdict = ""
        if "target" in r:
            verdict = f"; target >= {r['target']:.2f}: " + ("met" if r["target_met"] else "NOT met")
        per = f" [per round {' '.join(str(x) for x in r['per_round'])}]" if r.get("per_round") else ""
        print(f"{r['name']} = {r['value']}{per}  ({r['of']}){verdict}")
    for e in doc["errors"]:
        print(f"error: {e}")
    print()


if __name__ == "__main__":
    sys.exit(main())
