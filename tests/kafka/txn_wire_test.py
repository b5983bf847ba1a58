#!/usr/bin/python3
"""Kafka transactions checked with raw requests (kafka_wire.py), where a client library would
hide what the broker answered:

- FindCoordinator for a transactional id names this node.
- InitProducerId with a transactional id keeps the producer id and bumps the epoch on every
  re-init; a transaction.timeout.ms above --kafka-transaction-max-timeout-ms is
  INVALID_TRANSACTION_TIMEOUT.
- A transactional batch to a partition not added to the transaction is INVALID_TXN_STATE
  (KIP-890), also after the transaction ended (a late write never joins it).
- An older epoch is PRODUCER_FENCED from AddPartitionsToTxn v2 on (INVALID_PRODUCER_EPOCH
  before), and its produce is INVALID_PRODUCER_EPOCH.
- read_committed fetches stop at the last stable offset and list the aborted transaction of
  the range; ListOffsets(read_committed) answers the last stable offset for latest.
- A re-init while a transaction is open aborts it.
- DescribeTransactions, ListTransactions and DescribeProducers describe what happened.
- A transaction past its timeout is aborted by the coordinator, fencing its producer.

Run: /usr/bin/python3 txn_wire_test.py --runnel PATH
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from kafka_wire import Writer, i8, i16, i32, i64, boolean  # noqa: E402

BINARY = None
FIND_COORDINATOR, INIT_PRODUCER_ID = 10, 22
ADD_PARTITIONS, ADD_OFFSETS, END_TXN, TXN_OFFSET_COMMIT = 24, 25, 26, 28
DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 61, 65, 66
INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, INVALID_TRANSACTION_TIMEOUT = 47, 48, 50
PRODUCER_FENCED = 90


def init_producer_id(conn, txn_id, timeout_ms=60000, producer_id=-1, epoch=-1, version=4):
    w = Writer(version >= 2)
    body = w.string(txn_id) + i32(timeout_ms)
    if version >= 3:
        body += i64(producer_id) + i16(epoch)
    _, resp = conn.request(INIT_PRODUCER_ID, version, body + w.tags())
    r = kw.Reader(resp, flexible=version >= 2)
    r.i32()
    return r.i16(), r.i64(), r.i16()


def add_partitions(conn, txn_id, pid, epoch, topic, partitions, version=3):
    w = Writer(version >= 3)
    body = w.string(txn_id) + i64(pid) + i16(epoch) + w.array(
        [w.string(topic) + w.array(partitions, i32) + w.tags()], lambda t: t) + w.tags()
    _, resp = conn.request(ADD_PARTITIONS, version, body)
    r = kw.Reader(resp, flexible=version >= 3)
    r.i32()
    out = {}

    def part(r):
        p, e = r.i32(), r.i16()
        r.tags()
        out[p] = e

    r.array(lambda r: (r.string(), r.array(part), r.tags()))
    return out


def end_txn(conn, txn_id, pid, epoch, commit, version=3):
    w = Writer(version >= 3)
    body = w.string(txn_id) + i64(pid) + i16(epoch) + boolean(commit) + w.tags()
    _, resp = conn.request(END_TXN, version, body)
    r = kw.Reader(resp, flexible=version >= 3)
    r.i32()
    return r.i16()


def txn_batch(pid, epoch, seq, values):
    return kw.record_batch([(None, v, [], 1_700_000_000_000) for v in values], producer_id=pid,
                           producer_epoch=epoch, base_sequence=seq, attributes=0x10)


def fetch(conn, topic, offset, isolation):
    """(error, high watermark, last stable offset, [(pid, first offset)], records bytes)."""
    version = 11
    _, body = conn.request(kw.FETCH, version, kw.fetch_request(version, topic, 0, offset, isolation_level=isolation))
    r = kw.Reader(body)
    r.i32()
    r.i16()
    r.i32()
    out = []

    def partition(r):
        r.i32()
        error, hw, lso = r.i16(), r.i64(), r.i64()
        r.i64()
        aborted = r.array(lambda r: (r.i64(), r.i64()))
        r.i32()
        out.append((error, hw, lso, aborted or [], r.bytes()))

    r.array(lambda r: (r.string(), r.array(partition)))
    return out[0]


def record_count(records):
    """Data records (not control batches) in a run of stored batches."""
    n, pos = 0, 0
    while pos + 61 <= len(records):
        length = int.from_bytes(records[pos + 8:pos + 12], "big")
        attributes = int.from_bytes(records[pos + 21:pos + 23], "big")
        if not attributes & 0x20:
            n += int.from_bytes(records[pos + 57:pos + 61], "big")
        pos += 12 + length
    return n


def list_latest(conn, topic, isolation):
    version = 7
    w = Writer(True)
    part = i32(0) + i32(-1) + i64(-1) + w.tags()
    body = i32(-1) + i8(isolation) + w.array([w.string(topic) + w.array([part], lambda p: p) + w.tags()],
                                              lambda t: t) + w.tags()
    _, resp = conn.request(kw.LIST_OFFSETS, version, body)
    r = kw.Reader(resp, flexible=True)
    r.i32()
    out = []

    def partition(r):
        r.i32()
        error, _, off = r.i16(), r.i64(), r.i64()
        r.i32()
        r.tags()
        out.append((error, off))

    r.array(lambda r: (r.string(), r.array(partition), r.tags()))
    return out[0]


class TxnWireTest(harness.ServerCase):
    server_name = "txn-wire"
    server_args = ("--kafka-transaction-max-timeout-ms", "120000")

    def test_find_coordinator_for_a_transactional_id(self):
        c = self.conn()
        _, body = c.request(FIND_COORDINATOR, 3, kw.compact_string("txn-1") + i8(1) + kw.NO_TAGS)
        r = kw.Reader(body, flexible=True)
        r.i32()
        self.assertEqual(r.i16(), kw.NONE)
        r.string()
        self.assertEqual(r.i32(), 0)  # node id
        self.assertEqual(r.string(), "127.0.0.1")
        self.assertEqual(r.i32(), self.srv.port)

    def test_epochs_and_timeouts(self):
        c = self.conn()
        error, pid, epoch = init_producer_id(c, "epochs")
        self.assertEqual((error, epoch), (kw.NONE, 0))
        for want in (1, 2, 3):
            error, again, epoch = init_producer_id(c, "epochs", version=want % 2 + 2)
            self.assertEqual((error, again, epoch), (kw.NONE, pid, want))
        self.assertEqual(init_producer_id(c, "epochs", timeout_ms=120001)[0], INVALID_TRANSACTION_TIMEOUT)
        self.assertEqual(init_producer_id(c, "epochs", timeout_ms=0)[0], INVALID_TRANSACTION_TIMEOUT)
        self.assertEqual(init_producer_id(c, "")[0], kw.INVALID_REQUEST)
        # KIP-360: presenting the current id and epoch bumps it; an older epoch is fenced.
        self.assertEqual(init_producer_id(c, "epochs", producer_id=pid, epoch=3)[:3], (kw.NONE, pid, 4))
        self.assertEqual(init_producer_id(c, "epochs", producer_id=pid, epoch=2)[0], PRODUCER_FENCED)
        # The stale epoch is fenced on the transaction apis too.
        self.create_topic("epochs-t")
        self.assertEqual(add_partitions(c, "epochs", pid, 3, "epochs-t", [0]), {0: PRODUCER_FENCED})
        self.assertEqual(add_partitions(c, "epochs", pid, 3, "epochs-t", [0], version=1), {0: INVALID_PRODUCER_EPOCH})
        self.assertEqual(end_txn(c, "epochs", pid, 3, True), PRODUCER_FENCED)
        self.assertEqual(end_txn(c, "epochs", pid, 3, True, version=1), INVALID_PRODUCER_EPOCH)
        # Nothing open: ending is INVALID_TXN_STATE.
        self.assertEqual(end_txn(c, "epochs", pid, 4, True), INVALID_TXN_STATE)

    def test_unadded_partition_and_late_writes_are_refused(self):
        topic = "unadded"
        self.create_topic(topic)
        c = self.conn()
        _, pid, epoch = init_producer_id(c, "unadded")
        error, _, message = self.produce(topic, txn_batch(pid, epoch, 0, [b"a"]))
        self.assertEqual(error, INVALID_TXN_STATE, message)
        self.assertEqual(add_partitions(c, "unadded", pid, epoch, topic, [0]), {0: kw.NONE})
        self.assertEqual(self.produce(topic, txn_batch(pid, epoch, 0, [b"a"]))[0], kw.NONE)
        self.assertEqual(end_txn(c, "unadded", pid, epoch, True), kw.NONE)
        # After the commit the partition is out of the transaction: a late batch is refused.
        error, _, message = self.produce(topic, txn_batch(pid, epoch, 1, [b"late"]))
        self.assertEqual(error, INVALID_TXN_STATE, message)
        # A retry of the commit is answered as done; an abort of it is not.
        self.assertEqual(end_txn(c, "unadded", pid, epoch, True), kw.NONE)
        self.assertEqual(end_txn(c, "unadded", pid, epoch, False), INVALID_TXN_STATE)

    def test_read_committed_and_aborted_transactions(self):
        topic = "committed"
        self.create_topic(topic)
        c = self.conn()
        self.assertEqual(self.produce(topic, kw.record_batch([(None, b"plain", [], 1)]))[0], kw.NONE)
        _, pid, epoch = init_producer_id(c, "reader")
        self.assertEqual(add_partitions(c, "reader", pid, epoch, topic, [0]), {0: kw.NONE})
        error, first, _ = self.produce(topic, txn_batch(pid, epoch, 0, [b"t1", b"t2"]))
        self.assertEqual((error, first), (kw.NONE, 1))
        # Open: read_committed stops at the transaction's first offset.
        error, hw, lso, aborted, records = fetch(c, topic, 0, 1)
        self.assertEqual((error, hw, lso, record_count(records)), (kw.NONE, 3, 1, 1))
        self.assertEqual(fetch(c, topic, 1, 1)[4], b"")
        self.assertEqual(record_count(fetch(c, topic, 0, 0)[4]), 3)
        self.assertEqual(list_latest(c, topic, 1), (kw.NONE, 1))
        self.assertEqual(list_latest(c, topic, 0), (kw.NONE, 3))
        # Aborted: the marker is written, the range is stable, and the abort is listed.
        self.assertEqual(end_txn(c, "reader", pid, epoch, False), kw.NONE)
        error, hw, lso, aborted, records = fetch(c, topic, 0, 1)
        self.assertEqual((error, hw, lso), (kw.NONE, 4, 4))
        self.assertEqual(aborted, [(pid, 1)])
        self.assertEqual(record_count(records), 3)  # the client drops the aborted ones
        self.assertEqual(list_latest(c, topic, 1), (kw.NONE, 4))
        # A committed transaction lists no abort past it.
        self.assertEqual(add_partitions(c, "reader", pid, epoch, topic, [0]), {0: kw.NONE})
        self.assertEqual(self.produce(topic, txn_batch(pid, epoch, 2, [b"t3"]))[0], kw.NONE)
        self.assertEqual(end_txn(c, "reader", pid, epoch, True), kw.NONE)
        error, hw, lso, aborted, _ = fetch(c, topic, 4, 1)
        self.assertEqual((error, hw, lso, aborted), (kw.NONE, 6, 6, []))

    def test_reinit_aborts_the_open_transaction_and_fences(self):
        topic = "reinit"
        self.create_topic(topic)
        c = self.conn()
        _, pid, epoch = init_producer_id(c, "reinit")
        self.assertEqual(add_partitions(c, "reinit", pid, epoch, topic, [0]), {0: kw.NONE})
        self.assertEqual(self.produce(topic, txn_batch(pid, epoch, 0, [b"zombie"]))[0], kw.NONE)
        error, pid2, epoch2 = init_producer_id(c, "reinit")
        self.assertEqual((error, pid2), (kw.NONE, pid))
        self.assertGreater(epoch2, epoch)
        # The zombie's transaction was aborted; its next write is fenced.
        _, hw, lso, aborted, _ = fetch(c, topic, 0, 1)
        self.assertEqual((hw, lso, aborted), (2, 2, [(pid, 0)]))
        error, _, _ = self.produce(topic, txn_batch(pid, epoch, 1, [b"zombie-2"]))
        self.assertIn(error, (INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE))
        self.assertEqual(add_partitions(c, "reinit", pid, epoch, topic, [0]), {0: PRODUCER_FENCED})
        # The new epoch works.
        self.assertEqual(add_partitions(c, "reinit", pid2, epoch2, topic, [0]), {0: kw.NONE})
        self.assertEqual(self.produce(topic, txn_batch(pid2, epoch2, 0, [b"fresh"]))[0], kw.NONE)
        # Describe it while open.
        w = Writer(True)
        _, body = c.request(DESCRIBE_TRANSACTIONS, 0, w.array([w.string("reinit"), w.string("nope")],
                                                              lambda x: x) + w.tags())
        r = kw.Reader(body, flexible=True)
        r.i32()
        states = r.array(lambda r: (r.i16(), r.string(), r.string(), r.i32(), r.i64(), r.i64(), r.i16(),
                                    r.array(lambda r: (r.string(), r.array(lambda r: r.i32()), r.tags())),
                                    r.tags()))
        self.assertEqual(states[0][:3], (kw.NONE, "reinit", "Ongoing"))
        self.assertEqual(states[0][5:7], (pid2, epoch2))
        self.assertEqual(states[0][7][0][:2], (topic, [0]))
        self.assertEqual(states[1][0], 105)  # TRANSACTIONAL_ID_NOT_FOUND
        _, body = c.request(LIST_TRANSACTIONS, 1, w.array([w.string("Ongoing"), w.string("Bogus")], lambda x: x)
                            + w.array([], i64) + i64(-1) + w.tags())
        r = kw.Reader(body, flexible=True)
        r.i32()
        self.assertEqual(r.i16(), kw.NONE)
        self.assertEqual(r.array(lambda r: r.string()), ["Bogus"])
        listed = r.array(lambda r: (r.string(), r.i64(), r.string(), r.tags()))
        self.assertIn(("reinit", pid2, "Ongoing"), [x[:3] for x in listed])
        _, body = c.request(DESCRIBE_PRODUCERS, 0, w.array([w.string(topic) + w.array([0], i32) + w.tags()],
                                                           lambda x: x) + w.tags())
        r = kw.Reader(body, flexible=True)
        r.i32()
        parts = r.array(lambda r: (r.string(), r.array(lambda r: (
            r.i32(), r.i16(), r.string(), r.array(lambda r: (r.i64(), r.i32(), r.i32(), r.i64(), r.i32(), r.i64(),
                                                          r.tags())), r.tags())), r.tags()))
        producers = parts[0][1][0][3]
        self.assertEqual([(p[0], p[1], p[5]) for p in producers], [(pid2, epoch2, 2)])
        self.assertEqual(end_txn(c, "reinit", pid2, epoch2, True), kw.NONE)


class TxnTimeoutTest(unittest.TestCase):
    """A transaction open past its transaction.timeout.ms is aborted by the coordinator's timer,
    with a bumped epoch that fences its producer; /metrics shows it open meanwhile."""

    def test_an_expired_transaction_is_aborted(self):
        with harness.RunnelServer(BINARY, name="txn-timeout") as srv:
            c = kw.Connection(srv.port)
            self.addCleanup(c.close)
            _, body = c.request(kw.CREATE_TOPICS, 4, kw.create_topics_request(4, [("expiring", 1, -1, {})]))
            self.assertEqual(kw.parse_create_topics(body, 4)["expiring"][0], kw.NONE)
            _, pid, epoch = init_producer_id(c, "expiring", timeout_ms=1500)
            self.assertEqual(add_partitions(c, "expiring", pid, epoch, "expiring", [0]), {0: kw.NONE})
            _, body = c.request(kw.PRODUCE, 9, kw.produce_request(9, "expiring", 0, txn_batch(pid, epoch, 0, [b"x"])))
            self.assertEqual(kw.parse_produce(body, 9)[0][2], kw.NONE)
            harness.wait_until(lambda: harness.metric(srv, "runnel_kafka_transactions_open") == 1, 30,
                               "the open transaction in /metrics")
            harness.wait_until(lambda: harness.metric(srv, "runnel_kafka_transaction_oldest_open_seconds") > 0, 30,
                               "the open transaction's age in /metrics")
            # No client action: the timer aborts it (a marker past the batch) within a few seconds.
            harness.wait_until(lambda: fetch(c, "expiring", 0, 1)[2] == 2, 60, "the expired transaction's abort")
            _, hw, lso, aborted, _ = fetch(c, "expiring", 0, 1)
            self.assertEqual((hw, lso, aborted), (2, 2, [(pid, 0)]))
            self.assertEqual(add_partitions(c, "expiring", pid, epoch, "expiring", [0]), {0: PRODUCER_FENCED})
            error, pid2, epoch2 = init_producer_id(c, "expiring")
            self.assertEqual((error, pid2, epoch2), (kw.NONE, pid, epoch + 2))
            harness.wait_until(lambda: harness.metric(srv, "runnel_kafka_transactions_open") == 0, 30,
                               "no open transaction in /metrics")
            self.assertEqual(harness.metric(srv, 'runnel_kafka_transactions_ended_total{outcome="timeout"}'), 1)


def main():
    global BINARY
    BINARY = harness.runnel_binary()
    harness.ServerCase.binary = BINARY
    harness.run_unittests("txn-wire")


if __name__ == "__main__":
    main()
