#!/usr/bin/python3
"""Compacted topics (cleanup.policy=compact) against a real server, with confluent-kafka and raw
requests (kafka_wire.py; Debian's confluent-kafka has no incremental_alter_configs):

- A record without a key is refused with INVALID_RECORD (87), as Kafka refuses it.
- IncrementalAlterConfigs APPEND and SUBTRACT change the list cleanup.policy
  ("compact" + APPEND delete = "compact,delete"); on a config that is not a list they are
  INVALID_CONFIG.
- 1,000,000 lz4-compressed records over 1,000 keys, with deletes, into small segments rolled
  by segment.ms: once the log cleaner has run (watched through /metrics), a reader from the
  beginning sees each live key once, with its latest value at the offset it was written at,
  and, after delete.retention.ms, no deleted key (about 15 s on a loaded two-core machine).

Run: /usr/bin/python3 compaction_test.py --runnel PATH
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from kafka_wire import i8, i32, string  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402

BINARY = None
TOPIC = "compacted"
RECORDS = 1_000_000
KEYS = 1_000
DELETED = range(0, 100)  # keys deleted at the end
INCREMENTAL_ALTER_CONFIGS = 44
INVALID_CONFIG = 40
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def incremental_alter(port, topic, changes):
    """IncrementalAlterConfigs v0 on one topic: (name, operation, value) changes. Returns
    (error code, message)."""
    configs = b"".join(string(n) + i8(op) + string(v) for n, op, v in changes)
    body = i32(1) + i8(2) + string(topic) + i32(len(changes)) + configs + i8(0)
    with kw.Connection(port) as c:
        _, resp = c.request(INCREMENTAL_ALTER_CONFIGS, 0, body)
    r = kw.Reader(resp)
    r.i32()
    out = r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string()))
    return out[0][0], out[0][1]


def describe(bootstrap, topic, name):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource("topic", topic)
    configs = admin.describe_configs([res])[res].result(timeout=30)
    return configs[name].value


class compaction_test(unittest.TestCase):
    def server(self):
        return harness.RunnelServer(BINARY, shards=2, extra_args=["--log-cleaner-backoff-ms", "100"])

    def create(self, bootstrap, topic, config):
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=30)

    def test_keyless_record_is_refused(self):
        with self.server() as srv:
            self.create(srv.bootstrap, TOPIC, {"cleanup.policy": "compact"})
            p = Producer({"bootstrap.servers": srv.bootstrap, "retries": 0, "linger.ms": 0})
            errors = []
            p.produce(TOPIC, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
            self.assertEqual(p.flush(30), 0)
            self.assertEqual(len(errors), 1)
            self.assertIsNotNone(errors[0])
            self.assertEqual(errors[0].code(), kw.INVALID_RECORD)
            # A keyed record still goes in.
            p.produce(TOPIC, key=b"k", value=b"v", on_delivery=lambda err, msg: errors.append(err))
            self.assertEqual(p.flush(30), 0)
            self.assertIsNone(errors[1])

    def test_append_and_subtract_on_list_configs(self):
        with self.server() as srv:
            self.create(srv.bootstrap, TOPIC, {"cleanup.policy": "compact"})
            self.assertEqual(incremental_alter(srv.port, TOPIC, [("cleanup.policy", APPEND, "delete")])[0], kw.NONE)
            self.assertEqual(describe(srv.bootstrap, TOPIC, "cleanup.policy"), "compact,delete")
            # Appending what is there changes nothing.
            self.assertEqual(incremental_alter(srv.port, TOPIC, [("cleanup.policy", APPEND, "compact")])[0], kw.NONE)
            self.assertEqual(describe(srv.bootstrap, TOPIC, "cleanup.policy"), "compact,delete")
            self.assertEqual(incremental_alter(srv.port, TOPIC, [("cleanup.policy", SUBTRACT, "compact")])[0], kw.NONE)
            self.assertEqual(describe(srv.bootstrap, TOPIC, "cleanup.policy"), "delete")
            self.assertEqual(incremental_alter(srv.port, TOPIC, [("cleanup.policy", APPEND, "compact")])[0], kw.NONE)
            self.assertEqual(describe(srv.bootstrap, TOPIC, "cleanup.policy"), "delete,compact")
            err, msg = incremental_alter(srv.port, TOPIC, [("retention.ms", APPEND, "5")])
            self.assertEqual(err, INVALID_CONFIG, msg)
            self.assertIn("list", msg)
            # Subtracting the only policy leaves no valid value.
            err, _ = incremental_alter(srv.port, TOPIC, [("cleanup.policy", SUBTRACT, "delete,compact")])
            self.assertEqual(err, INVALID_CONFIG)
            self.assertEqual(describe(srv.bootstrap, TOPIC, "cleanup.policy"), "delete,compact")

    def test_reader_sees_latest_value_of_each_live_key(self):
        with self.server() as srv:
            self.create(srv.bootstrap, TOPIC, {
                "cleanup.policy": "compact", "segment.bytes": "262144", "segment.ms": "300",
                "delete.retention.ms": "1000", "min.cleanable.dirty.ratio": "0.1"})
            p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "linger.ms": 5,
                          "compression.type": "lz4", "enable.idempotence": True})
            errors = []

            def on_delivery(err, msg):
                if err is not None:
                    errors.append(err)

            def send(key, value):
                while True:
                    try:
                        p.produce(TOPIC, key=key, value=value, on_delivery=on_delivery)
                        return
                    except BufferError:
                        p.poll(0.05)

            expected = {}
            for i in range(RECORDS):
                k = i % KEYS
                # Now and then a delete that a later write of the key supersedes.
                value = None if i % 997 == 0 else str(i).encode()
                send(f"key-{k}".encode(), value)
                expected[k] = (i, value)
                p.poll(0)
            for k in DELETED:
                send(f"key-{k}".encode(), None)
                expected[k] = (RECORDS + k, None)
            self.assertEqual(p.flush(60), 0)
            self.assertEqual(errors, [])
            live = {f"key-{k}": v for k, (o, v) in expected.items() if v is not None}
            offset_of = {f"key-{k}": o for k, (o, v) in expected.items()}

            sentinel = [0]

            def read_all():
                """Every record from the beginning up to a fresh sentinel record."""
                sentinel[0] += 1
                mark = f"~end-{sentinel[0]}".encode()
                send(mark, b"end")
                self.assertEqual(p.flush(30), 0)
                c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "itest-unused",
                              "enable.auto.commit": False, "fetch.wait.max.ms": 100})
                c.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
                out = []
                deadline = harness.Deadline(60, "reading the compacted topic")
                try:
                    while True:
                        deadline.check(f"({len(out)} records read)")
                        for m in c.consume(1000, 0.5):
                            self.assertIsNone(m.error(), m.error())
                            if m.key() == mark:
                                return out
                            out.append((m.offset(), m.key().decode(), m.value()))
                finally:
                    c.close()

            def compacted(records):
                seen = {}
                for off, key, value in records:
                    if key.startswith("~end"):
                        continue
                    if key in seen or value is None:
                        return False  # a duplicate or a tombstone still there
                    seen[key] = (off, value)
                return seen.keys() == live.keys()

            deadline = harness.Deadline(120, "the cleaner to compact the topic")
            while True:
                runs = harness.metric(srv, "runnel_log_cleaner_runs_total")
                records = read_all()
                if compacted(records):
                    break
                deadline.check(f"({len(records)} records still there)")
                harness.wait_until(lambda: harness.metric(srv, "runnel_log_cleaner_runs_total") > runs,
                                   deadline.left(), "another cleaning", interval=0.1)

            # Each live key once, with its latest value, at the offset it was written at.
            for off, key, value in records:
                if key.startswith("~end"):
                    continue
                self.assertEqual(value, live[key], key)
                self.assertEqual(off, offset_of[key], key)
            for k in DELETED:
                self.assertNotIn(f"key-{k}", {key for _, key, _ in records})

            # Fetch at an offset in a gap returns the next record kept; ListOffsets answers the
            # same watermarks as before the cleaning.
            kept = sorted(off for off, key, _ in records if not key.startswith("~end"))
            kept_set = set(kept)
            gap = next(o for o in range(kept[-1]) if o not in kept_set)
            c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "itest-unused",
                          "enable.auto.commit": False, "fetch.wait.max.ms": 100})
            try:
                low, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=30)
                self.assertEqual(low, 0)
                self.assertGreaterEqual(high, RECORDS + len(DELETED))
                c.assign([TopicPartition(TOPIC, 0, gap)])
                first = None
                deadline = harness.Deadline(30, f"a record after the gap at {gap}")
                while first is None:
                    deadline.check()
                    for m in c.consume(1, 0.5):
                        self.assertIsNone(m.error(), m.error())
                        first = m.offset()
                self.assertEqual(first, min(o for o in kept if o > gap))
            finally:
                c.close()
            self.assertGreater(harness.metric(srv, "runnel_log_cleaner_bytes_read_total"), 0)
            self.assertGreater(harness.metric(srv, "runnel_log_cleaner_segments_cleaned_total"), 0)
            self.assertGreater(harness.metric(srv, "runnel_log_cleaner_tombstones_removed_total"), 0)
            self.assertEqual(harness.metric(srv, "runnel_log_cleaner_errors_total"), 0)
            self.assertEqual(harness.metric(srv, "runnel_storage_corrupt_partitions_total"), 0)


def main():
    global BINARY
    BINARY = harness.runnel_binary()
    harness.run_unittests("compaction")


if __name__ == "__main__":
    main()
