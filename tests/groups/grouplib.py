"""Consumer-group members as child processes, the ledger of what they consumed, and the
`runnel` CLI calls the group tests and bench/group_bench.py share.

Every wait is a condition checked under a lock and signalled by the threads that read the
members' stdout, with a deadline; nothing sleeps to synchronise.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KAFKA_TESTS = os.path.join(os.path.dirname(HERE), "kafka")
sys.path.insert(0, KAFKA_TESTS)

import harness  # noqa: E402

PYTHON = "/usr/bin/python3"
KAFKAJS_DIR = os.path.join(KAFKA_TESTS, "kafkajs")

# Small group timeouts so that every wait in the tests is short.
SERVER_GROUP_FLAGS = ["--group-initial-rebalance-delay-ms", "300",
                      "--group-min-session-timeout-ms", "1000"]


class Ledger:
    """Which offsets of which partitions were consumed, and how often, across all members.

    Fed by the members' reader threads; `cond` is notified on every change."""

    def __init__(self, cond):
        self.cond = cond
        self.counts = {}   # partition -> bytearray of per-offset counts (saturating at 255)
        self.distinct = 0  # offsets seen at least once
        self.total = 0     # records delivered, duplicates included

    def add(self, p, first, last):
        counts = self.counts.setdefault(p, bytearray())
        if len(counts) <= last:
            counts.extend(bytes(last + 1 - len(counts)))
        for o in range(first, last + 1):
            c = counts[o]
            if c == 0:
                self.distinct += 1
            if c < 255:
                counts[o] = c + 1
        self.total += last - first + 1

    def missing(self, ends):
        """Offsets below each partition's end never consumed: {partition: count}."""
        out = {}
        for p, end in ends.items():
            counts = self.counts.get(p, bytearray())
            seen = sum(1 for o in range(min(end, len(counts))) if counts[o])
            if seen < end:
                out[p] = end - seen
        return out

    def duplicates(self):
        """{partition: [offsets consumed more than once]}."""
        out = {}
        for p, counts in self.counts.items():
            d = [o for o, c in enumerate(counts) if c > 1]
            if d:
                out[p] = d
        return out


class Member:
    """One group member process (member.py or member.js) and what it reported.

    `assignment` is its current set of partitions; `events` every A/R line as
    (kind, t_ms, partitions); `generations` the JoinGroup generations it logged;
    `commit_failures` how many commits failed, by error name, and `last_commit_failure`
    the latest C line's (t_ms, error, partitions)."""

    def __init__(self, group, name, argv, env=None):
        self.group = group
        self.name = name
        self.assignment = set()
        self.events = []
        self.generations = []
        self.consumed = {}  # partition -> records
        self.commit_failures = {}  # error name -> count
        self.last_commit_failure = None
        self.ready = False
        self.ready_ms = None
        self.closed = False
        self.exited = False
        self.stderr_lines = []
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self):
        g = self.group
        for line in self.proc.stdout:
            parts = line.split()
            if not parts:
                continue
            with g.cond:
                tag = parts[0]
                if tag == "M":
                    p, first, last = int(parts[1]), int(parts[2]), int(parts[3])
                    g.ledger.add(p, first, last)
                    self.consumed[p] = self.consumed.get(p, 0) + last - first + 1
                elif tag in ("A", "R"):
                    ps = {int(x) for x in parts[2:]}
                    self.events.append((tag, float(parts[1]), ps))
                    if tag == "A":
                        self.assignment = ps
                    else:
                        self.assignment -= ps
                elif tag == "G":
                    self.generations.append(int(parts[1]))
                elif tag == "C":
                    error = parts[2]
                    self.commit_failures[error] = self.commit_failures.get(error, 0) + 1
                    self.last_commit_failure = (float(parts[1]), error, [int(x) for x in parts[3:]])
                elif tag == "ready":
                    self.ready = True
                    self.ready_ms = float(parts[1])
                elif tag == "closed":
                    self.closed = True
                g.cond.notify_all()
        with g.cond:
            self.exited = True
            g.cond.notify_all()

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self.group.cond:
                self.stderr_lines.append(line.rstrip("\n"))

    def alive(self):
        return self.proc.poll() is None and not self.exited

    def stop(self, timeout=30):
        """Closes stdin: the member commits, leaves and exits 0."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"member {self.name} did not stop within {timeout} s:\n"
                                 + self.stderr_tail())
        assert code == 0, f"member {self.name} exited with {code}:\n" + self.stderr_tail()
        self.group.wait(lambda: self.closed or self.exited, 10, f"{self.name} to report closed")
        assert self.closed, f"member {self.name} exited without closing:\n" + self.stderr_tail()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stderr_tail(self, n=30):
        with self.group.cond:
            return "\n".join(self.stderr_lines[-n:])


class Group:
    """The members of one consumer group on one topic, and the ledger they feed."""

    def __init__(self, bootstrap, group_id, topic, partitions, runnel):
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topic = topic
        self.partitions = partitions
        self.runnel = runnel
        self.cond = threading.Condition()
        self.ledger = Ledger(self.cond)
        self.members = []

    def start(self, kind, name=None, instance_id=None, strategy="range", session_timeout_ms=6000,
              rate=0, debug_cgrp=False):
        name = name or f"{kind}-{len(self.members)}"
        if kind == "kafkajs":
            argv = ["node", os.path.join(HERE, "member.js"), self.bootstrap, self.group_id,
                    self.topic, str(session_timeout_ms), name]
            env = dict(os.environ, NODE_PATH=os.path.join(KAFKAJS_DIR, "node_modules"),
                       KAFKAJS_NO_PARTITIONER_WARNING="1")
        else:
            argv = [PYTHON, "-W", "ignore", os.path.join(HERE, "member.py"), "--client", kind,
                    "--bootstrap", self.bootstrap, "--group", self.group_id, "--topic",
                    self.topic, "--client-id", name, "--strategy", strategy,
                    "--session-timeout-ms", str(session_timeout_ms), "--rate", str(rate)]
            if instance_id:
                argv += ["--instance-id", instance_id]
            if debug_cgrp:
                argv += ["--debug-cgrp"]
            env = None
        m = Member(self, name, argv, env)
        self.members.append(m)
        return m

    def wait(self, condition, timeout, what):
        """Waits (on the members' notifications) until `condition()` holds, under the lock."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if condition():
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout} s waiting for {what}; "
                                       + self.state())
                self.cond.wait(min(left, 0.2))

    def state(self):
        lines = [f"consumed {self.ledger.distinct} distinct ({self.ledger.total} delivered)"]
        for m in self.members:
            lines.append(f"  {m.name}: alive={m.alive()} assignment={sorted(m.assignment)} "
                         f"events={len(m.events)} consumed={sum(m.consumed.values())}")
            if m.commit_failures:
                lines.append(f"    commit failures: {m.commit_failures}, last {m.last_commit_failure}")
            if m.stderr_lines:
                lines.append("    stderr: " + " | ".join(m.stderr_lines[-3:]))
        return "\n".join(lines)

    def balanced(self, members):
        """True when `members` (all alive) hold disjoint non-empty sets covering every
        partition. Call under the lock."""
        seen = set()
        for m in members:
            if not m.alive() or not m.assignment or seen & m.assignment:
                return False
            seen |= m.assignment
        return seen == set(range(self.partitions))

    def wait_balanced(self, members, timeout, what="a balanced assignment"):
        self.wait(lambda: self.balanced(members), timeout,
                  f"{what} over {[m.name for m in members]}")
        return time.monotonic_ns() / 1e6

    def wait_consumed(self, n, timeout):
        self.wait(lambda: self.ledger.distinct >= n, timeout, f"{n} records consumed")

    # -- the CLI ------------------------------------------------------------------------------

    def describe(self):
        return describe(self.runnel, self.bootstrap, self.group_id)

    def wait_committed(self, ends, timeout):
        """Waits until the group's committed offsets equal `ends` ({partition: offset})."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.describe()
            committed = {r["partition"]: r["committed_offset"] for r in d["partitions"]
                         if r["topic"] == self.topic}
            if all(committed.get(p) == e for p, e in ends.items()):
                return d
            if time.monotonic() >= deadline:
                raise TimeoutError(f"committed offsets {committed} never reached {ends}; "
                                   + self.state() + "\n" + describe_summary(d))
            with self.cond:
                self.cond.wait(0.2)  # also woken by any member progress


def run_cli(runnel, args, timeout=60, check=True):
    p = subprocess.run([runnel] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"runnel {' '.join(args)} exited with {p.returncode}:\n{p.stderr}")
    return p


def describe_summary(d):
    """The group's state from `runnel group describe --format json`, for failure messages."""
    lines = [f"group {d.get('group')}: state {d.get('state')}, protocol {d.get('protocol')!r}, "
             f"{len(d.get('members', []))} members"]
    for m in d.get("members", []):
        parts = sorted(a["partition"] for a in m.get("assignment", []))
        lines.append(f"  member {m.get('member_id')} ({m.get('client_id')}): partitions {parts}")
    return "\n".join(lines)


def describe(runnel, bootstrap, group):
    p = run_cli(runnel, ["group", "describe", group, "--format", "json", "--brokers", bootstrap])
    return json.loads(p.stdout)


def create_topic(runnel, bootstrap, topic, partitions):
    run_cli(runnel, ["topic", "create", topic, "--partitions", str(partitions), "--brokers",
                     bootstrap])


def end_offsets(runnel, bootstrap, topic):
    p = run_cli(runnel, ["topic", "describe", topic, "--format", "json", "--brokers", bootstrap])
    return {r["partition"]: r["high_watermark"] for r in json.loads(p.stdout)["partitions"]}


def produce(bootstrap, topic, partitions, n, start=0, timestamp=None, size=0):
    """Produces records start..start+n-1, record i to partition i % partitions (value "i",
    padded with dots to `size` bytes)."""
    from confluent_kafka import Producer
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
                         "enable.idempotence": False, "queue.buffering.max.messages": 1000000})

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(start, start + n):
        while True:
            try:
                kwargs = {"timestamp": timestamp(i)} if timestamp else {}
                producer.produce(topic, value=str(i).encode().ljust(size, b"."), partition=i % partitions,
                                 on_delivery=delivered, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
    left = producer.flush(60)
    assert left == 0 and not errors, f"{left} records not delivered, errors: {errors[:5]}"


def ensure_kafkajs():
    """Installs kafkajs from tests/kafka/kafkajs/package-lock.json when missing."""
    import shutil
    return harness.npm_ci(shutil.which("npm") or "npm", os.path.join(KAFKA_TESTS, "kafkajs"), "kafkajs")


def server(binary, extra=(), **kwargs):
    return harness.RunnelServer(binary, extra_args=SERVER_GROUP_FLAGS + list(extra), name="groups",
                                **kwargs)
