#!/usr/bin/python3
"""kafka-python (Debian python3-kafka) against `runnel serve`.

Creates a 6-partition topic with KafkaAdminClient (CreateTopics), produces 100,000 keyed
records with headers and explicit timestamps (acks=all), reads the end offsets
(ListOffsets), consumes everything back from the beginning with an assigned consumer
(Fetch; no consumer group, the server has no group coordinator yet) and verifies it.

Run: /usr/bin/python3 kafka_python_test.py --runnel PATH
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import records  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

TOPIC = "kafka-python-roundtrip"


def produce(bootstrap, ds):
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="itest-kafka-python", acks="all",
                             linger_ms=5, batch_size=64 * 1024, retries=0, request_timeout_ms=30000)
    failures = []
    futures = []
    for i in range(ds.n):
        futures.append(producer.send(TOPIC, key=ds.key(i), value=ds.value(i), headers=ds.headers(i),
                                     timestamp_ms=ds.timestamp(i)))
    producer.flush(timeout=120)
    for i, f in enumerate(futures):
        assert f.is_done, f"record {i}: not acknowledged after flush"
        if f.failed():
            failures.append((i, f.exception))
    producer.close(timeout=10)
    assert not failures, f"{len(failures)} produce failures, first: record {failures[0][0]}: {failures[0][1]!r}"
    partitions_used = {f.value.partition for f in futures}
    return partitions_used


def consume(bootstrap, ds, expected_total):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="itest-kafka-python-consumer",
                             group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                             fetch_max_wait_ms=200, max_partition_fetch_bytes=1024 * 1024)
    tps = [TopicPartition(TOPIC, p) for p in range(records.PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    assert sum(ends.values()) == expected_total, f"end offsets {ends} add up to {sum(ends.values())}, not {expected_total}"
    got = []
    deadline = harness.Deadline(120, "consuming with kafka-python")
    while len(got) < expected_total:
        deadline.check(f"({len(got)} of {expected_total} records)")
        batch = consumer.poll(timeout_ms=500, max_records=10000)
        for _tp, msgs in batch.items():
            for m in msgs:
                assert m.timestamp_type == 0, f"partition {m.partition} offset {m.offset}: timestamp type {m.timestamp_type}, not CreateTime"
                got.append(records.Consumed(m.partition, m.offset, m.key, m.value, list(m.headers), m.timestamp))
    # Nothing beyond the produced records: one more poll returns nothing.
    extra = consumer.poll(timeout_ms=300)
    assert not any(extra.values()), f"records past the end: {extra}"
    consumer.close()
    return got, ends


def main():
    binary = harness.runnel_binary()
    started = time.monotonic()
    ds = records.Dataset("kafka-python")
    with harness.RunnelServer(binary, name="kafka-python") as srv:
        admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="itest-kafka-python-admin")
        result = admin.create_topics([NewTopic(TOPIC, num_partitions=records.PARTITIONS, replication_factor=1)])
        for topic, code, *_ in result.topic_errors:
            assert code == 0, f"CreateTopics {topic}: error {code}"
        admin.close()

        t0 = time.monotonic()
        used = produce(srv.bootstrap, ds)
        t_produce = time.monotonic() - t0
        assert used == set(range(records.PARTITIONS)), f"producer used partitions {sorted(used)}"

        t0 = time.monotonic()
        got, ends = consume(srv.bootstrap, ds, ds.n)
        t_consume = time.monotonic() - t0
        what = records.verify(got, ds)
        counts = {tp.partition: n for tp, n in ends.items()}
        per_partition = {}
        for r in got:
            per_partition[r.partition] = per_partition.get(r.partition, 0) + 1
        assert counts == per_partition, f"end offsets {counts} differ from records consumed {per_partition}"
        srv.assert_alive()
    print(f"kafka-python: {what}; produce {t_produce:.1f} s, consume {t_consume:.1f} s")
    harness.summary("kafka-python", 1, 0, seconds=time.monotonic() - started)


if __name__ == "__main__":
    harness.run_script("kafka-python", main)
