#!/usr/bin/python3
"""A durable windowed-count job reads 1,000,000 events from a topic while `runnel serve` is killed
with SIGKILL at random moments (at least 5 times) and restarted on the same data directory.
Afterwards a read_committed reader of the job's output sees exactly the windows an
uninterrupted run computes (here: computed in Python from the events): none missing, none twice.

With --parallelism N the job runs as N instances on N shards, and each key's events are spread
over every partition, so only the exchange between the instances brings a key's events together;
the kills then also land in checkpoints that must cut every instance at once.

With --sql the job is a SQL pipeline (template `sql`) computing the same windows with TUMBLE and
COUNT(*); with --parallelism N its plan brings each key to one instance through an exchange.

usage: engine_crash_test.py RUNNEL_BINARY [--parallelism N] [--sql]
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter

from crash_server import Server, free_port
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))
import harness  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

EVENTS = 1_000_000
KILLS = 6
PARTITIONS = 4
KEYS = 1000
WINDOW_MS = 1000
BOUND_MS = 500


recoveries = []  # what each restart reported about resuming, across all servers

# The windowed count as SQL: the same windows, keys and counts as the `windowed_count` template
# (its bound of 1 s is above the 200 ms the events are shuffled by, as the template's 500 ms).
SQL = """
CREATE TABLE events (`key` STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'topic', 'topic' = 'events', 'format' = 'json');
CREATE TABLE counts (`key` STRING, window_start TIMESTAMP(3), `count` BIGINT)
WITH ('connector' = 'topic', 'topic' = 'counts', 'sink.partitions' = '3');
INSERT INTO counts
SELECT `key`, window_start, COUNT(*) AS `count`
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY `key`, window_start, window_end;
"""


def watch(line):
    if "resuming from checkpoint" in line or "were not in the log" in line:
        recoveries.append(line.split("] ", 1)[-1].strip())


def start(binary, data, port):
    s = Server(binary, data, port, watch)
    s.wait_ready(fail_on=lambda line: "failed" in line and "[jobs]" in line)
    return s


def metric(server, name):
    """The sum of a metric's samples for the job (0 when absent)."""
    with urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and 'pipeline="counts"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def events(rng):
    """(key, ts) of every event: 10 per millisecond, shuffled within 200 ms (under the bound)."""
    out = []
    for i in range(EVENTS):
        out.append((f"k{rng.randrange(KEYS)}", 1_000_000 + i // 10 + rng.randrange(200)))
    return out


def topic_exists(bootstrap, topic):
    """Whether the server has `topic` (listing every topic, which creates none)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "engine-crash-list"})
    try:
        return topic in c.list_topics(timeout=30).topics
    finally:
        c.close()


def read_output(bootstrap, topic, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "engine-crash-check",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    rows = []
    eof = set()
    deadline = time.monotonic() + 60
    while len(eof) < partitions and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                continue
            raise AssertionError(f"consume error: {m.error()}")
        rows.append(json.loads(m.value()))
    consumer.close()
    assert len(eof) == partitions, "did not reach the end of every output partition"
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runnel")
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--sql", action="store_true", help="run the count as a SQL pipeline")
    args = ap.parse_args()
    binary = args.runnel
    data = tempfile.mkdtemp(prefix="runnel-engine-crash-")
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    rng = random.Random(11)
    evs = events(rng)
    expected = Counter((k, harness.sql_time(ts // WINDOW_MS * WINDOW_MS)) for k, ts in evs)

    server = start(binary, data, port)
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for _, fut in admin.create_topics([NewTopic("events", PARTITIONS, 1)]).items():
            fut.result(30)
        # The job is stored as a server keeps it, and starts with the server.
        server.stop()
        os.makedirs(os.path.join(data, "jobs", "counts"))
        with open(os.path.join(data, "jobs", "counts", "job.json"), "w") as f:
            if args.sql:
                json.dump({"id": "counts", "template": "sql", "checkpoint_interval_ms": 100,
                           "parallelism": args.parallelism, "params": {"sql": SQL}}, f)
            else:
                json.dump({"id": "counts", "template": "windowed_count", "checkpoint_interval_ms": 100,
                           "parallelism": args.parallelism,
                           "params": {"input": "events", "output": "counts", "key": "key", "time": "ts",
                                      "window_ms": WINDOW_MS, "bound_ms": BOUND_MS, "output_partitions": 3,
                                      "delivery": "exactly_once"}}, f)
        server = start(binary, data, port)

        # Events flow in while the server is killed at random moments, so kills land while the
        # job reads, computes, checkpoints and appends. The idempotent producer retries across
        # restarts; each event is in the log exactly once (the Kafka crash test checks that).
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                             "enable.idempotence": True, "message.timeout.ms": 120000,
                             "queue.buffering.max.messages": 200000, "reconnect.backoff.ms": 20,
                             "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 20})
        failures = []
        kills = 0
        next_kill = time.monotonic() + rng.uniform(0.3, 1.0)
        sent = 0
        while sent < len(evs) or kills < KILLS:
            for k, ts in evs[sent:sent + 2000]:
                # One instance: by key. Several: every partition, so keys meet only in the exchange.
                where = {"partition": sent % PARTITIONS} if args.parallelism > 1 else {}
                try:
                    value = {"key": k, "ts": harness.sql_time(ts) if args.sql else ts}
                    producer.produce("events", key=k, value=json.dumps(value), timestamp=ts,
                                     on_delivery=lambda err, _m: err and failures.append(err), **where)
                except BufferError:
                    producer.poll(0.05)
                    break
                sent += 1
            producer.poll(0)
            if kills < KILLS and time.monotonic() >= next_kill:
                server.kill()
                kills += 1
                server = start(binary, data, port)
                next_kill = time.monotonic() + rng.uniform(0.3, 1.0)
        # Close every window: a far-future event on each partition.
        for p in range(PARTITIONS):
            end = {"key": "end", "ts": harness.sql_time(10**12) if args.sql else 10**12}
            producer.produce("events", key="end", value=json.dumps(end),
                             partition=p, timestamp=10**12)
        assert producer.flush(120) == 0, "events not acknowledged"
        assert not failures, f"{len(failures)} delivery failures, first: {failures[:3]}"

        want = len(expected)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            out = {r["key"] + "@" + str(r["window_start"]) for r in read_output(bootstrap, "counts", 3)}
            if len(out) >= want:
                break
            time.sleep(0.5)
        # A few more checkpoints: nothing may be appended again.
        seen_checkpoints = metric(server, "runnel_job_checkpoints_total")
        deadline = time.monotonic() + 30
        while metric(server, "runnel_job_checkpoints_total") < seen_checkpoints + 3 and time.monotonic() < deadline:
            time.sleep(0.1)

        got = Counter()
        counts = {}
        for r in read_output(bootstrap, "counts", 3):
            w = (r["key"], r["window_start"])
            got[w] += 1
            counts[w] = r["count"]
        dup = [w for w, n in got.items() if n > 1]
        missing = [w for w in expected if w not in counts]
        extra = [w for w in counts if w not in expected]
        wrong = [(w, counts[w], expected[w]) for w in expected if w in counts and counts[w] != expected[w]]
        # The late output's topic appears with its first row: no topic, no late rows.
        late = read_output(bootstrap, "counts.late", 1) if topic_exists(bootstrap, "counts.late") else []
        assert not dup, f"{len(dup)} windows appear more than once, e.g. {dup[:5]}"
        assert not missing, f"{len(missing)} windows missing, e.g. {missing[:5]}"
        assert not extra, f"{len(extra)} unexpected windows, e.g. {extra[:5]}"
        assert not wrong, f"{len(wrong)} windows with wrong counts (window, got, want), e.g. {wrong[:5]}"
        assert not late, f"{len(late)} rows went to the late output; none is late in this input"
        assert kills >= 5
        assert server.stop() == 0
        for line in recoveries:
            print("  " + line)
        print(f"engine crash test: {kills} SIGKILLs while a {'SQL ' if args.sql else ''}job of {args.parallelism} "
              f"instance(s) counted {EVENTS} events; "
              f"{len(expected)} windows, each exactly once with the right count")
        print("1 passed, 0 failed")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
