#!/usr/bin/python3
"""The Kafka listener under connection pressure stays cheap and recovers.

- Out of file descriptors (the server runs under RLIMIT_NOFILE 256 with 400 connections held
  open): accepting backs off instead of spinning, the log grows by a few lines a second, and
  once the connections close a new client is answered.
- `--kafka-max-connections`: connections past the cap are closed on accept and counted in
  /metrics; the ones within it keep working.
- `--kafka-connections-max-idle-ms`: a connection with nothing in flight is closed after it,
  a long-polling fetch is not.

Every wait is a condition with a deadline. The CPU and log checks measure a fixed window of
the server's own CPU seconds (/proc/PID/stat) and log lines, with bounds generous enough for
a loaded machine yet far below what a spinning accept loop costs (a whole core, thousands of
lines a second).

Run: /usr/bin/python3 connection_limits_test.py --runnel PATH [unittest options]
"""

import os
import resource
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402

BINARY = None


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line; [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answers_api_versions(port):
    """True when a new connection gets its ApiVersions answered."""
    try:
        with kw.Connection(port, timeout=5) as c:
            _, body = c.request(kw.API_VERSIONS, 0, b"")
            return kw.parse_api_versions(body, 0)[0] == kw.NONE
    except (OSError, kw.Closed):
        return False


def log_lines(srv):
    return len(srv.log().splitlines())


class ConnectionLimitsTest(unittest.TestCase):
    def start(self, name, *args, preexec_fn=None):
        srv = harness.RunnelServer(BINARY, name=name, extra_args=args, preexec_fn=preexec_fn).start()
        self.addCleanup(srv.stop, check=True)
        return srv

    def test_out_of_descriptors_backs_off_and_recovers(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1024:  # this process holds the 400 client sockets
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))

        def limit_descriptors():
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

        srv = self.start("fd-limit", preexec_fn=limit_descriptors)
        socks = []
        try:
            for _ in range(400):
                socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
            srv.wait_for_log(r"accept failed: Too many open files", timeout=30)
            window = 3.0
            cpu_before, lines_before = cpu_seconds(srv.proc.pid), log_lines(srv)
            started = time.monotonic()
            time.sleep(window)  # a measurement window, not synchronisation
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(srv.proc.pid) - cpu_before
            lines = log_lines(srv) - lines_before
            print(f"out of descriptors: {cpu:.3f} CPU s and {lines} log lines in {elapsed:.1f} s",
                  file=sys.stderr)
            self.assertLess(cpu, 0.1 * elapsed, "the server must not spin on failing accepts")
            self.assertLessEqual(lines, 3 * elapsed + 3, "repeated accept failures must be rate-limited:\n"
                                 + srv.log_tail(10))
        finally:
            for s in socks:
                s.close()
        harness.wait_until(lambda: answers_api_versions(srv.port), 30,
                           "a new client answered once the idle connections closed")
        self.assertGreater(harness.metric(srv, "runnel_kafka_accept_errors_total"), 0)

    def test_connections_past_the_cap_are_closed_and_counted(self):
        cap = 8
        srv = self.start("max-connections", "--kafka-max-connections", str(cap))
        conns = [kw.Connection(srv.port, timeout=10) for _ in range(20)]
        answered, closed = [], []
        try:
            for c in conns:
                try:
                    _, body = c.request(kw.API_VERSIONS, 0, b"")
                    self.assertEqual(kw.parse_api_versions(body, 0)[0], kw.NONE)
                    answered.append(c)
                except (kw.Closed, OSError):
                    closed.append(c)
            self.assertEqual(len(answered), cap, f"{len(answered)} answered, {len(closed)} closed")
            self.assertEqual(harness.metric(srv, "runnel_kafka_connections_refused_total"), 20 - cap)
            self.assertEqual(harness.metric(srv, "runnel_kafka_connections"), cap)
            srv.wait_for_log(r"closing a new connection: 8 Kafka connections are open")
            # The connections within the cap keep working.
            for c in answered:
                _, body = c.request(kw.API_VERSIONS, 0, b"")
                self.assertEqual(kw.parse_api_versions(body, 0)[0], kw.NONE)
        finally:
            for c in conns:
                c.close()
        harness.wait_until(lambda: harness.metric(srv, "runnel_kafka_connections") == 0, 20, "the closed connections to go")
        self.assertTrue(answers_api_versions(srv.port))

    def test_idle_connections_close_but_long_polls_do_not(self):
        srv = self.start("idle", "--kafka-connections-max-idle-ms", "300", "--auto-create-topics", "true")
        # Idle after one answer: closed.
        c = kw.Connection(srv.port, timeout=10)
        self.addCleanup(c.close)
        _, body = c.request(kw.API_VERSIONS, 0, b"")
        self.assertEqual(kw.parse_api_versions(body, 0)[0], kw.NONE)
        c.expect_closed(timeout=20)
        # A fetch long-polling for 3 s (ten idle periods) on an empty partition is answered,
        # not cut off; once answered, the connection is idle and closes.
        topic = "idle-long-poll"
        with kw.Connection(srv.port, timeout=20) as setup:
            setup.request(kw.METADATA, 4, kw.metadata_request(4, [topic], True))
        harness.wait_until(lambda: topic in self.metadata_topics(srv), 20, f"topic {topic}")
        f = kw.Connection(srv.port, timeout=20)
        self.addCleanup(f.close)
        started = time.monotonic()
        _, body = f.request(kw.FETCH, 4, kw.fetch_request(4, topic, 0, 0, max_wait_ms=3000))
        waited = time.monotonic() - started
        self.assertGreater(len(body), 4)
        # A lower bound only (a loaded machine makes it longer): the poll outlived the idle time.
        self.assertGreater(waited, 0.6, "the fetch should have long-polled")
        print(f"long poll answered after {waited:.2f} s with idle timeout 0.3 s", file=sys.stderr)
        f.expect_closed(timeout=20)
        self.assertGreaterEqual(harness.metric(srv, "runnel_kafka_connections_idle_closed_total"), 2)

    @staticmethod
    def metadata_topics(srv):
        with kw.Connection(srv.port, timeout=10) as c:
            _, body = c.request(kw.METADATA, 4, kw.metadata_request(4, None, False))
            return kw.parse_metadata(body, 4)[0]


def main():
    global BINARY
    BINARY = harness.runnel_binary()
    harness.run_unittests("connection-limits")


if __name__ == "__main__":
    main()
