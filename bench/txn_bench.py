#!/usr/bin/python3
"""txn_bench: transactional produce against plain idempotent produce on `runnel serve`.

One confluent-kafka (librdkafka) producer writes 100-byte records to a 3-partition topic as
fast as it can, in rounds that alternate the two modes: idempotent (`enable.idempotence`,
acks=all) and transactional (the same plus `transactional.id`, a transaction committed every
--commit-ms, 100 ms by default, as Kafka Streams and Flink's exactly-once sink commit). Records/s
of each mode is the median over --rounds; the ratio transactional / idempotent is what a
transaction costs. Both modes share the client, the machine and the server, so the client's own
limit (one Python process) bounds both alike.

Starts its own `runnel serve` on 127.0.0.1 (free port, temporary data directory, removed at the
end). Prints a table, then one JSON document (also written to --json FILE).

    bench/txn_bench.py --build build/release [--seconds 5] [--rounds 3] [--json build/bench-txn.json]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "kafka"))

import harness  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "txn-bench"
VALUE = b"x" * 100


def run_round(bootstrap, transactional, seconds, commit_ms, round_no):
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "queue.buffering.max.messages": 200000}
    if transactional:
        conf["transactional.id"] = f"txn-bench-{round_no}"
    p = Producer(conf)
    if transactional:
        p.init_transactions(30)
        p.begin_transaction()
    sent = 0
    start = time.monotonic()
    last_commit = start
    end = start + seconds
    while True:
        now = time.monotonic()
        if transactional and (now - last_commit) * 1000 >= commit_ms:
            p.commit_transaction(30)
            p.begin_transaction()
            last_commit = time.monotonic()
        if now >= end:
            break
        try:
            p.produce(TOPIC, VALUE)
            sent += 1
        except BufferError:
            p.poll(0.001)
        if sent % 1000 == 0:
            p.poll(0)
    if transactional:
        p.commit_transaction(30)
    assert p.flush(60) == 0, "records left unsent"
    return sent / (time.monotonic() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--commit-ms", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args()
    binary = os.path.join(args.build, "src", "app", "runnel")
    with harness.RunnelServer(binary, name="txn-bench") as srv:
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        for f in admin.create_topics([NewTopic(TOPIC, 3, 1)]).values():
            f.result(30)
        rates = {"idempotent": [], "transactional": []}
        for r in range(args.rounds):
            for mode in ("idempotent", "transactional"):
                rates[mode].append(run_round(srv.bootstrap, mode == "transactional", args.seconds, args.commit_ms, r))
        srv.assert_alive()
    med = {m: statistics.median(v) for m, v in rates.items()}
    ratio = med["transactional"] / med["idempotent"]
    print(f"txn_bench: 100 B records, acks=all, {args.rounds} rounds of {args.seconds:g} s per mode, "
          f"a commit every {args.commit_ms} ms; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'mode':<14} {'records/s (median)':>20} {'rounds':>40}")
    for m in ("idempotent", "transactional"):
        print(f"{m:<14} {med[m]:>20,.0f} {', '.join(f'{x:,.0f}' for x in rates[m]):>40}")
    print(f"transactional / idempotent: {ratio:.2f}")
    doc = {"benchmark": "txn", "machine": platform.node(), "cpus": os.cpu_count(), "commit_ms": args.commit_ms,
           "seconds": args.seconds, "rounds": rates, "median": med, "ratio": ratio}
    print(json.dumps(doc))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
