#!/usr/bin/python3
"""DeleteRecords (Kafka API 21) against a real server, with raw requests (kafka_wire.py; neither
Debian's kafka-python nor its confluent-kafka has an admin call for it) and a real consumer
(confluent-kafka):

- v1 and v2 move the log start; the answer's low watermark is the new start; -1 is the high
  watermark; past the high watermark is OFFSET_OUT_OF_RANGE; unknown topics and partitions
  are UNKNOWN_TOPIC_OR_PARTITION; the internal `__consumer_offsets` is refused.
- A consumer reading from earliest gets exactly the records from the new start on (the batch
  straddling it is served whole and the client skips the records below), ListOffsets earliest
  answers the new start and a Fetch below it is OFFSET_OUT_OF_RANGE.
- After a restart on the same data directory all of that still holds.

Run: /usr/bin/python3 delete_records_test.py --runnel PATH
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from kafka_wire import Writer, i8, i32, i64  # noqa: E402

BINARY = None
TOPIC = "trimmed"


def list_offsets_earliest(conn, topic, partition):
    w = Writer(True)
    part = i32(partition) + i32(-1) + i64(-2) + w.tags()
    body = i32(-1) + i8(0) + w.array([w.string(topic) + w.array([part], lambda p: p) + w.tags()],
                                     lambda t: t) + w.tags()
    _, resp = conn.request(kw.LIST_OFFSETS, 7, body)
    r = kw.Reader(resp, flexible=True)
    r.i32()
    out = []

    def partition_(r):
        r.i32()
        error, _, off = r.i16(), r.i64(), r.i64()
        r.i32()
        r.tags()
        out.append((error, off))

    r.array(lambda r: (r.string(), r.array(partition_), r.tags()))
    return out[0]


def fetch_error_v4(conn, topic, partition, offset):
    _, resp = conn.request(kw.FETCH, 4, kw.fetch_request(4, topic, partition, offset))
    (_, error, _, _), = kw.parse_fetch(resp, 4)
    return error


def consume_offsets(bootstrap, topic, timeout=30):
    """The offsets a consumer reading from earliest receives, up to the end of partition 0."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"delrec-{time.monotonic_ns()}",
                  "enable.partition.eof": True, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    offsets = []
    deadline = harness.Deadline(timeout, f"reading {topic} from earliest")
    try:
        while True:
            deadline.check(f"{len(offsets)} records so far")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return offsets
                raise AssertionError(m.error())
            offsets.append(m.offset())
    finally:
        c.close()


class DeleteRecordsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="runnel-delrec-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data_dir = os.path.join(self.tmp, "data")

    def server(self):
        return harness.RunnelServer(BINARY, name="delete-records", data_dir=self.data_dir)

    def delete(self, srv, topics, version=2):
        with kw.Connection(srv.port) as c:
            _, body = c.request(kw.DELETE_RECORDS, version, kw.delete_records_request(version, topics))
            return kw.parse_delete_records(body, version)

    def check_trimmed(self, srv, start, end):
        with kw.Connection(srv.port) as c:
            self.assertEqual(list_offsets_earliest(c, TOPIC, 0), (kw.NONE, start))
            self.assertEqual(fetch_error_v4(c, TOPIC, 0, start - 1), kw.OFFSET_OUT_OF_RANGE)
            self.assertEqual(fetch_error_v4(c, TOPIC, 0, start), kw.NONE)
        self.assertEqual(consume_offsets(srv.bootstrap, TOPIC), list(range(start, end)))

    def test_records_below_the_new_start_are_gone_before_and_after_a_restart(self):
        with self.server() as srv:
            with kw.Connection(srv.port) as c:
                _, body = c.request(kw.CREATE_TOPICS, 4, kw.create_topics_request(4, [(TOPIC, 2, -1, {})]))
                self.assertEqual(kw.parse_create_topics(body, 4)[TOPIC][0], kw.NONE)
                # Ten batches of three records: offsets 0-29.
                for b in range(10):
                    batch = kw.record_batch([(None, f"v{3 * b + i}".encode(), [], 1_700_000_000_000 + b)
                                             for i in range(3)])
                    _, body = c.request(kw.PRODUCE, 9, kw.produce_request(9, TOPIC, 0, batch))
                    (_, _, error, base, _), = kw.parse_produce(body, 9)
                    self.assertEqual((error, base), (kw.NONE, 3 * b))

            # 13 lies inside the batch 12-14.
            got = self.delete(srv, {TOPIC: [(0, 13), (1, 5), (7, 0)], "no-such-topic": [(0, 0)]})
            self.assertEqual(got, {(TOPIC, 0): (kw.NONE, 13),
                                   (TOPIC, 1): (kw.OFFSET_OUT_OF_RANGE, -1),  # empty partition
                                   (TOPIC, 7): (kw.UNKNOWN_TOPIC_OR_PARTITION, -1),
                                   ("no-such-topic", 0): (kw.UNKNOWN_TOPIC_OR_PARTITION, -1)})
            got = self.delete(srv, {TOPIC: [(0, 31), (1, -7)]}, version=1)
            self.assertEqual(got, {(TOPIC, 0): (kw.OFFSET_OUT_OF_RANGE, -1),
                                   (TOPIC, 1): (kw.OFFSET_OUT_OF_RANGE, -1)})
            # An earlier offset changes nothing and answers the current start.
            self.assertEqual(self.delete(srv, {TOPIC: [(0, 4)]}, version=1), {(TOPIC, 0): (kw.NONE, 13)})
            self.check_trimmed(srv, 13, 30)

            # The broker's own offsets topic is refused, as Produce refuses it.
            internal = self.delete(srv, {"__consumer_offsets": [(0, -1)]})
            self.assertEqual(internal[("__consumer_offsets", 0)], (kw.INVALID_TOPIC_EXCEPTION, -1))
            self.assertTrue(os.path.exists(os.path.join(self.data_dir, "topics", TOPIC, "0", "log_start")))

        with self.server() as srv:
            self.check_trimmed(srv, 13, 30)
            # -1 is the high watermark: everything goes.
            self.assertEqual(self.delete(srv, {TOPIC: [(0, -1)]}), {(TOPIC, 0): (kw.NONE, 30)})
            with kw.Connection(srv.port) as c:
                self.assertEqual(list_offsets_earliest(c, TOPIC, 0), (kw.NONE, 30))
            self.assertEqual(consume_offsets(srv.bootstrap, TOPIC), [])

        with self.server() as srv:
            with kw.Connection(srv.port) as c:
                self.assertEqual(list_offsets_earliest(c, TOPIC, 0), (kw.NONE, 30))


def main():
    global BINARY
    BINARY = harness.runnel_binary()
    harness.run_unittests("delete-records")


if __name__ == "__main__":
    main()
