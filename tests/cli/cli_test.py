#!/usr/bin/python3
"""Integration test of the Kafka client commands of `runnel` (topic, produce, consume).

Starts a real `runnel serve` on 127.0.0.1 with a random port (read from its log line
"Kafka listener on 127.0.0.1:PORT") and drives it with the `runnel` client commands.
Every wait has a deadline and a condition; nothing waits by sleeping.

Usage: cli_test.py PATH_TO_RUNNEL
"""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

RUNNEL = sys.argv[1] if len(sys.argv) > 1 else "build/release/src/app/runnel"
DEADLINE_S = 60


class line_reader:
    """Reads the lines of a child's pipe on a thread, so waits can have deadlines."""

    def __init__(self, pipe):
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._drain, args=(pipe,), daemon=True).start()

    def _drain(self, pipe):
        for line in pipe:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def next_line(self, deadline):
        """The next line, or None at end of file; fails the test at the deadline."""
        left = deadline - time.monotonic()
        assert left > 0, "deadline passed; read so far:\n" + "".join(self.lines)
        try:
            return self._queue.get(timeout=left)
        except queue.Empty:
            raise AssertionError("no line before the deadline; read so far:\n" + "".join(self.lines))


class server:
    """A `runnel serve` child on a random loopback port."""

    def __init__(self, data_dir):
        self.proc = subprocess.Popen(
            [RUNNEL, "serve", "--data-dir", data_dir, "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--shards", "2"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = line_reader(self.proc.stderr)

    def wait_for_port(self):
        deadline = time.monotonic() + DEADLINE_S
        while True:
            line = self.log.next_line(deadline)
            assert line is not None, "server exited before listening:\n" + "".join(self.log.lines)
            m = re.search(r"Kafka listener on 127\.0\.0\.1:(\d+)", line)
            if m:
                return int(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop on SIGTERM:\n" + "".join(self.log.lines))
            assert code == 0, f"server exited with {code}:\n" + "".join(self.log.lines)


def run(*args, stdin=None, env_brokers=None, timeout=DEADLINE_S):
    """Runs `runnel ARGS`; returns (exit code, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("RUNNEL_BROKERS", None)
    if env_brokers:
        env["RUNNEL_BROKERS"] = env_brokers
    p = subprocess.run([RUNNEL, *args], input=stdin, capture_output=True, text=True, errors="replace", env=env,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line]


def main():
    with tempfile.TemporaryDirectory(prefix="runnel-cli-test-") as data_dir:
        srv = server(data_dir)
        try:
            port = srv.wait_for_port()
            tests(f"127.0.0.1:{port}")
        finally:
            srv.stop()
    print("cli_test: all passed")


def tests(brokers):
    b = ["--brokers", brokers]

    def ok(*args, stdin=None):
        code, out, err = run(*args, *b, stdin=stdin)
        assert code == 0, f"runnel {' '.join(args)} -> {code}\nstdout: {out}\nstderr: {err}"
        return out, err

    def fails(expected_code, *args, stdin=None, message=None, brokers_args=b):
        code, out, err = run(*args, *brokers_args, stdin=stdin)
        assert code == expected_code, f"runnel {' '.join(args)} -> {code}, expected {expected_code}\n{out}\n{err}"
        if message:
            assert message in err, f"runnel {' '.join(args)}: {message!r} not in stderr: {err}"
        return out, err

    # --- topic create / list / describe -------------------------------------------------
    _, err = ok("topic", "create", "events", "--partitions", "3", "--config", "retention.ms=86400000")
    assert "created topic 'events'" in err, err
    fails(1, "topic", "create", "events", message="already exists")
    ok("topic", "create", "events", "--if-not-exists")
    fails(1, "topic", "create", "replicated", "--replication-factor", "3", message="INVALID_REPLICATION_FACTOR")
    ok("topic", "create", "single", "--partitions", "1")
    ok("topic", "create", "--config", "segment.ms=7200000", "--config", "retention.bytes=1000000", "ordered")
    configs = json.loads(ok("topic", "describe", "ordered", "--format", "json")[0])["configs"]
    assert configs["segment.ms"]["value"] == "7200000" and configs["retention.bytes"]["value"] == "1000000", configs
    ok("topic", "delete", "ordered")

    out, _ = ok("topic", "list")
    assert out.splitlines() == ["events", "single"], out
    listed = json.loads(ok("topic", "list", "--format", "json")[0])
    assert {"name": "events", "partitions": 3} in listed, listed

    # The broker list can come from the environment instead of --brokers.
    code, out, err = run("topic", "list", env_brokers=brokers)
    assert code == 0 and "events" in out.splitlines(), (code, out, err)

    desc = json.loads(ok("topic", "describe", "events", "--format", "json")[0])
    assert desc["name"] == "events" and desc["replication_factor"] == 1, desc
    assert [p["partition"] for p in desc["partitions"]] == [0, 1, 2], desc
    for p in desc["partitions"]:
        assert p["leader"] == 0 and p["replicas"] == [0] and p["isr"] == [0], p
        assert p["low_watermark"] == 0 and p["high_watermark"] == 0, p
    assert desc["configs"]["retention.ms"]["value"] == "86400000", desc["configs"]
    assert desc["configs"]["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG", desc["configs"]
    assert desc["configs"]["cleanup.policy"]["source"] == "DEFAULT_CONFIG", desc["configs"]
    text, _ = ok("topic", "describe", "events")
    assert "Partitions: 3" in text and "retention.ms" in text and "HIGH WATERMARK" in text, text

    # --- produce: plain lines, --key-sep, JSON with headers ------------------------------
    # Empty lines (and the lone CR of a CRLF empty line) are no records, as with kcat -P.
    _, err = ok("produce", "single", stdin="one\n\ntwo\n\r\nthree\n\n")
    assert "3 of 3 records delivered to 'single'" in err, err
    # A script that cannot be read: its path and the system's reason.
    code, _, err = run("sql", "/nonexistent/runnel-nosuchfile.sql")
    assert code == 2 and err == "runnel sql: cannot read '/nonexistent/runnel-nosuchfile.sql': No such file or " \
                                "directory\n", (code, err)
    ok("produce", "single", "--key-sep", "=", "--acks", "1", stdin="k1=v1\nk2=v=2\n")
    records = [
        {"key": "user-1", "value": "clicked", "headers": {"source": "web", "trace": "abc"}, "timestamp": 1000},
        {"key": None, "value": {"amount": 5}, "timestamp": 2000},
        {"key": "user-2", "value": None, "headers": {"empty": None}, "timestamp": 3000},
    ]
    ok("produce", "single", "--format", "json", stdin="".join(json.dumps(r) + "\n" for r in records))

    out, _ = ok("consume", "single")
    lines = out.splitlines()
    assert len(lines) == 8, out
    fields = [line.split("\t") for line in lines]
    assert [f[1] for f in fields] == [str(i) for i in range(8)], fields  # offsets
    assert all(f[0] == "0" for f in fields), fields  # partition
    assert [f[4] for f in fields[:3]] == ["one", "two", "three"] and fields[0][3] == "", fields
    assert fields[3][3:] == ["k1", "v1"] and fields[4][3:] == ["k2", "v=2"], fields
    assert fields[5][2:] == ["1000", "user-1", "clicked"], fields

    got = json_lines(ok("consume", "single", "--format", "json")[0])
    assert len(got) == 8, got
    assert got[0] == {"partition": 0, "offset": 0, "timestamp": got[0]["timestamp"], "key": None, "value": "one",
                      "headers": {}}, got[0]
    assert got[5] == {"partition": 0, "offset": 5, "timestamp": 1000, "key": "user-1", "value": "clicked",
                      "headers": {"source": "web", "trace": "abc"}}, got[5]
    # A value holding a JSON object is embedded as JSON, as the REST API serves it.
    assert got[6]["key"] is None and got[6]["value"] == {"amount": 5}, got[6]
    assert got[7]["value"] is None and got[7]["headers"] == {"empty": None}, got[7]

    # Binary data round-trips through base64 fields.
    ok("produce", "single", "--format", "json", stdin='{"value_base64":"/wAB","headers_base64":{"b":"/w=="}}\n')
    got = json_lines(ok("consume", "single", "--format", "json", "--from", "8")[0])
    assert got == [{"partition": 0, "offset": 8, "timestamp": got[0]["timestamp"], "key": None,
                    "value_base64": "/wAB", "headers": {}, "headers_base64": {"b": "/w=="}}], got

    # --- consume from an offset, a timestamp, the end; --partition, --max-messages --------
    out, _ = ok("consume", "single", "--from", "6", "--partition", "0")
    assert [line.split("\t")[1] for line in out.splitlines()] == ["6", "7", "8"], out
    ok("topic", "create", "timed", "--partitions", "1")
    ok("produce", "timed", "--format", "json",
       stdin="".join(json.dumps({"value": f"t{t}", "timestamp": t}) + "\n" for t in (1000, 2000, 3000)))
    got = json_lines(ok("consume", "timed", "--from", "@1500", "--format", "json")[0])
    assert [(r["offset"], r["value"], r["timestamp"]) for r in got] == [(1, "t2000", 2000), (2, "t3000", 3000)], got
    assert ok("consume", "timed", "--from", "@3001")[0] == "", "nothing at or after 3001"
    assert ok("consume", "timed", "--from", "end")[0] == ""
    out, _ = ok("consume", "timed", "--max-messages", "2")
    assert len(out.splitlines()) == 2, out
    fails(1, "consume", "timed", "--from", "9", message="past the end of partition 0")
    fails(1, "consume", "timed", "--partition", "4", message="there is no partition 4")

    # Keyed records spread over the partitions of "events"; reading all of them sees all.
    ok("produce", "events", "--key-sep", ":", stdin="".join(f"k{i}:v{i}\n" for i in range(30)))
    got = json_lines(ok("consume", "events", "--format", "json")[0])
    assert sorted(r["value"] for r in got) == sorted(f"v{i}" for i in range(30)), got
    assert len({r["partition"] for r in got}) > 1, "keys should spread over partitions"
    by_key = {}
    for r in got:
        by_key.setdefault(r["key"], set()).add(r["partition"])
    assert all(len(parts) == 1 for parts in by_key.values()), by_key
    desc = json.loads(ok("topic", "describe", "events", "--format", "json")[0])
    assert sum(p["high_watermark"] for p in desc["partitions"]) == 30, desc
    out, _ = ok("produce", "events", "--partition", "2", stdin="pinned\n")
    got = json_lines(ok("consume", "events", "--partition", "2", "--from", "end", "--format", "json")[0])
    assert got == [], got
    desc2 = json.loads(ok("topic", "describe", "events", "--format", "json")[0])
    assert desc2["partitions"][2]["high_watermark"] == desc["partitions"][2]["high_watermark"] + 1, desc2

    # --- --follow: waits for records produced while it runs -----------------------------
    ok("topic", "create", "live", "--partitions", "2")
    ok("produce", "live", stdin="before-1\nbefore-2\n")
    follower = subprocess.Popen([RUNNEL, "consume", "live", "--follow", "--max-messages", "4", "--format", "json", *b],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = line_reader(follower.stdout)
        deadline = time.monotonic() + DEADLINE_S
        seen = [json.loads(out.next_line(deadline)) for _ in range(2)]  # it has caught up with the log
        assert sorted(r["value"] for r in seen) == ["before-1", "before-2"], seen
        assert follower.poll() is None, "--follow must keep running at the end of the log"
        ok("produce", "live", stdin="after-1\nafter-2\n")
        rest = [json.loads(out.next_line(deadline)) for _ in range(2)]
        assert sorted(r["value"] for r in rest) == ["after-1", "after-2"], rest
        assert follower.wait(timeout=DEADLINE_S) == 0, follower.stderr.read()
        assert out.next_line(deadline) is None, "--max-messages 4 prints exactly 4 records"
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()

    # --- topic alter: configs (IncrementalAlterConfigs) and partitions (CreatePartitions) --
    ok("topic", "alter", "events", "--config", "retention.ms=1000", "--config", "segment.ms=3600000")
    ok("topic", "alter", "events", "--delete-config", "retention.ms", "--partitions", "5")
    desc = json.loads(ok("topic", "describe", "events", "--format", "json")[0])
    assert len(desc["partitions"]) == 5, desc
    assert desc["configs"]["segment.ms"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG",
                                             "read_only": False, "sensitive": False}, desc["configs"]
    assert desc["configs"]["retention.ms"]["source"] == "DEFAULT_CONFIG", desc["configs"]
    fails(1, "topic", "alter", "events", "--config", "no.such.config=1", message="INVALID_CONFIG")
    fails(1, "topic", "alter", "events", "--partitions", "2", message="INVALID_PARTITIONS")

    # --- delivery failure: the broker refuses every record --------------------------------
    ok("topic", "create", "tiny", "--partitions", "1", "--config", "max.message.bytes=200")
    _, err = fails(1, "produce", "tiny", stdin="x" * 1000 + "\n", message="not delivered")
    assert "line 1" in err and "0 of 1 record delivered" in err, err
    _, err = fails(1, "produce", "single", "--key-sep", ":", stdin="a:b\nno separator\n",
                   message="line 2: no key separator ':'")
    _, err = fails(1, "produce", "single", "--format", "json", stdin='{"value":"ok"}\n{"value":\n',
                   message="line 2: invalid JSON")

    # --- unknown topics -----------------------------------------------------------------
    for args in (["consume", "nope"], ["produce", "nope"], ["topic", "describe", "nope"],
                 ["topic", "delete", "nope"], ["topic", "alter", "nope", "--partitions", "3"]):
        fails(1, *args, stdin="x\n", message="topic 'nope' does not exist")
    ok("topic", "delete", "nope", "--if-exists")
    assert "nope" not in ok("topic", "list")[0].splitlines()  # no side effect created it

    # --- topic delete ---------------------------------------------------------------------
    _, err = ok("topic", "delete", "timed")
    assert "deleted topic 'timed'" in err, err
    assert "timed" not in ok("topic", "list")[0].splitlines()

    # --- unreachable brokers: exit 1 quickly, naming them ---------------------------------
    dead = f"127.0.0.1:{closed_port()}"
    for args in (["topic", "list"], ["consume", "events"], ["produce", "events"]):
        started = time.monotonic()
        code, out, err = run(*args, "--brokers", dead, "--timeout", "20000", stdin="x\n")
        assert code == 1, (args, code, err)
        assert dead in err and "cannot reach the Kafka brokers" in err, err
        assert time.monotonic() - started < 15, "a refused connection must not wait for the whole timeout"
    code, _, err = run("topic", "list", env_brokers=dead)
    assert code == 1 and dead in err, err

    # --- invalid usage: exit 2 ----------------------------------------------------------
    for args in (["consume"], ["consume", "events", "--from", "yesterday"], ["consume", "events", "--format", "xml"],
                 ["produce", "events", "--acks", "2"], ["topic"], ["topic", "create"],
                 ["topic", "create", "x", "--partitions", "0"], ["topic", "create", "x", "--config", "novalue"],
                 ["topic", "alter", "events"], ["consume", "events", "--max-messages", "0"],
                 ["produce", "events", "-X", "no.such.property=1"], ["nonsense"]):
        code, out, err = run(*args, *b, stdin="")
        assert code == 2, (args, code, out, err)
        assert err and out == "", f"{args}: a usage error says why on stderr only: {out!r} {err!r}"


if __name__ == "__main__":
    main()
