"""Starts and stops a real `runnel serve` for the Kafka integration tests.

Each test gets its own server on 127.0.0.1 with a port the kernel picks, in a fresh temporary
data directory that is removed when the server stops. Nothing here sleeps to synchronise:
every wait is a condition polled or signalled until a deadline, and a missed deadline fails
with what was awaited and the server's last log lines.

Runs under /usr/bin/python3 (Debian's, so the tests can import Debian's Kafka clients).
The runnel binary comes from `--runnel PATH` on the command line or the RUNNEL_BINARY
environment variable (CMake passes both).
"""

import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

READY_RE = re.compile(r"ready in .* Kafka listener on 127\.0\.0\.1:(\d+)")
HTTP_RE = re.compile(r"ready in .* HTTP listener on 127\.0\.0\.1:(\d+)")


def runnel_binary(argv=None):
    """The runnel binary: `--runnel PATH` in argv (removed from it) or $RUNNEL_BINARY."""
    argv = sys.argv if argv is None else argv
    path = os.environ.get("RUNNEL_BINARY")
    if "--runnel" in argv:
        i = argv.index("--runnel")
        path = argv[i + 1]
        del argv[i:i + 2]
    if not path:
        raise SystemExit("runnel binary unknown: pass --runnel PATH or set RUNNEL_BINARY")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"runnel binary {path} is not an executable file")
    return path


def sql_time(ms):
    """Epoch milliseconds as Runnel renders a TIMESTAMP column: `yyyy-MM-dd HH:mm:ss.SSS`, UTC."""
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S") + f".{ms % 1000:03d}"


def epoch_ms(text):
    """The epoch milliseconds of a rendered TIMESTAMP (`sql_time`'s inverse)."""
    t = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
    return round(t.timestamp() * 1000)


def wait_until(condition, timeout, what, interval=0.02):
    """Polls `condition()` until it returns a truthy value, which is returned; fails with
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class Deadline:
    """A point in time to compare against: `left()` seconds remain, `expired()` once past."""

    def __init__(self, seconds, what):
        self.what = what
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.at - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.at

    def check(self, progress=""):
        if self.expired():
            raise TimeoutError(f"timed out after {self.seconds:.0f} s: {self.what} {progress}".rstrip())


class RunnelServer:
    """One `runnel serve` child process with its own data directory.

    Use as a context manager: `with RunnelServer(binary, default_partitions=6) as srv:`
    then `srv.bootstrap` is "127.0.0.1:PORT". Leaving the block stops the server with
    SIGTERM and checks that it exited 0 after logging "stopped cleanly" (unless the block
    raised, in which case the server is stopped without masking the original error).
    """

    def __init__(self, binary, shards=2, auto_create_topics=True, default_partitions=None,
                 extra_args=(), start_timeout=30.0, stop_timeout=60.0, name="runnel",
                 data_dir=None, kafka_port=0, preexec_fn=None):
        self.binary = binary
        self.data_dir = data_dir      # None: a fresh temporary directory, removed at stop
        self.kafka_port = kafka_port  # 0: the kernel picks
        self.preexec_fn = preexec_fn  # run in the child before exec (e.g. to lower its rlimits)
        self.shards = shards
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.name = name
        self.tmp = None
        self.proc = None
        self.port = None
        self.http_port = None
        self._lines = []
        self._cond = threading.Condition()
        self._reader = None
        self._stderr_closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self):
        if self.data_dir is None:
            self.tmp = tempfile.mkdtemp(prefix=f"{self.name}-itest-")
        data_dir = self.data_dir or os.path.join(self.tmp, "data")
        cmd = [self.binary, "serve", "--data-dir", data_dir,
               "--kafka-addr", f"127.0.0.1:{self.kafka_port}", "--http-addr", "127.0.0.1:0",
               "--shards", str(self.shards)]
        if not self.auto_create_topics:
            cmd += ["--auto-create-topics", "false"]
        if self.default_partitions is not None:
            cmd += ["--default-partitions", str(self.default_partitions)]
        cmd += self.extra_args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace",
                                     preexec_fn=self.preexec_fn)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        with self._cond:
            while True:
                port = self._ready_port()
                if port is not None:
                    self.port = port
                    self.http_port = self._ready_http_port()
                    break
                if self._stderr_closed:
                    code = self.proc.wait(timeout=5)
                    self._cleanup()
                    raise RuntimeError(f"runnel serve exited with {code} before it was ready:\n"
                                       + self.log_tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill()
                    raise TimeoutError(f"runnel serve not ready after {self.start_timeout} s:\n"
                                       + self.log_tail())
                self._cond.wait(left)
        return self

    def stop(self, check=True):
        """SIGTERM, then wait for the exit. With `check`, asserts exit code 0 and the
        "stopped cleanly" line. Removes the data directory in every case."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                raise AssertionError(f"runnel serve did not stop within {self.stop_timeout} s of "
                                     f"SIGTERM:\n{self.log_tail()}")
            self._reader.join(timeout=10)
            self._close_stderr()
            if check:
                assert code == 0, f"runnel serve exited with {code}, not 0:\n{self.log_tail()}"
                assert "stopped cleanly" in self.log(), \
                    f"runnel serve did not log 'stopped cleanly':\n{self.log_tail()}"
        finally:
            self.proc = None
            self._cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(f"--- last lines of the {self.name} server log ---\n{self.log_tail()}\n")
        self.stop(check=exc_type is None)
        return False

    # -- state -------------------------------------------------------------------------------

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def http(self):
        """The gateway's base URL, "http://127.0.0.1:PORT"."""
        return f"http://127.0.0.1:{self.http_port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), f"runnel serve is not running (exit code {self.proc and self.proc.poll()}):\n" \
                             + self.log_tail()

    def log(self):
        with self._cond:
            return "\n".join(self._lines)

    def log_tail(self, n=40):
        with self._cond:
            return "\n".join(self._lines[-n:])

    def warnings(self):
        """The server's log lines at level warn or above."""
        with self._cond:
            return [l for l in self._lines if re.search(r"\s(warn|warning|error|critical)\s", l)]

    def wait_for_log(self, pattern, timeout=10.0):
        """Waits until a log line matches the regular expression `pattern`; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self._stderr_closed:
                    raise TimeoutError(f"no server log line matching {pattern!r} within {timeout} s:\n"
                                       + "\n".join(self._lines[-20:]))
                self._cond.wait(left)

    # -- internals ---------------------------------------------------------------------------

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._stderr_closed = True
            self._cond.notify_all()

    def _ready_port(self):
        for line in self._lines:
            m = READY_RE.search(line)
            if m:
                return int(m.group(1))
        return None

    def _ready_http_port(self):
        for line in self._lines:
            m = HTTP_RE.search(line)
            if m:
                return int(m.group(1))
        return None

    def _close_stderr(self):
        if self.proc is not None and self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _cleanup(self):
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def read_to_end(bootstrap, topic, partitions, committed=True, timeout=30):
    """Every record of `topic` from offset 0 to the end of each partition, as (partition, key,
    value bytes), read with confluent-kafka (read_committed unless `committed` is False)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "runnel-test-reader", "enable.partition.eof": True,
                  "enable.auto.commit": False,
                  "isolation.level": "read_committed" if committed else "read_uncommitted"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records, eof = [], set()
    deadline = Deadline(timeout, f"reading {topic}")
    try:
        while len(eof) < partitions:
            deadline.check(f"{len(eof)} of {partitions} partitions at their end")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise AssertionError(m.error())
            records.append((m.partition(), m.key(), m.value()))
    finally:
        c.close()
    return records


def first_producer_error(producer_class, cfg, what):
    """The first error a confluent-kafka producer (`producer_class`, so this module needs no
    confluent_kafka) made from `cfg` reports while trying to reach the server: how a refused
    login or TLS handshake shows to a client."""
    errors = []
    producer = producer_class(dict(cfg, **{"error_cb": errors.append, "message.timeout.ms": 20000}))
    producer.produce("never-delivered", value=b"x")
    deadline = Deadline(30, what)
    while not errors:
        deadline.check()
        producer.poll(0.2)
    producer.purge()
    return errors[0]


def tool(argv, flag, name):
    """The path given as `flag PATH` in argv (removed from it), else `name` on PATH."""
    if flag in argv:
        i = argv.index(flag)
        path = argv[i + 1]
        del argv[i:i + 2]
        return path
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found on PATH (pass {flag} PATH)")
    return path


def npm_ci(npm, js_dir, package):
    """`npm ci` in `js_dir` unless its node_modules already holds the version of `package`
    that package-lock.json names. Returns a line saying which happened. Tests that share
    `js_dir` may run at once (ctest -j): an exclusive lock per directory makes the second wait
    for the first's install and then find it done, instead of deleting the tree under it."""
    import fcntl
    import hashlib
    import json
    with open(os.path.join(js_dir, "package-lock.json")) as f:
        locked = json.load(f)["packages"][f"node_modules/{package}"]["version"]
    installed = os.path.join(js_dir, "node_modules", package, "package.json")
    lock_path = os.path.join(tempfile.gettempdir(),
                             "runnel-npm-" + hashlib.sha1(os.path.abspath(js_dir).encode()).hexdigest()[:16] + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(installed):
            with open(installed) as f:
                if json.load(f)["version"] == locked:
                    return f"{package} {locked} already installed"
        t0 = time.monotonic()
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=js_dir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        assert p.returncode == 0, f"npm ci failed ({p.returncode}):\n{p.stdout.decode(errors='replace')}"
        return f"{package} {locked} installed by npm ci in {time.monotonic() - t0:.1f} s"


def summary(name, passed, failed, skipped=0, seconds=None):
    """Prints the closing line every test script ends with: `name: N passed, N failed`."""
    line = f"{name}: {passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line + (f" ({seconds:.1f} s)" if seconds is not None else ""), flush=True)


def metric(srv, name):
    """The value of an unlabelled series (`name`, or `name{labels}` as exposed) in the server's
    /metrics."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    if not m:
        raise AssertionError(f"{name} not in /metrics")
    return float(m.group(1))


# -- security fixtures: certificates, users, listeners ------------------------------------------

def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, f"openssl {' '.join(args)} failed:\n{p.stderr.decode(errors='replace')}"


def make_certificates(d):
    """In directory `d`: a CA, a server certificate (127.0.0.1, localhost), a client certificate,
    and an untrusted CA with its own client; returns their paths by file name."""
    def ca(name, cn):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
                "-days", "2", "-subj", f"/CN={cn}", cwd=d)

    def leaf(name, issuer, subject, ext):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject, cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.crt", "-CAkey", f"{issuer}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)

    ca("ca", "Runnel Test CA")
    ca("rogue-ca", "Untrusted Test CA")
    leaf("server", "ca", "/CN=localhost",
         "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    leaf("client", "ca", "/O=runnel-test/OU=eng/CN=app-client", "extendedKeyUsage=clientAuth\n")
    leaf("rogue", "rogue-ca", "/CN=intruder", "extendedKeyUsage=clientAuth\n")
    return {n: os.path.join(d, n) for n in ["ca.crt", "server.crt", "server.key", "client.crt", "client.key",
                                             "rogue.crt", "rogue.key"]}


def create_user(binary, data_dir, name, password, mechanisms=None):
    """`runnel user create` in `data_dir` (SCRAM credentials; every mechanism unless named)."""
    cmd = [binary, "user", "create", "--data-dir", data_dir, name]
    if mechanisms:
        cmd += ["--mechanisms", mechanisms]
    p = subprocess.run(cmd, input=password + "\n", text=True, capture_output=True, timeout=60)
    assert p.returncode == 0, f"runnel user create failed: {p.stderr}"


def listener_port(srv, name):
    """The port of the server's Kafka listener `name` (from its log line)."""
    m = srv.wait_for_log(rf"Kafka listener {name} \(\w+\) on 127\.0\.0\.1:(\d+)")
    return int(m.group(1))


class ServerCase(unittest.TestCase):
    """Test cases sharing one `runnel serve` (started before the first, stopped with a clean-exit
    check after the last) and talking to it with raw Kafka requests (kafka_wire). A subclass
    names its server (`server_name`) and may add flags (`server_args`); the script sets
    `ServerCase.binary` (`runnel_binary()`) before it runs the cases."""
    binary = None
    server_name = "runnel"
    server_args = ()
    srv = None

    @classmethod
    def setUpClass(cls):
        cls.srv = RunnelServer(cls.binary, name=cls.server_name, extra_args=list(cls.server_args)).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop(check=True)

    def conn(self):
        import kafka_wire as kw
        c = kw.Connection(self.srv.port)
        self.addCleanup(c.close)
        return c

    def create_topic(self, name, partitions=1):
        import kafka_wire as kw
        _, body = self.conn().request(kw.CREATE_TOPICS, 4, kw.create_topics_request(4, [(name, partitions, -1, {})]))
        self.assertEqual(kw.parse_create_topics(body, 4)[name][0], kw.NONE)

    def produce(self, topic, batch, partition=0):
        """Produce v9 of one batch: (error code, base offset, error message)."""
        import kafka_wire as kw
        _, body = self.conn().request(kw.PRODUCE, 9, kw.produce_request(9, topic, partition, batch))
        (_, _, error, base, message), = kw.parse_produce(body, 9)
        return error, base, message


def run_script(name, main):
    """Runs a test script's `main`; an exception prints its traceback and the failing
    `summary` line and exits 1, so a crash reads like any failed test."""
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc()
        summary(name, 0, 1)
        sys.exit(1)


def run_unittests(name):
    """Runs the unittest cases of the calling script, prints the closing `summary` line (test
    methods counted, not subtests: a method fails if any of its subtests did) and exits 0 only
    when every case passed."""
    import unittest
    started = time.monotonic()
    program = unittest.main(exit=False, verbosity=2)
    r = program.result
    failed_ids = {getattr(t, "test_case", t).id() for t, _ in r.failures + r.errors}
    failed_ids |= {t.id() for t in r.unexpectedSuccesses}
    failed = len(failed_ids)
    passed = r.testsRun - failed - len(r.skipped) - len(r.expectedFailures)
    summary(name, passed, failed, skipped=len(r.skipped), seconds=time.monotonic() - started)
    sys.exit(0 if r.wasSuccessful() else 1)
