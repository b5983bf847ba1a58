#!/usr/bin/python3
"""Requests pipelined on one connection: `runnel serve` answers them in order and applies them
in order. On one raw connection (kafka_wire.py) the test sends 300 acks=all Produce requests
back to back before reading any answer, then 300 OffsetCommit requests for one partition with
rising offsets, the same way: every answer must come back in request order without error,
the produced batches must have consecutive offsets in request order, and OffsetFetch must
return the last committed offset — a commit overtaken by an earlier one would show here.

Run: /usr/bin/python3 pipeline_test.py --runnel PATH
"""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from kafka import KafkaAdminClient  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

N = 300
TOPIC = "pipelined"
PRODUCE, OFFSET_COMMIT, OFFSET_FETCH = 0, 8, 9


def offset_commit_v2(group, topic, partition, offset):
    return (kw.string(group) + kw.i32(-1) + kw.string("") + kw.i64(-1)
            + kw.array([topic], lambda t: kw.string(t) + kw.array(
                [(partition, offset)], lambda p: kw.i32(p[0]) + kw.i64(p[1]) + kw.string("m"))))


def offset_fetch_v1(group, topic, partition):
    return kw.string(group) + kw.array([topic], lambda t: kw.string(t) + kw.array([partition], kw.i32))


def read_answers(conn, sent):
    """Reads one answer per sent correlation id, checking the order; returns the bodies."""
    bodies = []
    for want in sent:
        frame = conn.recv_frame()
        got = struct.unpack(">i", frame[:4])[0]
        assert got == want, f"answer for correlation {got} where {want} was due"
        bodies.append(frame[4:])
    return bodies


def main():
    binary = harness.runnel_binary()
    with harness.RunnelServer(binary, name="pipeline", shards=2) as srv:
        admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="itest-pipeline-admin")
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
        admin.close()
        with kw.Connection(srv.port, timeout=60, client_id="itest-pipeline") as conn:
            # Produce: v3 answers [topics [name, [partition, error, base_offset, log_append_time]], throttle].
            ts = int(time.time() * 1000)
            sent = [conn.send_request(PRODUCE, 3, kw.produce_request(3, TOPIC, 0, kw.record_batch(
                [(b"k", b"v%d" % i, [], ts + i)]), acks=-1)) for i in range(N)]
            bases = []
            for body in read_answers(conn, sent):
                [(_, _, error, base, _)] = kw.parse_produce(body, 3)
                assert error == 0, f"produce error {error}"
                bases.append(base)
            assert bases == list(range(bases[0], bases[0] + N)), f"offsets out of order: {bases[:10]}…"

            sent = [conn.send_request(OFFSET_COMMIT, 2, offset_commit_v2("pipeline-group", TOPIC, 0, i + 1))
                    for i in range(N)]
            for body in read_answers(conn, sent):
                r = kw.Reader(body)
                assert r.i32() == 1
                r.string()
                assert r.i32() == 1
                assert r.i32() == 0
                error = r.i16()
                assert error == 0, f"commit error {error}"
            _, body = conn.request(OFFSET_FETCH, 1, offset_fetch_v1("pipeline-group", TOPIC, 0))
            r = kw.Reader(body)
            assert r.i32() == 1
            r.string()
            assert r.i32() == 1
            assert r.i32() == 0
            committed = r.i64()
            assert committed == N, f"committed offset {committed}, last commit was {N}"
    print(f"pipeline: {N} produces answered in order at offsets {bases[0]}..{bases[-1]}; "
          f"{N} commits in order, last one stored")


if __name__ == "__main__":
    main()
