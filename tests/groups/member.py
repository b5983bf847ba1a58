#!/usr/bin/python3
"""One consumer-group member in its own process, driven by groups_test.py and
bench/group_bench.py: confluent-kafka (librdkafka) or kafka-python.

Subscribes to one topic in a group, consumes from the committed offsets (earliest when there
are none), commits as it goes (asynchronously after every poll, synchronously before its
partitions are revoked and when it stops; and, as auto-commit would, about once a second while
idle, so the group's offsets converge on its positions even when a commit retried across a
server restart lands after a newer one) and reports on stdout, one line each, flushed:

    ready <t_ms>                   subscribed
    A <t_ms> <p> <p> ...           its whole assignment after every change
    R <t_ms> <p> <p> ...           partitions revoked (or lost)
    M <p> <first> <last>           consumed offsets first..last of partition p (contiguous)
    G <generation>                 the generation of a JoinGroup answer (confluent, --debug-cgrp)
    C <t_ms> <error> <p> <p> ...   a commit failed: the error's name and the partitions it
                                   names (none: the whole request failed)
    closed                         committed, left the group (dynamic members) and closed

t_ms is CLOCK_MONOTONIC in milliseconds, comparable across processes of one machine.
It stops when its stdin closes (or on SIGTERM).

Run: /usr/bin/python3 member.py --client confluent|kafka-python --bootstrap HOST:PORT
         --group G --topic T [--instance-id ID] [--strategy range|roundrobin|cooperative-sticky]
         [--session-timeout-ms N] [--rate RECORDS_PER_S] [--debug-cgrp]
"""

import argparse
import re
import signal
import sys
import threading
import time

stop = threading.Event()
out_lock = threading.Lock()


def now_ms():
    return time.monotonic_ns() / 1e6


def emit(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def partitions_line(tag, parts):
    return " ".join([tag, f"{now_ms():.3f}"] + [str(p) for p in sorted(parts)])


def watch_stdin():
    sys.stdin.read()
    stop.set()


class Throttle:
    """Keeps consumption at or under `rate` records per second (0: no limit). Shapes the load
    so a test can act while consumption is under way; it never orders events."""

    def __init__(self, rate):
        self.rate = rate
        self.start = time.monotonic()
        self.count = 0

    def account(self, n):
        if not self.rate:
            return
        self.count += n
        ahead = self.count / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            stop.wait(ahead)


def emit_ranges(by_partition):
    for p, offsets in sorted(by_partition.items()):
        offsets.sort()
        first = prev = offsets[0]
        for o in offsets[1:]:
            if o != prev + 1:
                emit(f"M {p} {first} {prev}")
                first = o
            prev = o
        emit(f"M {p} {first} {prev}")


def emit_commit_failure(error, parts):
    emit(" ".join(["C", f"{now_ms():.3f}", error] + [str(p) for p in sorted(parts)]))


def run_confluent(args):
    import logging
    from confluent_kafka import Consumer, KafkaError, KafkaException

    def on_commit(err, parts):
        # Every commit answer, asynchronous ones included (served by consume()). "Nothing to
        # commit" is not a failure.
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            emit_commit_failure(err.name(), [])
            return
        failed = {}
        for tp in parts or []:
            if tp.error is not None:
                failed.setdefault(tp.error.name(), []).append(tp.partition)
        for name, ps in sorted(failed.items()):
            emit_commit_failure(name, ps)

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": max(100, args.session_timeout_ms // 5),
        "partition.assignment.strategy": args.strategy,
        "topic.metadata.refresh.interval.ms": 1000,
        "on_commit": on_commit,
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    if args.debug_cgrp:
        generation_rx = re.compile(r"JoinGroup response: GenerationId (-?\d+)")

        class Handler(logging.Handler):
            def emit(self, record):
                m = generation_rx.search(record.getMessage())
                if m:
                    globals()["emit"](f"G {m.group(1)}")

        logger = logging.getLogger("rdkafka")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Handler())
        conf["debug"] = "cgrp"
        conf["logger"] = logger
    cooperative = args.strategy == "cooperative-sticky"
    consumer = Consumer(conf)
    assigned = set()

    def on_assign(c, parts):
        if cooperative:
            c.incremental_assign(parts)
            assigned.update(tp.partition for tp in parts)
        else:
            c.assign(parts)
            assigned.clear()
            assigned.update(tp.partition for tp in parts)
        emit(partitions_line("A", assigned))

    def on_revoke(c, parts):
        try:
            c.commit(asynchronous=False)
        except KafkaException:
            pass  # nothing to commit, or the generation is gone: the next owner re-reads
        if cooperative:
            c.incremental_unassign(parts)
        else:
            c.unassign()
        assigned.difference_update(tp.partition for tp in parts)
        emit(partitions_line("R", [tp.partition for tp in parts]))

    def on_lost(c, parts):
        if cooperative:
            c.incremental_unassign(parts)
        else:
            c.unassign()
        assigned.difference_update(tp.partition for tp in parts)
        emit(partitions_line("R", [tp.partition for tp in parts]))

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit(f"ready {now_ms():.3f}")
    throttle = Throttle(args.rate)
    # librdkafka retries a commit whose connection broke (a server restart) after the commits
    # queued meanwhile, so an older position can be stored last. Like auto-commit, the member
    # commits again while idle: librdkafka sends only partitions whose position differs from
    # what it last saw committed, so once the offsets agree this sends nothing.
    idle_commit_s = 1.0
    last_idle_commit = time.monotonic()
    while not stop.is_set():
        msgs = consumer.consume(num_messages=1000, timeout=0.1)
        by_partition = {}
        for m in msgs:
            if m.error():
                continue
            by_partition.setdefault(m.partition(), []).append(m.offset())
        if by_partition:
            emit_ranges(by_partition)
            try:
                consumer.commit(asynchronous=True)
            except KafkaException:
                pass
            throttle.account(sum(len(v) for v in by_partition.values()))
        elif time.monotonic() - last_idle_commit >= idle_commit_s:
            last_idle_commit = time.monotonic()
            try:
                consumer.commit(asynchronous=True)
            except KafkaException:
                pass  # nothing consumed yet, or nothing assigned
    try:
        consumer.commit(asynchronous=False)
    except KafkaException:
        pass
    consumer.close()
    emit("closed")


def run_kafka_python(args):
    from kafka import KafkaConsumer, ConsumerRebalanceListener
    from kafka.errors import KafkaError

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id=args.client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=max(100, args.session_timeout_ms // 5),
        metadata_max_age_ms=1000,
        max_poll_records=1000,
    )

    def commit_failed(err):
        emit_commit_failure(type(err).__name__, [])

    def commit_sync():
        """True when committed; a failure is reported, never raised."""
        try:
            consumer.commit()
            return True
        except KafkaError as e:
            commit_failed(e)
            return False

    def on_async_commit(_offsets, response):
        if isinstance(response, Exception):
            commit_failed(response)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            commit_sync()
            emit(partitions_line("R", [tp.partition for tp in revoked]))

        def on_partitions_assigned(self, assigned):
            emit(partitions_line("A", [tp.partition for tp in assigned]))

    consumer.subscribe([args.topic], listener=Listener())
    emit(f"ready {now_ms():.3f}")
    throttle = Throttle(args.rate)
    # kafka-python does not retry an async commit that fails; like its auto-commit, the member
    # makes sure of its positions when it goes idle: one synchronous commit after the last records.
    dirty = False

    while not stop.is_set():
        batches = consumer.poll(timeout_ms=100)
        by_partition = {}
        for tp, records in batches.items():
            by_partition.setdefault(tp.partition, []).extend(r.offset for r in records)
        if by_partition:
            emit_ranges(by_partition)
            dirty = True
            try:
                consumer.commit_async(callback=on_async_commit)
            except KafkaError as e:
                commit_failed(e)
            throttle.account(sum(len(v) for v in by_partition.values()))
        elif dirty:
            dirty = not commit_sync()  # a failure is tried again at the next idle poll
    commit_sync()
    consumer.close()
    emit("closed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--client-id", default="runnel-group-member")
    ap.add_argument("--instance-id")
    ap.add_argument("--strategy", default="range")
    ap.add_argument("--session-timeout-ms", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--debug-cgrp", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=watch_stdin, daemon=True).start()
    if args.client == "confluent":
        run_confluent(args)
    else:
        run_kafka_python(args)


if __name__ == "__main__":
    main()
