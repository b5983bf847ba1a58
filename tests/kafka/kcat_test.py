#!/usr/bin/python3
"""kcat (Debian kcat, librdkafka) against `runnel serve`.

kcat cannot create topics, so the server runs with --default-partitions 6 and `kcat -L -t`
auto-creates the topic through Metadata. 100,000 keyed records go in with `kcat -P -K:`
from a generated file (kcat sets the same headers on every record and cannot set
timestamps: librdkafka stamps CreateTime, checked against the produce window), then come
back with `kcat -C -e -f` in a format carrying partition, offset, key, value, timestamp and
headers, and are verified.

Run: /usr/bin/python3 kcat_test.py --runnel PATH
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import records  # noqa: E402

TOPIC = "kcat-roundtrip"
KCAT = "/usr/bin/kcat"


def run(cmd, timeout, what, stdout=subprocess.PIPE):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"{what} exited with {p.returncode}: {' '.join(cmd)}\n{err}"
    return p, err


def parse_headers(text):
    out = []
    if not text:
        return out
    for item in text.split(","):
        name, _, value = item.partition("=")
        out.append((name, value.encode()))
    return out


def main():
    binary = harness.runnel_binary()
    started = time.monotonic()
    ds = records.Dataset("kcat")
    run_id = secrets.token_hex(4)
    static_headers = [("client", b"kcat"), ("run", run_id.encode())]
    with harness.RunnelServer(binary, name="kcat", default_partitions=records.PARTITIONS) as srv, \
            tempfile.TemporaryDirectory(prefix="kcat-itest-") as work:
        b = srv.bootstrap
        p, _ = run([KCAT, "-L", "-J", "-b", b, "-t", TOPIC, "-m", "10"], 30, "kcat -L")
        md = json.loads(p.stdout)
        topics = {t["topic"]: t for t in md["topics"]}
        assert TOPIC in topics and "error" not in topics[TOPIC], f"metadata: {md}"
        assert len(topics[TOPIC]["partitions"]) == records.PARTITIONS, \
            f"auto-created {TOPIC} has {len(topics[TOPIC]['partitions'])} partitions, not {records.PARTITIONS}"

        input_path = os.path.join(work, "in.txt")
        with open(input_path, "wb") as f:
            f.write(b"".join(ds.key(i) + b":" + ds.value(i) + b"\n" for i in range(ds.n)))

        t_before = int(time.time() * 1000)
        t0 = time.monotonic()
        _, err = run([KCAT, "-P", "-b", b, "-t", TOPIC, "-K:", "-H", "client=kcat", "-H", f"run={run_id}",
                      "-X", "acks=all", "-X", "linger.ms=5", "-l", input_path], 120, "kcat -P")
        t_produce = time.monotonic() - t0
        t_after = int(time.time() * 1000)
        assert "Delivery failed" not in err and "ERROR" not in err, f"kcat -P reported:\n{err}"

        out_path = os.path.join(work, "out.tsv")
        t0 = time.monotonic()
        with open(out_path, "wb") as out:
            _, err = run([KCAT, "-C", "-b", b, "-t", TOPIC, "-o", "beginning", "-e", "-q",
                          "-f", r"%p\t%o\t%k\t%s\t%T\t%h\n"], 120, "kcat -C", stdout=out)
        t_consume = time.monotonic() - t0

        got = []
        with open(out_path, "rb") as f:
            for n, line in enumerate(f):
                fields = line.rstrip(b"\n").split(b"\t")
                assert len(fields) == 6, f"kcat output line {n + 1} has {len(fields)} fields: {line!r}"
                part, off, key, value, ts, hdrs = fields
                got.append(records.Consumed(int(part), int(off), key, value, parse_headers(hdrs.decode()), int(ts)))
        what = records.verify(got, ds, headers=lambda i: static_headers, timestamps=(t_before, t_after))
        srv.assert_alive()
        for line in srv.warnings():
            print(f"server: {line}")
    print(f"kcat: {what}; produce {t_produce:.1f} s, consume {t_consume:.1f} s")
    harness.summary("kcat", 1, 0, seconds=time.monotonic() - started)


if __name__ == "__main__":
    harness.run_script("kcat", main)
