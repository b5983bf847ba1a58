#!/usr/bin/python3
"""An idempotent acks=all producer (confluent-kafka) sends continuously while `runnel serve`
is killed with SIGKILL at random moments and restarted on the same data directory and port.
Afterwards every acknowledged record is present exactly once, in order, at the offset its
acknowledgement named, and nothing else is visible.

usage: kafka_crash_test.py RUNNEL_BINARY
"""
import random
import shutil
import sys
import tempfile
import threading
import time

from crash_server import Server, free_port
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

KILLS = 6
PARTITIONS = 3
TOPIC = "crash"


def main():
    binary = sys.argv[1]
    data = tempfile.mkdtemp(prefix="runnel-kafka-crash-")
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    server = Server(binary, data, port)
    try:
        server.wait_ready()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for _, f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).items():
            f.result(30)

        acked = {}        # value -> (partition, offset)
        failures = []
        lock = threading.Lock()

        def on_delivery(err, msg):
            with lock:
                if err is not None:
                    failures.append(err)
                else:
                    acked[msg.value().decode()] = (msg.partition(), msg.offset())

        producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 120000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
            "retry.backoff.ms": 20,
        })
        rng = random.Random(7)
        sent = 0
        kills = 0
        next_kill = time.monotonic() + rng.uniform(0.3, 1.2)
        while kills < KILLS or sent < 30000:
            for _ in range(200):
                value = str(sent)
                try:
                    producer.produce(TOPIC, key=value, value=value, partition=sent % PARTITIONS,
                                     on_delivery=on_delivery)
                except BufferError:
                    # The client's own queue is full while the server restarts: wait for room.
                    producer.poll(0.05)
                    continue
                sent += 1
            producer.poll(0.001)
            if kills < KILLS and time.monotonic() >= next_kill:
                server.kill()
                kills += 1
                server = Server(binary, data, port)
                server.wait_ready()
                next_kill = time.monotonic() + rng.uniform(0.3, 1.2)
        remaining = producer.flush(120)
        assert remaining == 0, f"{remaining} records never acknowledged"
        fatal = [e for e in failures if e.fatal()]
        assert not fatal, f"fatal producer errors: {fatal[:3]}"
        assert not failures, f"{len(failures)} delivery failures, first: {failures[:3]}"
        assert len(acked) == sent, f"{sent} sent but {len(acked)} acknowledged"

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-check",
                             "enable.auto.commit": False, "enable.partition.eof": True})
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        seen = {}
        eof = set()
        deadline = time.monotonic() + 120
        while len(eof) < PARTITIONS and time.monotonic() < deadline:
            m = consumer.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise AssertionError(f"consume error: {m.error()}")
            v = m.value().decode()
            assert v not in seen, f"record {v} is visible twice: {seen[v]} and {(m.partition(), m.offset())}"
            seen[v] = (m.partition(), m.offset())
        consumer.close()
        assert len(eof) == PARTITIONS, "did not reach the end of every partition"
        missing = [v for v in acked if v not in seen]
        assert not missing, f"{len(missing)} acknowledged records missing, e.g. {missing[:5]}"
        extra = [v for v in seen if v not in acked]
        assert not extra, f"{len(extra)} records visible that were never acknowledged, e.g. {extra[:5]}"
        for v, where in acked.items():
            assert seen[v] == where, f"record {v} acknowledged at {where} but found at {seen[v]}"
        for p in range(PARTITIONS):
            in_offset_order = [int(v) for v, (part, off) in sorted(seen.items(), key=lambda kv: kv[1]) if part == p]
            assert in_offset_order == sorted(in_offset_order), f"partition {p} is out of order"
        assert server.stop() == 0
        print(f"kafka crash test: {KILLS} SIGKILLs, {sent} records acknowledged, each present exactly once and in order")
        print("1 passed, 0 failed")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
