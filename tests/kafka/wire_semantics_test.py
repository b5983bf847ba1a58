#!/usr/bin/python3
"""Kafka semantics checked with raw requests (kafka_wire.py), where a client library would hide
what the broker answered:

- InitProducerId without a transactional id hands out a new producer id with epoch 0 every
  time, whatever id and epoch the request presents: two producers presenting (0, 0), and a
  producer restarted with its old id, never share a sequence space, so every acknowledged
  record is in the log exactly once.
- A Fetch for a partition in error (offset out of range, unknown partition) carries empty
  records, never null, at v4, v11 and v12. A Fetch naming one partition 200,000 times keeps the
  server's peak memory bounded by the response's limits (under 300 MB), and the repeats are
  answered INVALID_REQUEST.
- ListOffsets by timestamp answers the first record at or after the time with that record's
  own timestamp, on uncompressed and compressed (gzip) batches, checked against a scan of
  every record.
- FindCoordinator with a key type that is neither a group nor a transaction is INVALID_REQUEST
  (transactions have their own test, txn_wire_test.py).
- OffsetForLeaderEpoch answers epoch 0's end at the log end; DescribeCluster names this node.
- CreateTopics and CreatePartitions accept manual replica assignments that name this node (one
  replica per partition), as a single Kafka broker does (librdkafka's 0081_admin sends them);
  any other broker, an empty or repeated replica list, partitions not numbered 0..n-1 or a
  count that does not match are INVALID_REPLICA_ASSIGNMENT, and assignments together with a
  partition count or replication factor are INVALID_REQUEST.
- OffsetCommit from a classic group's member with an older generation is ILLEGAL_GENERATION
  even while the group waits for SyncGroup (REBALANCE_IN_PROGRESS is for the current
  generation), as Kafka checks them (librdkafka's 0113_cooperative_rebalance relies on it).

Run: /usr/bin/python3 wire_semantics_test.py --runnel PATH
"""

import gzip
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from kafka_wire import Writer, i8, i16, i32, i64  # noqa: E402

BINARY = None
FIND_COORDINATOR, INIT_PRODUCER_ID, OFFSET_FOR_LEADER_EPOCH, DESCRIBE_CLUSTER = 10, 22, 23, 60
CREATE_PARTITIONS = 37
OFFSET_OUT_OF_RANGE = 1
INVALID_REPLICA_ASSIGNMENT = 39
ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED = 22, 27, 79


def init_producer_id(conn, producer_id=-1, epoch=-1, transactional_id=None, version=4):
    w = Writer(version >= 2)
    body = w.string(transactional_id) + i32(60000)
    if version >= 3:
        body += i64(producer_id) + i16(epoch)
    body += w.tags()
    _, resp = conn.request(INIT_PRODUCER_ID, version, body)
    r = kw.Reader(resp, flexible=version >= 2)
    r.i32()  # throttle
    return r.i16(), r.i64(), r.i16()


def list_offsets_request(topic, partition, timestamp, version=7):
    w = Writer(version >= 6)
    part = i32(partition) + i32(-1) + i64(timestamp) + w.tags()
    return i32(-1) + i8(0) + w.array([w.string(topic) + w.array([part], lambda p: p) + w.tags()],
                                     lambda t: t) + w.tags()


def parse_list_offsets(body, version=7):
    """(error, timestamp, offset) of the one partition asked for."""
    r = kw.Reader(body, flexible=version >= 6)
    r.i32()  # throttle
    out = []

    def partition(r):
        r.i32()
        error, ts, off = r.i16(), r.i64(), r.i64()
        r.i32()  # leader epoch
        r.tags()
        out.append((error, ts, off))

    r.array(lambda r: (r.string(), r.array(partition), r.tags()))
    return out[0]


def idempotent_batch(pid, epoch, first_seq, values, ts=1_700_000_000_000):
    return kw.record_batch([(None, v, [], ts) for v in values], producer_id=pid, producer_epoch=epoch,
                           base_sequence=first_seq)


def gzip_batch(recs, base_ts):
    """One gzip-compressed batch of (value, timestamp) records."""
    section = kw.records_section([(None, v, [], t) for v, t in recs], base_ts)
    return kw.batch_around(gzip.compress(section), len(recs), base_ts, max(t for _, t in recs), attributes=1)


class WireSemanticsTest(harness.ServerCase):
    server_name = "wire-semantics"

    def read_values(self, topic, partition=0):
        """Every record value of the partition, by offset, through Fetch v4 (uncompressed)."""
        c = self.conn()
        values = {}
        offset = 0
        while True:
            _, body = c.request(kw.FETCH, 4, kw.fetch_request(4, topic, partition, offset))
            (_, error, hw, records), = kw.parse_fetch(body, 4)
            self.assertEqual(error, kw.NONE)
            if offset >= hw:
                return values, hw
            for off, value in decode_uncompressed(records):
                values[off] = value
            offset = max(values) + 1

    # -- producer ids ----------------------------------------------------------------------

    def test_init_producer_id_never_trusts_a_presented_id(self):
        c = self.conn()
        seen = set()
        for pid, epoch in [(0, 0), (0, 0), (424242, 7), (-1, -1)]:
            error, got_pid, got_epoch = init_producer_id(c, pid, epoch)
            self.assertEqual(error, kw.NONE)
            self.assertEqual(got_epoch, 0, f"presented ({pid}, {epoch})")
            self.assertNotIn(got_pid, seen, f"presented ({pid}, {epoch}) got an id handed out before")
            self.assertNotEqual(got_pid, 424242)
            seen.add(got_pid)
        for version in (0, 1, 2):
            error, got_pid, got_epoch = init_producer_id(c, version=version)
            self.assertEqual((error, got_epoch), (kw.NONE, 0))
            self.assertNotIn(got_pid, seen)
            seen.add(got_pid)

    def test_colliding_and_restarted_producers_lose_nothing(self):
        topic = "pid-collisions"
        self.create_topic(topic)
        c = self.conn()
        # Two producers that both present (0, 0), as some clients always do.
        producers = [init_producer_id(c, 0, 0)[1:] for _ in range(2)]
        self.assertNotEqual(producers[0][0], producers[1][0])
        expected = []
        for seq in range(0, 10, 2):
            for n, (pid, epoch) in enumerate(producers):
                values = [b"p%d-%d" % (n, seq), b"p%d-%d" % (n, seq + 1)]
                error, _, message = self.produce(topic, idempotent_batch(pid, epoch, seq, values))
                self.assertEqual(error, kw.NONE, message)
                expected += values
        # The first producer restarts and presents its old id and epoch: a fresh id, and its
        # batches from sequence 0 are appended, not refused as duplicates.
        pid, epoch = producers[0]
        error, new_pid, new_epoch = init_producer_id(c, pid, epoch)
        self.assertEqual(error, kw.NONE)
        self.assertNotIn(new_pid, [p for p, _ in producers])
        for seq in range(0, 10, 2):
            values = [b"r-%d" % seq, b"r-%d" % (seq + 1)]
            error, _, message = self.produce(topic, idempotent_batch(new_pid, new_epoch, seq, values))
            self.assertEqual(error, kw.NONE, message)
            expected += values
        # A retry of the restarted producer's last batch is still de-duplicated.
        error, _, _ = self.produce(topic, idempotent_batch(new_pid, new_epoch, 8, [b"r-8", b"r-9"]))
        self.assertEqual(error, kw.NONE)
        values, hw = self.read_values(topic)
        self.assertEqual(hw, len(expected), "every acknowledged record once, no more, no fewer")
        self.assertEqual(sorted(values.values()), sorted(expected))

    # -- fetch -----------------------------------------------------------------------------

    def test_fetch_errors_carry_empty_not_null_records(self):
        topic = "fetch-errors"
        self.create_topic(topic)
        error, _, _ = self.produce(topic, kw.record_batch([(None, b"v", [], 1)]))
        self.assertEqual(error, kw.NONE)
        c = self.conn()
        for version in (4, 11, 12):
            for partition, offset, want in [(0, 1000, OFFSET_OUT_OF_RANGE), (5, 0, kw.UNKNOWN_TOPIC_OR_PARTITION)]:
                _, body = c.request(kw.FETCH, version, kw.fetch_request(version, topic, partition, offset))
                (_, error, _, records), = kw.parse_fetch(body, version)
                self.assertEqual(error, want, f"v{version} partition {partition}")
                self.assertEqual(records, b"", f"v{version}: records of a partition in error must be empty, not null")

    def test_fetch_memory_follows_the_response_limits(self):
        topic = "fetch-bomb"
        self.create_topic(topic)
        for i in range(30):
            error, _, _ = self.produce(topic, kw.record_batch([(None, bytes([65 + i % 26]) * 100_000, [], 1)]))
            self.assertEqual(error, kw.NONE)
        c = kw.Connection(self.srv.port, timeout=120)
        self.addCleanup(c.close)
        copies = 200_000
        _, body = c.request(kw.FETCH, 4, kw.fetch_request(4, topic, 0, 0, max_bytes=1 << 20, copies=copies,
                                                        response_max_bytes=50 << 20))
        parts = kw.parse_fetch(body, 4)
        self.assertEqual(len(parts), copies)
        self.assertEqual(parts[0][1], kw.NONE)
        self.assertGreater(len(parts[0][3]), 0)
        self.assertTrue(all(p[1] == kw.INVALID_REQUEST and p[3] == b"" for p in parts[1:]),
                        "a partition named again is INVALID_REQUEST, with no records")
        peak = peak_rss_mb(self.srv.proc.pid)
        print(f"fetch naming one partition {copies} times: server peak RSS {peak:.0f} MB", flush=True)
        self.assertLess(peak, 300)

    # -- list offsets by time --------------------------------------------------------------

    def test_list_offsets_by_time_matches_a_scan(self):
        topic = "time-lookup"
        self.create_topic(topic)
        rng = random.Random(7)
        base = 1_700_000_000_000
        clock = base
        records = []  # (offset, timestamp), in offset order
        for b in range(60):
            recs = []
            for _ in range(rng.randint(1, 12)):
                clock += rng.randint(0, 40)
                # Some records are stamped out of order, as producers' clocks disagree.
                ts = clock - rng.randint(0, 300) if rng.random() < 0.2 else clock
                recs.append((b"v%d" % len(records + recs), ts))
            batch = gzip_batch(recs, min(t for _, t in recs)) if b % 2 else \
                kw.record_batch([(None, v, [], t) for v, t in recs])
            error, first, message = self.produce(topic, batch)
            self.assertEqual(error, kw.NONE, message)
            records += [(first + i, t) for i, (_, t) in enumerate(recs)]
        c = self.conn()
        checked = 0
        for target in range(base - 5, clock + 10, 37):
            want = next(((o, t) for o, t in records if t >= target), None)
            _, body = c.request(kw.LIST_OFFSETS, 7, list_offsets_request(topic, 0, target))
            error, ts, off = parse_list_offsets(body)
            self.assertEqual(error, kw.NONE)
            if want is None:
                self.assertEqual((off, ts), (-1, -1), f"t={target}")
            else:
                self.assertEqual((off, ts), want, f"t={target}: first record at or after it")
            checked += 1
        self.assertGreater(checked, 100)

    # -- coordinators ----------------------------------------------------------------------

    def test_find_coordinator_for_an_unknown_key_type(self):
        c = self.conn()
        _, body = c.request(FIND_COORDINATOR, 3, kw.compact_string("k") + i8(2) + kw.NO_TAGS)
        r = kw.Reader(body, flexible=True)
        r.i32()
        self.assertEqual(r.i16(), kw.INVALID_REQUEST)

    # -- cluster and epochs ----------------------------------------------------------------

    def test_offset_for_leader_epoch(self):
        topic = "epochs"
        self.create_topic(topic)
        for _ in range(3):
            self.assertEqual(self.produce(topic, kw.record_batch([(None, b"v", [], 1)]))[0], kw.NONE)
        c = self.conn()
        for version in (2, 3, 4):
            w = Writer(version >= 4)
            parts = [(0, -1, 0), (0, 0, 0), (0, -1, 5), (0, 3, 0), (9, -1, 0)]
            body = (i32(-1) if version >= 3 else b"") + w.array(
                [w.string(topic) + w.array([i32(p) + i32(cur) + i32(ep) + w.tags() for p, cur, ep in parts],
                                           lambda x: x) + w.tags()], lambda x: x) + w.tags()
            _, resp = c.request(OFFSET_FOR_LEADER_EPOCH, version, body)
            r = kw.Reader(resp, flexible=version >= 4)
            r.i32()
            got = []
            r.array(lambda r: (r.string(), r.array(lambda r: got.append((r.i16(), r.i32(), r.i32(), r.i64(), r.tags()))),
                               r.tags()))
            got = [g[:4] for g in got]
            self.assertEqual(got, [(kw.NONE, 0, 0, 3), (kw.NONE, 0, 0, 3), (kw.NONE, 0, -1, -1),
                                   (76, 0, -1, -1), (kw.UNKNOWN_TOPIC_OR_PARTITION, 9, -1, -1)], f"v{version}")

    def test_describe_cluster(self):
        c = self.conn()
        _, resp = c.request(DESCRIBE_CLUSTER, 1, kw.boolean(False) + i8(1) + kw.NO_TAGS)
        r = kw.Reader(resp, flexible=True)
        r.i32()
        error, _, endpoint_type, cluster_id, controller = r.i16(), r.string(), r.i8(), r.string(), r.i32()
        brokers = r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string(), r.tags()))
        self.assertEqual((error, endpoint_type, cluster_id, controller), (kw.NONE, 1, "runnel", 0))
        self.assertEqual([b[:3] for b in brokers], [(0, "127.0.0.1", self.srv.port)])

    # -- manual replica assignments ------------------------------------------------------

    def partition_count(self, topic):
        _, body = self.conn().request(kw.METADATA, 12, kw.metadata_request(12, [topic], allow_auto_create=False))
        topics, _ = kw.parse_metadata(body, 12)
        return topics[topic]

    def create_with_assignments(self, name, assignments, partitions=-1, rf=-1, version=7):
        body = kw.create_topics_request(version, [(name, partitions, rf, {}, assignments)])
        _, resp = self.conn().request(kw.CREATE_TOPICS, version, body)
        return kw.parse_create_topics(resp, version)[name][:2]

    def test_create_topics_with_assignments_naming_this_node(self):
        for version in (2, 7):
            name = f"assigned-v{version}"
            error, message = self.create_with_assignments(name, [(1, [0]), (0, [0]), (2, [0])], version=version)
            self.assertEqual(error, kw.NONE, message)
            self.assertEqual(self.partition_count(name), (kw.NONE, 3))
        refused = [
            ([(0, [1])], INVALID_REPLICA_ASSIGNMENT),  # a broker that does not exist
            ([(0, [0, 1])], INVALID_REPLICA_ASSIGNMENT),
            ([(0, [0, 0])], INVALID_REPLICA_ASSIGNMENT),
            ([(0, [])], INVALID_REPLICA_ASSIGNMENT),
            ([(0, [0]), (0, [0])], INVALID_REPLICA_ASSIGNMENT),
            ([(0, [0]), (2, [0])], INVALID_REPLICA_ASSIGNMENT),  # not 0..n-1
            ([(1, [0])], INVALID_REPLICA_ASSIGNMENT),
        ]
        for i, (assignments, code) in enumerate(refused):
            name = f"badly-assigned-{i}"
            error, message = self.create_with_assignments(name, assignments)
            self.assertEqual(error, code, f"{assignments}: {message}")
            self.assertEqual(self.partition_count(name)[0], kw.UNKNOWN_TOPIC_OR_PARTITION)
        for partitions, rf in ((1, -1), (-1, 1)):
            error, _ = self.create_with_assignments("assigned-and-counted", [(0, [0])], partitions, rf)
            self.assertEqual(error, kw.INVALID_REQUEST)

    def test_create_partitions_with_assignments_naming_this_node(self):
        topic = "grown-by-assignment"
        self.create_topic(topic, partitions=2)

        def grow(count, assignments, version=3):
            w = Writer(version >= 2)
            assigned = None if assignments is None else [w.array(ids, i32) + w.tags() for ids in assignments]
            body = (w.array([w.string(topic) + i32(count) + w.array(assigned, lambda a: a) + w.tags()], lambda t: t)
                    + i32(10000) + kw.boolean(False) + w.tags())
            _, resp = self.conn().request(CREATE_PARTITIONS, version, body)
            r = kw.Reader(resp, flexible=version >= 2)
            r.i32()
            (name, error, message, _), = r.array(lambda r: (r.string(), r.i16(), r.string(), r.tags()))
            self.assertEqual(name, topic)
            return error, message

        for count, assignments in ((4, [[0]]), (4, [[0], [1]]), (4, [[0], [0, 0]]), (4, [[0], []])):
            error, message = grow(count, assignments)
            self.assertEqual(error, INVALID_REPLICA_ASSIGNMENT, f"{assignments}: {message}")
        self.assertEqual(self.partition_count(topic), (kw.NONE, 2))
        error, message = grow(4, [[0], [0]])
        self.assertEqual(error, kw.NONE, message)
        self.assertEqual(self.partition_count(topic), (kw.NONE, 4))
        error, message = grow(5, [[0]], version=1)
        self.assertEqual(error, kw.NONE, message)
        self.assertEqual(self.partition_count(topic), (kw.NONE, 5))

    # -- offset commits during a rebalance -----------------------------------------------

    def test_commit_of_an_older_generation_while_the_group_syncs(self):
        topic, group = "committed-while-syncing", "g-syncing"
        self.create_topic(topic)

        def join(c, member_id=""):
            body = (kw.compact_string(group) + i32(10000) + i32(10000) + kw.compact_string(member_id)
                    + kw.compact_string(None) + kw.compact_string("consumer")
                    + kw.compact_array([("range", bytes(10))],
                                       lambda p: kw.compact_string(p[0]) + kw.compact_bytes(p[1]) + kw.NO_TAGS)
                    + kw.NO_TAGS)
            _, resp = c.request(kw.JOIN_GROUP, 6, body)
            r = kw.Reader(resp, flexible=True)
            r.i32()
            error, generation, _, _, member = r.i16(), r.i32(), r.string(), r.string(), r.string()
            return error, generation, member

        c = self.conn()
        error, _, member = join(c)
        self.assertEqual(error, MEMBER_ID_REQUIRED)
        error, generation, member = join(c, member)
        self.assertEqual(error, kw.NONE)  # the group now waits for the leader's SyncGroup

        def commit(gen):
            _, resp = c.request(kw.OFFSET_COMMIT, 9, kw.offset_commit_request(group, gen, member, topic, {0: 1}))
            return kw.parse_offset_commit(resp)[(topic, 0)]

        self.assertEqual(commit(generation - 1), ILLEGAL_GENERATION)
        self.assertEqual(commit(generation), REBALANCE_IN_PROGRESS)


def decode_uncompressed(data):
    """(offset, value) of every record in a run of uncompressed batches."""
    out = []
    pos = 0
    while pos + 61 <= len(data):
        r = kw.Reader(data[pos:])
        base = r.i64()
        length = r.i32()
        r.pos = 57
        count = r.i32()
        for _ in range(count):
            size = zigzag(r)
            end = r.pos + size
            r.i8()
            zigzag(r)
            delta = zigzag(r)
            klen = zigzag(r)
            if klen > 0:
                r.pos += klen
            vlen = zigzag(r)
            value = r._take(vlen) if vlen >= 0 else None
            r.pos = end
            out.append((base + delta, value))
        pos += 12 + length
    return out


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def zigzag(r):
    v = r.uvarint()
    return (v >> 1) ^ -(v & 1)


def main():
    global BINARY
    BINARY = harness.runnel_binary()
    harness.ServerCase.binary = BINARY
    harness.run_unittests("wire-semantics")


if __name__ == "__main__":
    main()
