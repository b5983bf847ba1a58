#!/usr/bin/python3
"""SASL OAUTHBEARER (RFC 7628, KIP-255) on a Kafka listener, with JWTs checked against the
keys of `--jwks-file` (the validator the HTTP gateway uses too).

The test makes an ES256 and an RS256 key with python3-cryptography, writes their JWKS and
signs tokens itself; confluent-kafka gets them from an `oauth_cb`, as with any identity
provider:

- a producer and a group consumer with a valid token round-trip records;
- a token signed by a key the server does not know, and an expired one, fail with the
  authentication error confluent-kafka reports (_AUTHENTICATION), counted in /metrics;
- on the wire: a bad token is answered with RFC 7628's JSON error, the client's %x01 then
  fails the exchange with SASL_AUTHENTICATION_FAILED; a good token's session lifetime
  (KIP-368) is the time left until its `exp`.

Run: /usr/bin/python3 oauthbearer_test.py --runnel PATH
"""

import os
import re
import shutil
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer  # noqa: E402
from jwt_signer import Signer, write_jwks  # noqa: E402

BINARY = harness.runnel_binary()


def client_first(token):
    return b"n,,\x01auth=Bearer " + token.encode() + b"\x01\x01"


class OAuthBearer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runnel-oauthbearer-itest-")
        cls.ec = Signer("ES256", "ec-1")
        cls.rsa = Signer("RS256", "rsa-1")
        jwks = os.path.join(cls.tmp, "jwks.json")
        write_jwks(jwks, cls.ec, cls.rsa)
        cls.srv = harness.RunnelServer(BINARY, name="oauthbearer", data_dir=os.path.join(cls.tmp, "data"), extra_args=[
            "--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0", "--sasl-mechanisms", "OAUTHBEARER,SCRAM-SHA-512",
            "--jwks-file", jwks, "--jwt-issuer", "https://idp.test", "--group-initial-rebalance-delay-ms", "0",
        ]).start()
        cls.port = harness.listener_port(cls.srv, "SASL_PLAINTEXT")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def token(self, signer=None, lifetime=600, sub="svc-orders"):
        exp = int(time.time()) + lifetime
        return (signer or self.ec).token({"sub": sub, "iss": "https://idp.test", "exp": exp}), exp

    def config(self, token, exp):
        return {"bootstrap.servers": f"127.0.0.1:{self.port}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": lambda _config: (token, float(exp))}

    def failures(self):
        # --jwks-file makes the HTTP API take (and need) the same tokens.
        req = urllib.request.Request(f"{self.srv.http}/metrics",
                                     headers={"Authorization": f"Bearer {self.token()[0]}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        m = re.search(r'^runnel_auth_failures_total\{listener="SASL_PLAINTEXT",mechanism="OAUTHBEARER"\} (\S+)$',
                      text, re.M)
        return float(m.group(1)) if m else 0.0

    def test_produce_and_consume_with_a_token(self):
        for signer, topic in ((self.ec, "oauth-es256"), (self.rsa, "oauth-rs256")):
            cfg = self.config(*self.token(signer))
            errors = []
            producer = Producer(dict(cfg, **{"acks": "all", "error_cb": errors.append}))
            for i in range(50):
                producer.produce(topic, value=f"v{i}".encode())
            self.assertEqual(producer.flush(60), 0, f"not delivered; errors {errors}")
            consumer = Consumer(dict(cfg, **{"group.id": f"{topic}-group", "auto.offset.reset": "earliest",
                                             "error_cb": errors.append}))
            consumer.subscribe([topic])
            got = []
            deadline = harness.Deadline(90, f"consuming {topic}")
            try:
                while len(got) < 50:
                    deadline.check(f"({len(got)} of 50; errors {errors})")
                    msg = consumer.poll(0.5)
                    if msg is not None and not msg.error():
                        got.append(msg.value().decode())
            finally:
                consumer.close()
            self.assertEqual(got, [f"v{i}" for i in range(50)])

    def test_bad_and_expired_tokens_are_refused(self):
        before = self.failures()
        stranger = Signer("ES256", "ec-1")  # the right kid, another key
        for token, exp in (self.token(stranger), self.token(lifetime=-300)):
            err = harness.first_producer_error(Producer, self.config(token, max(exp, time.time() + 60)),
                                               "the authentication error")
            self.assertEqual(err.code(), KafkaError._AUTHENTICATION, str(err))
        harness.wait_until(lambda: self.failures() >= before + 2, 10, "the failures in /metrics")

    def test_wire_error_json_and_session_lifetime(self):
        with kw.Connection(self.port, timeout=30) as conn:
            _, body = conn.request(17, 1, kw.string("OAUTHBEARER"))
            self.assertEqual(kw.Reader(body).i16(), 0)
            bad, _ = self.token(lifetime=-300)
            _, body = conn.request(36, 1, kw.nbytes(client_first(bad)))
            r = kw.Reader(body)
            self.assertEqual((r.i16(), r.string(), r.bytes()), (0, None, b'{"status":"invalid_token"}'))
            _, body = conn.request(36, 1, kw.nbytes(b"\x01"))
            r = kw.Reader(body)
            self.assertEqual(r.i16(), 58)  # SASL_AUTHENTICATION_FAILED
            self.assertEqual(r.string(), "Authentication failed: the token has expired")
        with kw.Connection(self.port, timeout=30) as conn:
            _, body = conn.request(17, 1, kw.string("OAUTHBEARER"))
            self.assertEqual(kw.Reader(body).i16(), 0)
            good, exp = self.token(lifetime=120)
            _, body = conn.request(36, 1, kw.nbytes(client_first(good)))
            r = kw.Reader(body)
            self.assertEqual((r.i16(), r.string(), r.bytes()), (0, None, b""))
            lifetime = r.i64()
            self.assertTrue(100_000 < lifetime <= 120_000, lifetime)
            _, body = conn.request(kw.METADATA, 1, kw.metadata_request(1, []))  # authenticated: answered


if __name__ == "__main__":
    harness.run_unittests("oauthbearer")
