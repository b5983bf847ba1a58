#!/usr/bin/python3
"""Security of the Kafka listeners: TLS, client certificates, SASL PLAIN and SCRAM.

The test makes its own certificates with `openssl` in a temporary directory (a CA, a server
certificate for 127.0.0.1 and localhost, a client certificate, and a second CA nobody trusts
with a client certificate of its own), creates users with `runnel user create`, and starts
one server with four listeners at once: PLAINTEXT, SSL (client certificates required, which
SASL_SSL ignores as Kafka does), SASL_SSL and SASL_PLAINTEXT. Then real clients use them the way Kafka users configure them:

- confluent-kafka and kcat produce and consume over SASL_SSL with SCRAM-SHA-512 and over
  SSL with a client certificate (a group consumer, so FindCoordinator must name the
  listener the client came in on); kafkajs does the same;
- SCRAM-SHA-256 and PLAIN work on SASL_PLAINTEXT; a wrong password is refused with the
  authentication error confluent-kafka reports (_AUTHENTICATION), an untrusted client
  certificate fails the TLS handshake;
- the PLAINTEXT listener still works at the same time;
- raw sockets: a request other than ApiVersions or SaslHandshake before authentication
  closes the connection, an unknown mechanism is answered UNSUPPORTED_SASL_MECHANISM,
  a client that never authenticates is closed after --sasl-handshake-timeout-ms;
- /metrics counts successes and failures per listener and mechanism;
- SIGHUP makes new connections use a certificate rotated on disk;
- a second server with --tls-client-auth requested serves a client without a certificate,
  one with --sasl-session-lifetime-ms reports the lifetime and closes the connection at the
  first request after it, and one bound to 0.0.0.0 with a PLAINTEXT listener refuses to start.

Run: /usr/bin/python3 security_test.py --runnel PATH [--node PATH] [--npm PATH]
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer  # noqa: E402

KCAT = "/usr/bin/kcat"
PASSWORD = "correct horse battery staple"


def option(flag, name):
    argv = sys.argv
    if flag in argv:
        i = argv.index(flag)
        path = argv[i + 1]
        del argv[i:i + 2]
        return path
    return shutil.which(name)


BINARY = harness.runnel_binary()
NODE = option("--node", "node")
NPM = option("--npm", "npm")


openssl = harness.openssl
make_certificates = harness.make_certificates
listener_port = harness.listener_port


def create_user(data_dir, name, password, mechanisms=None):
    harness.create_user(BINARY, data_dir, name, password, mechanisms)


def metrics_text(srv):
    with urllib.request.urlopen(f"{srv.http}/metrics", timeout=10) as r:
        return r.read().decode()


def counter(srv, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} ([0-9.e+-]+)$", metrics_text(srv), re.M)
    return float(m.group(1)) if m else 0.0


class Secured(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runnel-security-itest-")
        cls.certs = make_certificates(cls.tmp)
        cls.data_dir = os.path.join(cls.tmp, "data")
        create_user(cls.data_dir, "alice", PASSWORD)
        create_user(cls.data_dir, "bob", "bobs password", mechanisms="SCRAM-SHA-256")
        c = cls.certs
        cls.srv = harness.RunnelServer(BINARY, name="security", data_dir=cls.data_dir, extra_args=[
            "--kafka-listener", "SASL_SSL://127.0.0.1:0",
            "--kafka-listener", "SSL://127.0.0.1:0",
            "--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0",
            "--tls-cert-file", c["server.crt"], "--tls-key-file", c["server.key"], "--tls-ca-file", c["ca.crt"],
            "--tls-client-auth", "required",
            "--sasl-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
            "--sasl-handshake-timeout-ms", "2000",
            "--group-initial-rebalance-delay-ms", "0",
        ]).start()
        cls.ports = {n: listener_port(cls.srv, n) for n in ["PLAINTEXT", "SASL_SSL", "SSL", "SASL_PLAINTEXT"]}

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def addr(self, name):
        return f"127.0.0.1:{self.ports[name]}"

    # -- confluent-kafka -----------------------------------------------------------------------

    def client_config(self, listener, **extra):
        c = self.certs
        cfg = {"bootstrap.servers": self.addr(listener), "client.id": "itest-security"}
        if listener in ("SSL", "SASL_SSL"):
            cfg["ssl.ca.location"] = c["ca.crt"]
        cfg.update(extra)
        return cfg

    def round_trip(self, cfg, topic, n=300):
        """Produces n records with acks=all, reads them back with a group consumer."""
        errors = []
        producer = Producer(dict(cfg, **{"acks": "all", "error_cb": lambda e: errors.append(e)}))
        for i in range(n):
            producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        left = producer.flush(60)
        self.assertEqual(left, 0, f"{left} records not delivered; errors {errors}")
        consumer = Consumer(dict(cfg, **{"group.id": f"{topic}-group", "auto.offset.reset": "earliest",
                                         "error_cb": lambda e: errors.append(e)}))
        consumer.subscribe([topic])
        got = []
        deadline = harness.Deadline(90, f"consuming {topic}")
        try:
            while len(got) < n:
                deadline.check(f"({len(got)} of {n}; errors {errors})")
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                got.append(msg.value().decode())
        finally:
            consumer.close()
        self.assertEqual(got, [f"v{i}" for i in range(n)])

    def first_error(self, cfg, what):
        """The first error a producer reports while trying to reach the server."""
        return harness.first_producer_error(Producer, cfg, what)

    def test_plaintext_listener_still_works(self):
        self.round_trip(self.client_config("PLAINTEXT"), "sec-plain", n=50)

    def test_sasl_ssl_scram_sha_512(self):
        before = counter(self.srv, "runnel_auth_successes_total", listener="SASL_SSL", mechanism="SCRAM-SHA-512")
        self.round_trip(self.client_config("SASL_SSL", **{
            "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "alice", "sasl.password": PASSWORD}), "sec-sasl-ssl")
        after = counter(self.srv, "runnel_auth_successes_total", listener="SASL_SSL", mechanism="SCRAM-SHA-512")
        self.assertGreater(after, before)

    def test_sasl_plaintext_scram_sha_256_and_plain(self):
        self.round_trip(self.client_config("SASL_PLAINTEXT", **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256",
            "sasl.username": "bob", "sasl.password": "bobs password"}), "sec-scram-256", n=20)
        self.round_trip(self.client_config("SASL_PLAINTEXT", **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": "alice", "sasl.password": PASSWORD}), "sec-plain-mech", n=20)

    def test_wrong_password_is_an_authentication_error(self):
        before = counter(self.srv, "runnel_auth_failures_total", listener="SASL_SSL", mechanism="SCRAM-SHA-512")
        err = self.first_error(self.client_config("SASL_SSL", **{
            "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "alice", "sasl.password": "wrong"}), "the authentication error")
        self.assertEqual(err.code(), KafkaError._AUTHENTICATION, str(err))
        self.assertIn("Authentication failed", err.str())
        harness.wait_until(
            lambda: counter(self.srv, "runnel_auth_failures_total", listener="SASL_SSL",
                            mechanism="SCRAM-SHA-512") > before, 10, "the failure in /metrics")
        err = self.first_error(self.client_config("SASL_PLAINTEXT", **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": "nobody", "sasl.password": "x"}), "the PLAIN authentication error")
        self.assertEqual(err.code(), KafkaError._AUTHENTICATION, str(err))

    def test_mtls_client_certificate(self):
        before = counter(self.srv, "runnel_auth_successes_total", listener="SSL", mechanism="TLS")
        c = self.certs
        self.round_trip(self.client_config("SSL", **{
            "security.protocol": "SSL", "ssl.certificate.location": c["client.crt"],
            "ssl.key.location": c["client.key"]}), "sec-mtls")
        self.assertGreater(counter(self.srv, "runnel_auth_successes_total", listener="SSL", mechanism="TLS"), before)

    def test_missing_client_certificate_fails_the_handshake(self):
        err = self.first_error(self.client_config("SSL", **{"security.protocol": "SSL"}),
                               "the refusal of a client without a certificate")
        self.assertIn(err.code(), (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN), str(err))

    def test_untrusted_client_certificate_fails_the_handshake(self):
        before = counter(self.srv, "runnel_auth_failures_total", listener="SSL", mechanism="TLS")
        c = self.certs
        err = self.first_error(self.client_config("SSL", **{
            "security.protocol": "SSL", "ssl.certificate.location": c["rogue.crt"],
            "ssl.key.location": c["rogue.key"]}), "the TLS handshake failure")
        self.assertIn(err.code(), (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN), str(err))
        harness.wait_until(lambda: counter(self.srv, "runnel_auth_failures_total", listener="SSL",
                                           mechanism="TLS") > before, 10, "the handshake failure in /metrics")

    def test_sighup_reloads_the_certificate_for_new_connections(self):
        import signal
        import ssl
        d = self.tmp
        c = self.certs
        # A new server certificate from the same CA, written over the files the server reads.
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server2.key", "-out", "server2.csr",
                "-subj", "/CN=localhost/O=rotated", cwd=d)
        openssl("x509", "-req", "-in", "server2.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server2.crt", "-days", "2", "-extfile", "server.ext", cwd=d)
        shutil.copyfile(os.path.join(d, "server2.key"), c["server.key"])
        shutil.copyfile(os.path.join(d, "server2.crt"), c["server.crt"])
        reloads = len([l for l in self.srv.log().splitlines() if "SIGHUP: reloaded the TLS certificate" in l])
        self.srv.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: len([l for l in self.srv.log().splitlines()
                                        if "SIGHUP: reloaded the TLS certificate" in l]) > reloads,
                           30, "the reload log line")
        ctx = ssl.create_default_context(cafile=c["ca.crt"])
        ctx.load_cert_chain(c["client.crt"], c["client.key"])
        with socket.create_connection(("127.0.0.1", self.ports["SSL"]), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                served = tls.getpeercert(binary_form=True)
        with open(c["server.crt"]) as f:
            expected = ssl.PEM_cert_to_DER_cert(f.read())
        self.assertEqual(served, expected)
        # And clients go on working over the new certificate.
        self.round_trip(self.client_config("SASL_SSL", **{
            "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "alice", "sasl.password": PASSWORD}), "sec-after-reload", n=20)

    # -- kcat ----------------------------------------------------------------------------------

    def kcat(self, args, stdin=None):
        p = subprocess.run([KCAT, *args], input=stdin, capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, f"kcat {' '.join(args)}: {p.stderr.decode(errors='replace')}")
        return p.stdout.decode()

    def kcat_round_trip(self, listener, settings, topic):
        base = ["-b", self.addr(listener)] + [x for k, v in settings.items() for x in ("-X", f"{k}={v}")]
        lines = "".join(f"line {i}\n" for i in range(100))
        self.kcat(base + ["-P", "-t", topic, "-X", "topic.request.required.acks=-1"], stdin=lines.encode())
        out = self.kcat(base + ["-C", "-t", topic, "-o", "beginning", "-e", "-q"])
        self.assertEqual(out.splitlines(), lines.splitlines())

    def test_kcat_sasl_ssl_and_mtls(self):
        c = self.certs
        self.kcat_round_trip("SASL_SSL", {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                                          "sasl.username": "alice", "sasl.password": PASSWORD,
                                          "ssl.ca.location": c["ca.crt"]}, "sec-kcat-scram")
        self.kcat_round_trip("SSL", {"security.protocol": "SSL", "ssl.ca.location": c["ca.crt"],
                                     "ssl.certificate.location": c["client.crt"],
                                     "ssl.key.location": c["client.key"]}, "sec-kcat-mtls")

    # -- kafkajs -------------------------------------------------------------------------------

    def test_kafkajs_scram_and_mtls(self):
        if not NODE or not NPM:
            self.skipTest("node or npm not found")
        print(harness.npm_ci(NPM, os.path.join(HERE, "kafkajs"), "kafkajs"), flush=True)
        c = self.certs
        for listener, topic, args in [("SASL_SSL", "sec-kafkajs-scram", ["scram", "alice", PASSWORD]),
                                      ("SSL", "sec-kafkajs-mtls", ["mtls", c["client.crt"], c["client.key"]])]:
            p = subprocess.run([NODE, os.path.join(HERE, "kafkajs", "secure.js"), self.addr(listener), topic,
                                c["ca.crt"], *args], capture_output=True, timeout=180,
                               env=dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1"))
            out = p.stdout.decode(errors="replace")
            self.assertEqual(p.returncode, 0, f"secure.js {listener}: {p.stderr.decode(errors='replace')}\n{out}")
            self.assertEqual(json.loads(out.strip().splitlines()[-1]), {"produced": 200, "consumed": 200})

    # -- raw wire ------------------------------------------------------------------------------

    def test_request_before_authentication_closes_the_connection(self):
        before = harness.metric(self.srv, "runnel_auth_unauthenticated_requests_total")
        with kw.Connection(self.ports["SASL_PLAINTEXT"]) as conn:
            _, body = conn.request(kw.API_VERSIONS, 0, kw.api_versions_request(0))
            error, apis = kw.parse_api_versions(body, 0)
            self.assertEqual(error, 0)
            self.assertEqual(apis[17], (0, 1))
            self.assertEqual(apis[36], (0, 2))
            conn.send_request(kw.METADATA, 1, kw.metadata_request(1, ["anything"]))
            conn.expect_closed()
        self.assertGreater(harness.metric(self.srv, "runnel_auth_unauthenticated_requests_total"), before)

    def test_unknown_mechanism_and_authenticate_without_handshake(self):
        with kw.Connection(self.ports["SASL_PLAINTEXT"]) as conn:
            _, body = conn.request(17, 1, kw.string("GSSAPI"))
            r = kw.Reader(body)
            self.assertEqual(r.i16(), 33)  # UNSUPPORTED_SASL_MECHANISM
            self.assertEqual(sorted(r.array(lambda r: r.string())), ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
            conn.expect_closed()
        with kw.Connection(self.ports["SASL_PLAINTEXT"]) as conn:
            _, body = conn.request(36, 1, kw.nbytes(b"\0alice\0x"))
            self.assertEqual(kw.Reader(body).i16(), 34)  # ILLEGAL_SASL_STATE
            conn.expect_closed()

    def test_plain_v0_handshake_with_bare_tokens(self):
        with kw.Connection(self.ports["SASL_PLAINTEXT"]) as conn:
            _, body = conn.request(17, 0, kw.string("PLAIN"))
            self.assertEqual(kw.Reader(body).i16(), 0)
            conn.send_frame(b"\0alice\0" + PASSWORD.encode())
            self.assertEqual(conn.recv_frame(), b"")
            _, body = conn.request(kw.METADATA, 1, kw.metadata_request(1, []))
            self.assertTrue(len(body) > 0)

    def test_silent_client_is_closed_after_the_handshake_timeout(self):
        before = harness.metric(self.srv, "runnel_auth_timeouts_total")
        with kw.Connection(self.ports["SASL_SSL"]) as conn:
            conn.expect_closed(timeout=30)  # --sasl-handshake-timeout-ms 2000, generous deadline
        self.assertGreater(harness.metric(self.srv, "runnel_auth_timeouts_total"), before)

    def test_oversized_frame_before_authentication_closes(self):
        with kw.Connection(self.ports["SASL_PLAINTEXT"]) as conn:
            conn.send_raw(kw.i32(1 << 20))
            conn.expect_closed()


class Refusals(unittest.TestCase):
    def test_requested_client_certificate(self):
        with tempfile.TemporaryDirectory(prefix="runnel-security-requested-") as d:
            c = make_certificates(d)
            with harness.RunnelServer(BINARY, name="security-requested", extra_args=[
                    "--kafka-listener", "SSL://127.0.0.1:0", "--tls-cert-file", c["server.crt"],
                    "--tls-key-file", c["server.key"], "--tls-ca-file", c["ca.crt"],
                    "--tls-client-auth", "requested"]) as srv:
                port = listener_port(srv, "SSL")
                producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SSL",
                                     "ssl.ca.location": c["ca.crt"]})
                producer.produce("sec-requested", value=b"x")
                self.assertEqual(producer.flush(60), 0, "a client without a certificate was not served")

    def test_sasl_session_lifetime(self):
        """SaslAuthenticate v1 reports the lifetime; past it, a request closes the connection."""
        with tempfile.TemporaryDirectory(prefix="runnel-security-lifetime-") as d:
            data = os.path.join(d, "data")
            create_user(data, "carol", "carols password")
            with harness.RunnelServer(BINARY, name="security-lifetime", data_dir=data, extra_args=[
                    "--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0", "--sasl-mechanisms", "PLAIN",
                    "--sasl-session-lifetime-ms", "1000"]) as srv:
                port = listener_port(srv, "SASL_PLAINTEXT")
                with kw.Connection(port, timeout=30) as conn:
                    _, body = conn.request(17, 1, kw.string("PLAIN"))
                    self.assertEqual(kw.Reader(body).i16(), 0)
                    _, body = conn.request(36, 1, kw.nbytes(b"\0carol\0carols password"))
                    r = kw.Reader(body)
                    self.assertEqual((r.i16(), r.string(), r.bytes(), r.i64()), (0, None, b"", 1000))
                    # Requests are answered until the session ends, then the connection closes.
                    deadline = harness.Deadline(30, "the end of the SASL session")
                    answered = 0
                    while True:
                        deadline.check(f"({answered} requests answered)")
                        try:
                            conn.request(kw.METADATA, 1, kw.metadata_request(1, []))
                            answered += 1
                        except (kw.Closed, ConnectionError):
                            break
                        time.sleep(0.05)  # pacing the polls, not synchronising

    def test_password_checks_beyond_the_queue_are_refused(self):
        """PLAIN passwords are checked on the password-check threads; with one thread and room for
        one check, logins arriving while it runs are refused at once (SASL_AUTHENTICATION_FAILED,
        counted), the others still get their answer, and a right password still logs in."""
        with tempfile.TemporaryDirectory(prefix="runnel-security-checks-") as d:
            data = os.path.join(d, "data")
            create_user(data, "dave", "daves password")
            with harness.RunnelServer(BINARY, name="security-checks", data_dir=data, extra_args=[
                    "--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0", "--sasl-mechanisms", "PLAIN",
                    "--sasl-password-check-threads", "1", "--sasl-password-check-queue", "1"]) as srv:
                port = listener_port(srv, "SASL_PLAINTEXT")

                def login(password):
                    with kw.Connection(port, timeout=60) as conn:
                        _, body = conn.request(17, 1, kw.string("PLAIN"))
                        self.assertEqual(kw.Reader(body).i16(), 0)
                        _, body = conn.request(36, 1, kw.nbytes(b"\0dave\0" + password))
                        r = kw.Reader(body)
                        return r.i16(), r.string()

                answers = []
                deadline = harness.Deadline(120, "a login refused for a full password-check queue")
                while not any("too many passwords" in (m or "") for _, m in answers):
                    deadline.check(f"({len(answers)} answers)")
                    threads = [threading.Thread(target=lambda: answers.append(login(b"wrong"))) for _ in range(16)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                for code, message in answers:
                    self.assertEqual(code, 58, message)  # SASL_AUTHENTICATION_FAILED
                    self.assertTrue("Invalid username or password" in message or "too many passwords" in message,
                                    message)
                self.assertGreater(harness.metric(srv, "runnel_sasl_password_checks_refused_total"), 0)
                self.assertGreater(harness.metric(srv, "runnel_sasl_password_checks_total"), 0)
                self.assertEqual(login(b"daves password"), (0, None))
                harness.wait_until(lambda: harness.metric(srv, "runnel_sasl_password_checks_pending") == 0, 30,
                                   "the password-check queue to empty")

    def test_plaintext_on_the_network_needs_a_flag(self):
        with tempfile.TemporaryDirectory(prefix="runnel-security-insecure-") as d:
            p = subprocess.run([BINARY, "serve", "--data-dir", os.path.join(d, "data"), "--kafka-addr",
                                "0.0.0.0:0", "--http-addr", "127.0.0.1:0", "--shards", "1"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("--allow-insecure-network", p.stderr)


if __name__ == "__main__":
    harness.run_unittests("security")
