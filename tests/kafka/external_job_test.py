#!/usr/bin/python3
"""A pipeline that reads and writes an external Kafka-protocol cluster over TCP (librdkafka).

Two servers: A plays the external cluster (it holds the topics), B runs a windowed_count
pipeline whose `bootstrap` points at A, at-least-once. Events produced to A with
confluent-kafka come back from A's output topic as the right window counts; B's pipeline
survives a restart of B (its offsets are in its checkpoint). A second pipeline on B runs
exactly-once (one Kafka transaction per checkpoint on A): a read_committed reader of its output
sees every window exactly once, across the same restart.

Run: /usr/bin/python3 external_job_test.py --runnel PATH
"""
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter

import harness
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def produce(bootstrap, events, partitions):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, ts in events:
        p.produce("ext-in", key=key, value=json.dumps({"key": key, "ts": ts}))
    for part in range(partitions):
        p.produce("ext-in", value=json.dumps({"key": "end", "ts": 10**12}), partition=part)
    assert p.flush(30) == 0


def read_counts(bootstrap, topic="ext-counts"):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=10)
    if topic not in md.topics:
        return Counter(), {}
    parts = len(md.topics[topic].partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ext-check", "enable.partition.eof": True,
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
    seen, counts, eof = Counter(), {}, set()
    deadline = time.monotonic() + 30
    while len(eof) < parts and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            continue
        r = json.loads(m.value())
        w = (r["key"], r["window_start"])
        seen[w] += 1
        counts[w] = r["count"]
    c.close()
    return seen, counts


def main():
    binary = harness.runnel_binary()
    with tempfile.TemporaryDirectory(prefix="ext-job-") as d:
        with harness.RunnelServer(binary, name="ext-cluster", shards=2) as a:
            admin = AdminClient({"bootstrap.servers": a.bootstrap})
            admin.create_topics([NewTopic("ext-in", 3, 1)])["ext-in"].result(30)
            events = [(f"k{i % 9}", 5_000_000 + i * 7) for i in range(3000)]
            expected = Counter((k, harness.sql_time(ts // 1000 * 1000)) for k, ts in events)
            b = harness.RunnelServer(binary, name="ext-runner", shards=2, data_dir=os.path.join(d, "b")).start()
            try:
                job = {"id": "ext", "template": "windowed_count", "checkpoint_interval_ms": 100,
                       "params": {"input": "ext-in", "output": "ext-counts", "key": "key", "time": "ts",
                                  "window_ms": 1000, "bootstrap": a.bootstrap, "delivery": "at_least_once"}}
                eos = dict(job, id="ext-eos", params=dict(job["params"], delivery="exactly_once",
                                                          output="ext-eos-counts"))
                status, body = post(f"{b.http}/v1/pipelines", eos)
                assert status == 201, (status, body)
                status, body = post(f"{b.http}/v1/pipelines", job)
                assert status == 201, (status, body)
                produce(a.bootstrap, events[:1500], 0)
                # Restart the runner halfway: it resumes from its checkpointed offsets.
                deadline = harness.Deadline(30, "a checkpoint of the external pipeline")
                while True:
                    with urllib.request.urlopen(f"{b.http}/v1/pipelines/ext", timeout=10) as r:
                        p = json.loads(r.read())
                    if p["checkpoints"]["completed"] >= 2 and any(
                            o["operator"].endswith(".source") and o["records_out"] > 0 for o in p["operators"]):
                        break
                    deadline.check(str(p))
                    time.sleep(0.05)  # polling a condition with a deadline
                b.stop()
                b = harness.RunnelServer(binary, name="ext-runner-2", shards=2, data_dir=os.path.join(d, "b")).start()
                produce(a.bootstrap, events[1500:], 3)
                deadline = harness.Deadline(60, "every window in A's output topic")
                while True:
                    seen, counts = read_counts(a.bootstrap)
                    if all(w in counts for w in expected):
                        break
                    deadline.check(f"{len(counts)} of {len(expected)} windows")
                    time.sleep(0.2)  # polling a condition with a deadline
                wrong = [(w, counts[w], n) for w, n in expected.items() if counts[w] != n]
                assert not wrong, wrong[:5]
                extra = [w for w in counts if w not in expected]
                assert not extra, extra[:5]
                deadline = harness.Deadline(60, "every window in the exactly-once output")
                while True:
                    eos_seen, eos_counts = read_counts(a.bootstrap, "ext-eos-counts")
                    if all(w in eos_counts for w in expected):
                        break
                    deadline.check(f"{len(eos_counts)} of {len(expected)} windows")
                    time.sleep(0.2)  # polling a condition with a deadline
                wrong = [(w, eos_counts[w], n) for w, n in expected.items() if eos_counts[w] != n]
                assert not wrong, wrong[:5]
                twice = [w for w, n in eos_seen.items() if n != 1]
                assert not twice, f"exactly-once windows written {len(twice)} times more than once: {twice[:5]}"
                print(f"exactly-once pipeline: {len(expected)} windows, each once, through Kafka transactions")
                print(f"external pipeline: {len(expected)} windows right across a restart of the runner; "
                      f"{sum(1 for n in seen.values() if n > 1)} windows written more than once (at-least-once)")
            finally:
                b.stop()
    harness.summary("external_job_test", 1, 0)


if __name__ == "__main__":
    main()
