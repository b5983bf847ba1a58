#!/usr/bin/python3
"""What a Kafka connection gets when the server stops (SIGTERM), with raw requests
(kafka_wire.py):

- A Fetch long-polling for data that will not come (max_wait_ms 20000, min_bytes 1 MiB) when
  SIGTERM arrives is answered early, with no records, before its connection closes: the
  server gives connections 5 s to write their answers, so an answer at all means the poll
  was cut short.
- An OffsetCommit sent just before SIGTERM is answered before its connection closes, and the
  offset it stored is there after a restart.
- The server exits 0 and logs "stopped cleanly".

Run: /usr/bin/python3 shutdown_test.py --runnel PATH
"""

import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from kafka_wire import i32, i64  # noqa: E402

BINARY = None
OFFSET_COMMIT, OFFSET_FETCH = 8, 9
TOPIC, GROUP = "quiet", "drain-group"


def offset_commit_v2(group, topic, partition, offset):
    part = i32(partition) + i64(offset) + kw.string("")
    return (kw.string(group) + i32(-1) + kw.string("") + i64(-1)
            + kw.array([kw.string(topic) + kw.array([part], lambda p: p)], lambda t: t))


def parse_offset_commit_v2(body):
    r = kw.Reader(body)
    out = []
    r.array(lambda r: (r.string(), r.array(lambda r: out.append((r.i32(), r.i16())))))
    return out


def offset_fetch_v1(group, topic, partition):
    return kw.string(group) + kw.array([kw.string(topic) + kw.array([i32(partition)], lambda p: p)],
                                       lambda t: t)


def parse_offset_fetch_v1(body):
    r = kw.Reader(body)
    out = []
    r.array(lambda r: (r.string(), r.array(lambda r: out.append((r.i32(), r.i64(), r.string(), r.i16())))))
    return out


class ShutdownTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="runnel-shutdown-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data_dir = os.path.join(self.tmp, "data")

    def server(self):
        return harness.RunnelServer(BINARY, name="shutdown", data_dir=self.data_dir)

    def test_requests_in_flight_are_answered_before_connections_close(self):
        srv = self.server().start()
        passed = False
        try:
            with kw.Connection(srv.port) as c:
                _, body = c.request(kw.CREATE_TOPICS, 4, kw.create_topics_request(4, [(TOPIC, 1, -1, {})]))
                self.assertEqual(kw.parse_create_topics(body, 4)[TOPIC][0], kw.NONE)
                batch = kw.record_batch([(None, f"v{i}".encode(), [], 1_700_000_000_000) for i in range(3)])
                _, body = c.request(kw.PRODUCE, 9, kw.produce_request(9, TOPIC, 0, batch))
                self.assertEqual(kw.parse_produce(body, 9)[0][2], kw.NONE)

            poller = kw.Connection(srv.port, timeout=30)
            committer = kw.Connection(srv.port, timeout=30)
            self.addCleanup(poller.close)
            self.addCleanup(committer.close)
            # A long poll at the end of the log: nothing will arrive for it.
            before = harness.metric(srv, "runnel_kafka_requests_in_flight")
            poll_id = poller.send_request(kw.FETCH, 4, kw.fetch_request(4, TOPIC, 0, 3, max_wait_ms=20000,
                                                                        min_bytes=1 << 20))
            harness.wait_until(lambda: harness.metric(srv, "runnel_kafka_requests_in_flight") >= before + 1, 20,
                               "the long poll to be in flight")
            commit_id = committer.send_request(OFFSET_COMMIT, 2, offset_commit_v2(GROUP, TOPIC, 0, 3))
            signalled = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)

            frame = poller.recv_frame()
            answered_after = time.monotonic() - signalled
            r = kw.Reader(frame)
            self.assertEqual(r.i32(), poll_id)
            self.assertEqual(kw.parse_fetch(frame[r.pos:], 4), [(0, kw.NONE, 3, b"")])
            poller.expect_closed(timeout=30)

            frame = committer.recv_frame()
            r = kw.Reader(frame)
            self.assertEqual(r.i32(), commit_id)
            self.assertEqual(parse_offset_commit_v2(frame[r.pos:]), [(0, kw.NONE)])
            committer.expect_closed(timeout=30)

            code = srv.proc.wait(timeout=60)
            self.assertEqual(code, 0, srv.log_tail())
            self.assertLess(answered_after, 15)
            print(f"long poll answered {answered_after:.3f} s after SIGTERM", flush=True)
            passed = True
        finally:
            srv.stop(check=passed)

        with self.server() as srv, kw.Connection(srv.port) as c:
            _, body = c.request(OFFSET_FETCH, 1, offset_fetch_v1(GROUP, TOPIC, 0))
            self.assertEqual(parse_offset_fetch_v1(body), [(0, 3, "", kw.NONE)])


def main():
    global BINARY
    BINARY = harness.runnel_binary()
    harness.run_unittests("shutdown")


if __name__ == "__main__":
    main()
