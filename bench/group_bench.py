#!/usr/bin/python3
"""group_bench: consumer groups on `runnel serve` — how long a rebalance takes when a member
joins and when one leaves a 3-member group on 12 partitions, and how fast a 3-member group
consumes compared with a single consumer.

Starts its own `runnel serve` on 127.0.0.1 (free port, scratch directory under --dir, removed
at the end). Members are separate processes (tests/groups/member.py, confluent-kafka on
librdkafka) that print their assignments with CLOCK_MONOTONIC timestamps, so times compare
across processes.

Rebalance time: from the trigger to the moment every member holds its new assignment (the last
member's assignment callback), median of --rounds. Join: the trigger is the new member's
subscribe() returning (2 members become 3). Leave: the trigger is asking one of 3 members to
stop (it commits, sends LeaveGroup and closes; 3 become 2). Measured for the eager `range`
assignor and for `cooperative-sticky` (time to the final assignment of the second, incremental
round).

Throughput: --records records of 100 B already in a 12-partition topic; one consumer, then a
3-member group, each reading everything from the beginning in a fresh group; records/s from the
first assignment to the last record. Each member is one Python process (confluent-kafka), so on
a small machine the clients, not the server, may be the limit; the CPU count is printed.

Prints a table, then one JSON document (also written to --json FILE).

    bench/group_bench.py --build build/release --dir build/bench-data --json build/bench-groups.json
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "groups"))

import grouplib  # noqa: E402
from grouplib import Group  # noqa: E402

PARTITIONS = 12
SESSION_MS = 6000


def log(msg):
    print(f"group_bench: {msg}", file=sys.stderr, flush=True)


def last_assignment_ms(members, since_events):
    """The time of the last assignment event of `members` after the given event counts."""
    times = []
    for m in members:
        for kind, t, _ in m.events[since_events[m.name]:]:
            if kind == "A":
                times.append(t)
    return max(times) if times else None


def rebalance_rounds(binary, workdir, strategy, rounds):
    joins, leaves = [], []
    with grouplib.server(binary, data_dir=os.path.join(workdir, f"rebalance-{strategy}")) as srv:
        topic = f"rebalance-{strategy}"
        grouplib.create_topic(binary, srv.bootstrap, topic, PARTITIONS)
        g = Group(srv.bootstrap, f"bench-{strategy}", topic, PARTITIONS, binary)
        kw = dict(strategy=strategy, session_timeout_ms=SESSION_MS)
        stay = [g.start("confluent", name="stay-0", **kw), g.start("confluent", name="stay-1", **kw)]
        g.wait_balanced(stay, 60)
        try:
            for r in range(rounds):
                # join: 2 -> 3
                with g.cond:
                    marks = {m.name: len(m.events) for m in stay}
                joiner = g.start("confluent", name=f"joiner-{r}", **kw)
                g.wait(lambda: joiner.ready, 30, "the joiner to subscribe")
                marks[joiner.name] = 0
                # the trigger: subscribe() returned, as reported by the joiner
                trigger = joiner.ready_ms
                everyone = stay + [joiner]
                g.wait_balanced(everyone, 60, "the join rebalance")
                with g.cond:
                    joins.append(last_assignment_ms(everyone, marks) - trigger)
                # leave: 3 -> 2
                with g.cond:
                    marks = {m.name: len(m.events) for m in stay}
                trigger = time.monotonic_ns() / 1e6
                joiner.stop()
                g.wait_balanced(stay, 60, "the leave rebalance")
                with g.cond:
                    leaves.append(last_assignment_ms(stay, marks) - trigger)
                log(f"{strategy} round {r + 1}/{rounds}: join {joins[-1]:.0f} ms, "
                    f"leave {leaves[-1]:.0f} ms")
        finally:
            for m in g.members:
                if m.alive():
                    m.stop()
    return joins, leaves


def throughput(binary, workdir, records, consumers):
    with grouplib.server(binary, data_dir=os.path.join(workdir, f"throughput-{consumers}")) as srv:
        topic = "throughput"
        grouplib.create_topic(binary, srv.bootstrap, topic, PARTITIONS)
        grouplib.produce(srv.bootstrap, topic, PARTITIONS, records, size=100)
        g = Group(srv.bootstrap, f"throughput-{consumers}", topic, PARTITIONS, binary)
        members = [g.start("confluent", session_timeout_ms=SESSION_MS) for _ in range(consumers)]
        g.wait_consumed(records, 600)
        done = time.monotonic_ns() / 1e6
        with g.cond:
            first = min(t for m in members for kind, t, _ in m.events if kind == "A")
            delivered = g.ledger.total
        for m in members:
            m.stop()
    seconds = (done - first) / 1000
    return {"consumers": consumers, "records": records, "delivered": delivered,
            "seconds": round(seconds, 3), "records_per_s": round(records / seconds)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--runnel")
    ap.add_argument("--dir", default="build/bench-data")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--strategies", default="range,cooperative-sticky")
    ap.add_argument("--json", help="also write the JSON document to this file")
    args = ap.parse_args()
    binary = args.runnel or os.path.join(args.build, "src", "app", "runnel")
    workdir = os.path.join(args.dir, "group-bench")
    os.makedirs(workdir, exist_ok=True)
    started = time.monotonic()

    rebalance = []
    for strategy in args.strategies.split(","):
        joins, leaves = rebalance_rounds(binary, workdir, strategy, args.rounds)
        for event, values in (("join", joins), ("leave", leaves)):
            rebalance.append({"strategy": strategy, "event": event, "rounds": len(values),
                              "median_ms": round(statistics.median(values), 1),
                              "min_ms": round(min(values), 1), "max_ms": round(max(values), 1),
                              "all_ms": [round(v, 1) for v in values]})
    single = throughput(binary, workdir, args.records, 1)
    group = throughput(binary, workdir, args.records, 3)
    doc = {
        "benchmark": "group_bench",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "config": {"partitions": PARTITIONS, "session_timeout_ms": SESSION_MS,
                   "heartbeat_interval_ms": SESSION_MS // 5,
                   "server_flags": grouplib.SERVER_GROUP_FLAGS, "client": "confluent-kafka "
                   "(librdkafka 2.0.2), one process per member"},
        "rebalance": rebalance,
        "throughput": {"single": single, "group": group,
                       "group_vs_single": round(group["records_per_s"] / single["records_per_s"], 2)},
        "seconds": round(time.monotonic() - started, 1),
    }
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"group_bench: {PARTITIONS} partitions, session timeout {SESSION_MS} ms, heartbeat "
          f"{SESSION_MS // 5} ms, nproc {doc['machine']['nproc']}")
    print()
    print(f"{'rebalance':<10} {'assignor':<20} {'median ms':>10} {'min ms':>8} {'max ms':>8}  rounds")
    for r in rebalance:
        print(f"{r['event']:<10} {r['strategy']:<20} {r['median_ms']:>10.1f} {r['min_ms']:>8.1f} "
              f"{r['max_ms']:>8.1f}  {r['rounds']}")
    print()
    print(f"{'consume':<22} {'records':>10} {'seconds':>8} {'records/s':>10}")
    for label, t in (("1 consumer", single), ("group of 3", group)):
        print(f"{label:<22} {t['records']:>10} {t['seconds']:>8.2f} {t['records_per_s']:>10}")
    print(f"group / single = {doc['throughput']['group_vs_single']}")
    print()
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
