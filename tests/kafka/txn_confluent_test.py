#!/usr/bin/python3
"""Kafka transactions with confluent-kafka-python (Debian python3-confluent-kafka, librdkafka)
against `runnel serve`:

- A transactional producer commits: a read_committed consumer sees its records. It aborts:
  read_committed sees none of them, read_uncommitted sees them all.
- A zombie is fenced: a second producer with the same transactional.id initialises, and the
  first one's next transaction fails (fenced) without any of its records becoming visible.
- `runnel txn list|describe` show the transactional id and its state.
- Consume-transform-produce with send_offsets_to_transaction copies 20,000 records from one
  topic to another while the server is SIGKILLed three times and restarted on the same data
  directory and port; a read_committed reader of the output then sees every input record
  exactly once.

Run: /usr/bin/python3 txn_confluent_test.py --runnel PATH
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

BINARY = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_topics(bootstrap, names, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        f.result(30)


def txn_producer(bootstrap, txn_id, **extra):
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 60000,
            "linger.ms": 5, "message.timeout.ms": 60000}
    conf.update(extra)
    return Producer(conf)


class TxnConfluentTest(unittest.TestCase):
    def test_commit_abort_and_fencing(self):
        with harness.RunnelServer(BINARY, name="txn-confluent") as srv:
            create_topics(srv.bootstrap, ["txn-basic"], 3)
            p = txn_producer(srv.bootstrap, "basic")
            p.init_transactions(30)
            p.begin_transaction()
            for i in range(300):
                p.produce("txn-basic", key=b"k%d" % (i % 7), value=b"committed-%d" % i)
            p.commit_transaction(30)
            p.begin_transaction()
            for i in range(200):
                p.produce("txn-basic", key=b"k%d" % (i % 7), value=b"aborted-%d" % i)
            p.flush(30)
            p.abort_transaction(30)
            committed = harness.read_to_end(srv.bootstrap, "txn-basic", 3, committed=True)
            values = sorted(v for _, _, v in committed)
            self.assertEqual(values, sorted(b"committed-%d" % i for i in range(300)))
            everything = harness.read_to_end(srv.bootstrap, "txn-basic", 3, committed=False)
            self.assertEqual(len(everything), 500)
            self.assertEqual(sum(1 for _, _, v in everything if v.startswith(b"aborted-")), 200)

            # A second producer with the same transactional.id fences the first.
            zombie = p
            fresh = txn_producer(srv.bootstrap, "basic")
            fresh.init_transactions(30)
            zombie.begin_transaction()
            zombie.produce("txn-basic", value=b"zombie")
            with self.assertRaises(KafkaException) as caught:
                zombie.commit_transaction(30)
            err = caught.exception.args[0]
            self.assertTrue(err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                                          KafkaError.INVALID_PRODUCER_EPOCH), err)
            fresh.begin_transaction()
            fresh.produce("txn-basic", value=b"fresh")
            fresh.commit_transaction(30)
            values = [v for _, _, v in harness.read_to_end(srv.bootstrap, "txn-basic", 3)]
            self.assertIn(b"fresh", values)
            self.assertNotIn(b"zombie", values)
            self.assertEqual(harness.metric(srv, "runnel_kafka_transactions_open"), 0)
            # `runnel txn` shows what the coordinator knows.
            cli = [BINARY, "txn"]
            listed = subprocess.run(cli + ["list", "--brokers", srv.bootstrap, "--format", "json"],
                                    capture_output=True, text=True, timeout=60)
            self.assertEqual(listed.returncode, 0, listed.stderr)
            self.assertIn({"transactional_id": "basic", "producer_id": json.loads(listed.stdout)[0]["producer_id"],
                           "state": "CompleteCommit"}, json.loads(listed.stdout))
            described = subprocess.run(cli + ["describe", "basic", "--brokers", srv.bootstrap, "--format", "json"],
                                       capture_output=True, text=True, timeout=60)
            self.assertEqual(described.returncode, 0, described.stderr)
            d = json.loads(described.stdout)
            self.assertEqual((d["state"], d["timeout_ms"], d["partitions"]), ("CompleteCommit", 60000, []))
            missing = subprocess.run(cli + ["describe", "nope", "--brokers", srv.bootstrap],
                                     capture_output=True, text=True, timeout=60)
            self.assertEqual(missing.returncode, 1)
            self.assertIn("not found", missing.stderr)

    def test_consume_transform_produce_across_kills(self):
        # 200,000 records across 5 kills (about 40 s on a loaded 2-core machine); smaller runs
        # for debugging with RUNNEL_TXN_CTP_RECORDS and RUNNEL_TXN_CTP_KILLS.
        n = int(os.environ.get("RUNNEL_TXN_CTP_RECORDS", "200000"))
        kills = int(os.environ.get("RUNNEL_TXN_CTP_KILLS", "5"))
        with tempfile.TemporaryDirectory(prefix="txn-ctp-") as tmp:
            data, port = os.path.join(tmp, "data"), free_port()
            extra = ["--group-initial-rebalance-delay-ms", "0"]

            def server():
                return harness.RunnelServer(BINARY, name="txn-ctp", data_dir=data, kafka_port=port,
                                            extra_args=extra).start()

            srv = server()
            holder = {"srv": srv}
            try:
                create_topics(srv.bootstrap, ["ctp-in", "ctp-out"], 3)
                inp = Producer({"bootstrap.servers": srv.bootstrap, "enable.idempotence": True, "linger.ms": 5})
                for i in range(n):
                    while True:
                        try:
                            inp.produce("ctp-in", key=b"%d" % i, value=b"%d" % i)
                            break
                        except BufferError:
                            inp.poll(0.05)
                self.assertEqual(inp.flush(60), 0)
                copied = [0]
                killed = [0]
                stop = threading.Event()

                def killer():
                    # SIGKILL whenever another quarter of the input has been committed.
                    while killed[0] < kills and not stop.is_set():
                        if copied[0] >= (killed[0] + 1) * n // (kills + 1):
                            s = holder["srv"]
                            s.proc.send_signal(signal.SIGKILL)
                            s.proc.wait(timeout=30)
                            s._reader.join(timeout=10)
                            s._close_stderr()
                            s.proc = None
                            holder["srv"] = server()
                            killed[0] += 1
                        stop.wait(0.01)

                thread = threading.Thread(target=killer, daemon=True)
                thread.start()
                deadline = harness.Deadline(max(240, n // 250), "copying ctp-in to ctp-out")
                bootstrap = f"127.0.0.1:{port}"
                consumed = 0
                while True:
                    deadline.check(f"({copied[0]} copied, {killed[0]} kills)")
                    producer = txn_producer(bootstrap, "ctp-copier")
                    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ctp",
                                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                         "isolation.level": "read_committed"})
                    try:
                        producer.init_transactions(60)
                        consumer.assign([TopicPartition("ctp-in", p) for p in range(3)])
                        # The committed offsets decide where copying resumes.
                        committed = consumer.committed([TopicPartition("ctp-in", p) for p in range(3)], 30)
                        consumed = sum(max(tp.offset, 0) for tp in committed)
                        copied[0] = consumed
                        idle = 0
                        while consumed < n:
                            deadline.check(f"({copied[0]} copied, {killed[0]} kills)")
                            msgs = consumer.consume(500, 0.5)
                            msgs = [m for m in msgs if not m.error()]
                            if not msgs:
                                idle += 1
                                continue
                            producer.begin_transaction()
                            for m in msgs:
                                producer.produce("ctp-out", key=m.key(), value=m.value())
                            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                                 consumer.consumer_group_metadata(), 30)
                            producer.commit_transaction(30)
                            consumed += len(msgs)
                            copied[0] = consumed
                        break
                    except KafkaException as e:
                        # The server went away mid-transaction: start over from the committed
                        # offsets with a new producer (its init aborts what was open).
                        print(f"copier restarts after: {e}", flush=True)
                    finally:
                        consumer.close()
                stop.set()
                thread.join(timeout=120)
                self.assertEqual(killed[0], kills, "the server was killed while copying")
                out = harness.read_to_end(bootstrap, "ctp-out", 3, committed=True, timeout=60)
                counts = Counter(v for _, _, v in out)
                missing = [i for i in range(n) if counts[b"%d" % i] == 0]
                twice = [v for v, c in counts.items() if c > 1]
                self.assertEqual(missing, [], f"{len(missing)} input records never copied")
                self.assertEqual(twice, [], f"{len(twice)} records copied more than once")
                self.assertEqual(len(out), n)
                print(f"consume-transform-produce: {n} records exactly once across {kills} SIGKILLs", flush=True)
            finally:
                s = holder["srv"]
                if s.proc is not None:
                    s.stop(check=False)


def main():
    global BINARY
    BINARY = harness.runnel_binary()
    harness.run_unittests("txn-confluent")


if __name__ == "__main__":
    main()
