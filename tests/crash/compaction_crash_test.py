#!/usr/bin/python3
"""The log cleaner killed (SIGKILL) at each step of a cleaning: after writing the cleaned
segments, after recording the cleaner checkpoint, before renaming a cleaned segment into
place, and between that rename and the renames of its indexes. For each step a server with
RUNNEL_TEST_KILL_AT=<step> gets a compacted topic with small segments rolled by segment.ms and
20,000 acknowledged records over 100 keys, and dies when its cleaner gets there. Restarted on
the same data directory (without the variable), every record a reader finds from the
beginning is the one acknowledged at that offset, every key's latest value is there, nothing
is reported corrupt, and a later cleaning completes.

Run: /usr/bin/python3 compaction_crash_test.py RUNNEL_BINARY
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))

import harness  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "compacted"
RECORDS = 20_000
KEYS = 100
STEPS = ["cleaner.after_write", "cleaner.after_checkpoint", "cleaner.swap_before_log_rename",
         "cleaner.swap_after_log_rename"]


def produce(srv, sent, first=0, count=RECORDS):
    # A server that dies mid-way leaves records unacknowledged: they are simply not expected.
    p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True,
                  "message.timeout.ms": 10000})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            sent[msg.offset()] = (msg.key(), msg.value())

    for i in range(first, first + count):
        while True:
            try:
                p.produce(TOPIC, key=f"key-{i % KEYS}".encode(), value=f"value-{i}".encode(), on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(30)
    return left, errors


def read_all(srv):
    """Every record from the beginning to the high watermark: (offset, key, value)."""
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "itest-unused", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100, "enable.partition.eof": True})
    _, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=30)
    c.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    out = []
    deadline = harness.Deadline(60, "reading the topic back")
    try:
        while True:
            deadline.check(f"({len(out)} records read, high watermark {high})")
            for m in c.consume(1000, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        return out, high
                    raise AssertionError(m.error())
                out.append((m.offset(), m.key(), m.value()))
                if m.offset() + 1 >= high:
                    return out, high
    finally:
        c.close()


def check(srv, sent):
    """What a reader finds is what was produced: an acknowledged offset holds exactly what was
    acknowledged there, any other record is one the producer sent (written before the kill, its
    answer lost), and each key's newest record is at or after its last acknowledged offset.
    (Whether duplicates are gone depends on when the cleaner last ran; compaction_test checks
    that.)"""
    records, high = read_all(srv)
    latest = {}
    for off in sorted(sent):
        latest[sent[off][0]] = off
    seen = {}
    for off, key, value in records:
        if off in sent:
            assert sent[off] == (key, value), f"offset {off}: read {key}={value}, acknowledged {sent[off]}"
        else:
            i = int(value.decode().split("-")[1])
            assert key == f"key-{i % KEYS}".encode(), f"offset {off}: {key}={value} was never produced"
        seen[key] = max(off, seen.get(key, -1))
    for key, off in latest.items():
        assert key in seen, f"{key} is missing"
        assert seen[key] >= off, f"{key} read at {seen[key]}, acknowledged later at {off}"
    assert harness.metric(srv, "runnel_storage_corrupt_partitions_total") == 0
    return len(records)


def one_step(binary, step):
    tmp = tempfile.mkdtemp(prefix="runnel-compaction-crash-")
    data = os.path.join(tmp, "data")
    port = 0
    sent = {}
    try:
        os.environ["RUNNEL_TEST_KILL_AT"] = step
        srv = harness.RunnelServer(binary, data_dir=data, extra_args=["--log-cleaner-backoff-ms", "100"],
                                   name="compaction-crash")
        try:
            srv.start()
        finally:
            del os.environ["RUNNEL_TEST_KILL_AT"]
        port = srv.port
        try:
            admin = AdminClient({"bootstrap.servers": srv.bootstrap})
            admin.create_topics([NewTopic(TOPIC, 1, 1, config={
                "cleanup.policy": "compact", "segment.bytes": "65536", "segment.ms": "200",
                # After a kill between the checkpoint and the swap, the segments left as they
                # were count as clean: a low ratio lets the small second batch trigger a cleaning.
                "min.cleanable.dirty.ratio": "0.01"})])[TOPIC].result(30)
            produce(srv, sent)
            # The cleaner reaches the step once the segments roll; the process then kills itself.
            harness.wait_until(lambda: not srv.alive(), 60, f"the server to die at {step}", interval=0.05)
            code = srv.proc.wait(timeout=10)
            assert code == -9, f"the server exited with {code}, not SIGKILL, at {step}:\n{srv.log_tail()}"
        finally:
            srv.stop(check=False)

        with harness.RunnelServer(binary, data_dir=data, kafka_port=port,
                                  extra_args=["--log-cleaner-backoff-ms", "100"], name="compaction-crash") as srv:
            n = check(srv, sent)
            # A cleaning after the restart completes, and everything still reads the same.
            runs = harness.metric(srv, "runnel_log_cleaner_runs_total")
            produce(srv, sent, RECORDS, 2000)
            harness.wait_until(lambda: harness.metric(srv, "runnel_log_cleaner_runs_total") > runs, 60,
                               "a cleaning after the restart", interval=0.1)
            check(srv, sent)
            assert harness.metric(srv, "runnel_log_cleaner_errors_total") == 0
            print(f"{step}: killed, restarted, {n} records read back unchanged", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    binary = sys.argv[1]
    for step in STEPS:
        one_step(binary, step)
    print(f"compaction crash: {len(STEPS)} passed, 0 failed", flush=True)


if __name__ == "__main__":
    main()
