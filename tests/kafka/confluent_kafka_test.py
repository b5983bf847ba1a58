#!/usr/bin/python3
"""confluent-kafka-python (Debian python3-confluent-kafka, librdkafka) against `runnel serve`.

Creates a 6-partition topic with AdminClient (CreateTopics), produces 100,000 keyed records
with headers and explicit timestamps (acks=all), checks the watermarks (ListOffsets) and
consumes everything back from the beginning with assigned partitions (Fetch; no consumer
group: the server has no group coordinator yet) and verifies it. The producer is idempotent.
Then, for each codec (gzip, snappy, lz4, zstd), compressed batches round-trip too.

Run: /usr/bin/python3 confluent_kafka_test.py --runnel PATH
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import records  # noqa: E402
from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, KafkaError,  # noqa: E402
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "confluent-kafka-roundtrip"


def produce(bootstrap, ds):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "itest-confluent-kafka",
        # Idempotent: InitProducerId, then sequence numbers checked per partition.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 60000,
    })
    errors = []
    delivered = [0]
    partitions = set()

    def on_delivery(err, msg):
        if err is not None:
            errors.append((msg.value()[:30], err))
        else:
            delivered[0] += 1
            partitions.add(msg.partition())

    deadline = harness.Deadline(120, "producing with confluent-kafka")
    for i in range(ds.n):
        while True:
            try:
                producer.produce(TOPIC, key=ds.key(i), value=ds.value(i), headers=ds.headers(i),
                                 timestamp=ds.timestamp(i), on_delivery=on_delivery)
                break
            except BufferError:
                deadline.check(f"(local queue full at record {i})")
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(deadline.left())
    assert left == 0, f"{left} records still unacknowledged after flush"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    assert delivered[0] == ds.n, f"{delivered[0]} deliveries reported for {ds.n} records"
    return partitions


def consume(bootstrap, ds):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "client.id": "itest-confluent-kafka-consumer",
        # librdkafka wants a group id even for assign(); nothing is committed or joined.
        "group.id": "itest-unused-group",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 200,
        "enable.partition.eof": False,
    })
    tps = [TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(records.PARTITIONS)]
    watermarks = {}
    for tp in tps:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, tp.partition), timeout=10)
        assert low == 0, f"partition {tp.partition}: low watermark {low}"
        watermarks[tp.partition] = high
    assert sum(watermarks.values()) == ds.n, f"high watermarks {watermarks} add up to {sum(watermarks.values())}"
    consumer.assign(tps)
    got = []
    deadline = harness.Deadline(120, "consuming with confluent-kafka")
    while len(got) < ds.n:
        deadline.check(f"({len(got)} of {ds.n} records)")
        for m in consumer.consume(num_messages=10000, timeout=0.5):
            assert m.error() is None, f"consume error: {m.error()}"
            ts_type, ts = m.timestamp()
            assert ts_type == TIMESTAMP_CREATE_TIME, f"partition {m.partition()} offset {m.offset()}: timestamp type {ts_type}"
            got.append(records.Consumed(m.partition(), m.offset(), m.key(), m.value(), m.headers() or [], ts))
    extra = consumer.consume(num_messages=10, timeout=0.3)
    assert not [m for m in extra if m.error() is None or m.error().code() != KafkaError._PARTITION_EOF], \
        f"records past the end: {[(m.partition(), m.offset()) for m in extra]}"
    consumer.close()
    return got, watermarks


def compressed_round_trips(bootstrap):
    """Each codec's batches are accepted, CRC-checked, stored unchanged and read back."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    codecs = ["gzip", "snappy", "lz4", "zstd"]
    for _, f in admin.create_topics([NewTopic(f"compressed-{c}", 1, 1) for c in codecs]).items():
        f.result(timeout=30)
    for codec in codecs:
        topic = f"compressed-{codec}"
        producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 20,
                             "enable.idempotence": True})
        errors = []
        for i in range(2000):
            producer.produce(topic, key=f"k{i}", value=f"{codec}-value-{i}" * 4,
                             on_delivery=lambda err, msg: errors.append(err) if err else None)
        assert producer.flush(60) == 0 and not errors, f"{codec}: delivery errors {errors[:3]}"
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "itest-unused-group",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        values = []
        deadline = harness.Deadline(60, f"consuming {codec} batches")
        while len(values) < 2000:
            deadline.check(f"({len(values)} of 2000)")
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                assert m.error() is None, f"{codec}: {m.error()}"
                values.append(m.value().decode())
        consumer.close()
        assert values == [f"{codec}-value-{i}" * 4 for i in range(2000)], f"{codec}: values differ"
    return codecs


def main():
    binary = harness.runnel_binary()
    started = time.monotonic()
    ds = records.Dataset("confluent-kafka")
    with harness.RunnelServer(binary, name="confluent-kafka") as srv:
        admin = AdminClient({"bootstrap.servers": srv.bootstrap, "client.id": "itest-confluent-admin"})
        futures = admin.create_topics([NewTopic(TOPIC, num_partitions=records.PARTITIONS, replication_factor=1)],
                                      operation_timeout=10)
        futures[TOPIC].result(timeout=30)
        md = admin.list_topics(topic=TOPIC, timeout=10)
        assert len(md.topics[TOPIC].partitions) == records.PARTITIONS, f"metadata: {md.topics[TOPIC].partitions}"
        del admin  # closes its connection before the server stops

        t0 = time.monotonic()
        used = produce(srv.bootstrap, ds)
        t_produce = time.monotonic() - t0
        assert used == set(range(records.PARTITIONS)), f"producer used partitions {sorted(used)}"

        t0 = time.monotonic()
        got, watermarks = consume(srv.bootstrap, ds)
        t_consume = time.monotonic() - t0
        what = records.verify(got, ds)
        per_partition = {}
        for r in got:
            per_partition[r.partition] = per_partition.get(r.partition, 0) + 1
        assert watermarks == per_partition, f"high watermarks {watermarks} differ from records consumed {per_partition}"
        codecs = compressed_round_trips(srv.bootstrap)
        srv.assert_alive()
        for line in srv.warnings():
            print(f"server: {line}")
    print(f"confluent-kafka: {what}; produce {t_produce:.1f} s, consume {t_consume:.1f} s; "
          f"compressed round trips: {', '.join(codecs)}")
    harness.summary("confluent-kafka", 1, 0, seconds=time.monotonic() - started)


if __name__ == "__main__":
    harness.run_script("confluent-kafka", main)
