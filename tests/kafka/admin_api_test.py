#!/usr/bin/python3
"""The Admin APIs librdkafka's 0081_admin exercises, against a real server.

- AlterConfigs (confluent-kafka's AdminClient.alter_configs, the non-incremental form): the
  given set replaces a topic's configs, validate_only changes nothing, an unknown topic is
  UNKNOWN_TOPIC_OR_PARTITION, and a BROKER resource keeps dynamic configs DescribeConfigs shows;
- `compression.type=zstd`: batches produced uncompressed and gzip-compressed are stored in
  zstd (read back raw with Fetch) with their producer fields, and a consumer reads the records;
- ListOffsets MAX_TIMESTAMP (-3, v7): the first record holding the largest timestamp, across
  uncompressed and compressed batches, checked against a scan of every record;
- DescribeUserScramCredentials / AlterUserScramCredentials: upsertions with a client-side
  PBKDF2 SaltedPassword, deletions, and Kafka's per-user errors; then a SCRAM login with the
  new password on the SASL listener, and the credential surviving a restart;
- authorized operations in Metadata, DescribeCluster and DescribeGroups: every operation Kafka
  lists without an authorizer, and only the ACLs' with `--authorizer acl`.

The AdminClient of Debian's confluent-kafka (1.7) and kafka-python (2.0.2) predates the
SCRAM, ListOffsets and DescribeCluster admin calls, so those go through raw requests
(kafka_wire).

Run: /usr/bin/python3 admin_api_test.py --runnel PATH
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from kafka_wire import Reader, Writer, i8, i16, i32, i64, boolean  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402

BINARY = harness.runnel_binary()

ALTER_CONFIGS, DESCRIBE_CONFIGS, DESCRIBE_GROUPS, DESCRIBE_CLUSTER = 33, 32, 15, 60
DESCRIBE_SCRAM, ALTER_SCRAM = 50, 51
kw.FLEXIBLE_FROM.update({ALTER_CONFIGS: 2, DESCRIBE_CONFIGS: 4, DESCRIBE_GROUPS: 5, DESCRIBE_SCRAM: 0,
                         ALTER_SCRAM: 0})

RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE, UNACCEPTABLE_CREDENTIAL = 91, 92, 93
UNSUPPORTED_SASL_MECHANISM = 33
SHA256, SHA512 = 1, 2
# Kafka's AclOperation codes and the operations it lists per resource type.
READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 3, 4, 5, 6, 7, 8
CLUSTER_ACTION, DESCRIBE_CONFIGS_OP, ALTER_CONFIGS_OP, IDEMPOTENT_WRITE = 9, 10, 11, 12
TOPIC_OPS = {READ, WRITE, CREATE, DESCRIBE, DELETE, ALTER, DESCRIBE_CONFIGS_OP, ALTER_CONFIGS_OP}
CLUSTER_OPS = {CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS_OP, ALTER_CONFIGS_OP, IDEMPOTENT_WRITE, ALTER, DESCRIBE}
GROUP_OPS = {READ, DESCRIBE, DELETE}
NOT_ASKED = -2147483648


def bits(ops):
    return sum(1 << op for op in ops)


def ops_of(value):
    return {op for op in range(32) if value >= 0 and value & (1 << op)}


# -- raw requests ---------------------------------------------------------------------------


def list_offsets(conn, topic, partition, timestamp, version=7):
    w = Writer(kw.is_flexible(kw.LIST_OFFSETS, version))
    part = i32(partition) + i32(-1) + i64(timestamp) + w.tags()
    body = i32(-1) + i8(0) + w.array([w.string(topic) + w.array([part], lambda p: p) + w.tags()], lambda t: t)
    _, resp = conn.request(kw.LIST_OFFSETS, version, body + w.tags())
    r = Reader(resp, kw.is_flexible(kw.LIST_OFFSETS, version))
    r.i32()
    out = []

    def p(r):
        index, error, ts, offset, _ = r.i32(), r.i16(), r.i64(), r.i64(), r.i32()
        r.tags()
        out.append((error, offset, ts))

    r.array(lambda r: (r.string(), r.array(p), r.tags()))
    return out[0]


def alter_scram(conn, deletions=(), upsertions=()):
    """Deletions [(user, mechanism)], upsertions [(user, mechanism, iterations, salt, salted)];
    returns {user: (error code, message)}."""
    w = Writer(True)
    body = w.array(list(deletions), lambda d: w.string(d[0]) + i8(d[1]) + w.tags())
    body += w.array(list(upsertions), lambda u: w.string(u[0]) + i8(u[1]) + i32(u[2]) + w.bytes(u[3])
                    + w.bytes(u[4]) + w.tags())
    _, resp = conn.request(ALTER_SCRAM, 0, body + w.tags())
    r = Reader(resp, True)
    r.i32()
    results = r.array(lambda r: (r.string(), r.i16(), r.string(), r.tags()))
    return {user: (code, msg) for user, code, msg, _ in results}


def describe_scram(conn, users=None):
    """(top-level error, {user: (error code, {mechanism: iterations})})."""
    w = Writer(True)
    body = compact_nullable_array(users, lambda u: w.string(u) + w.tags()) + w.tags()
    _, resp = conn.request(DESCRIBE_SCRAM, 0, body)
    r = Reader(resp, True)
    r.i32()
    error, _ = r.i16(), r.string()
    results = r.array(lambda r: (r.string(), r.i16(), r.string(),
                                 r.array(lambda r: (r.i8(), r.i32(), r.tags())), r.tags()))
    return error, {user: (code, {m: it for m, it, _ in infos}) for user, code, _, infos, _ in results}


def compact_nullable_array(items, enc):
    return kw.uvarint(0) if items is None else kw.compact_array(items, enc)


def salted_upsertion(user, mechanism, password, iterations=4096, salt=b"some-salt-bytes"):
    digest = "sha256" if mechanism == SHA256 else "sha512"
    return (user, mechanism, iterations, salt, hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations))


def metadata_ops(conn, topic, version=10):
    """(cluster authorized operations, {topic: authorized operations}) from Metadata v10 with both asked."""
    w = Writer(True)
    body = w.array([kw.ZERO_UUID + w.string(topic) + w.tags()], lambda t: t) + boolean(False) + boolean(True) \
        + boolean(True) + w.tags()
    _, resp = conn.request(kw.METADATA, version, body)
    r = Reader(resp, True)
    r.i32()
    r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string(), r.tags()))
    r.string()
    r.i32()

    def partition(r):
        r.i16(), r.i32(), r.i32(), r.i32()
        r.array(lambda r: r.i32()), r.array(lambda r: r.i32()), r.array(lambda r: r.i32())
        r.tags()

    def t(r):
        error, name = r.i16(), r.string()
        r.uuid(), r.boolean(), r.array(partition)
        ops = r.i32()
        r.tags()
        return name, error, ops

    topics = r.array(t)
    cluster = r.i32()
    return cluster, {name: (error, ops) for name, error, ops in topics}


def describe_cluster_ops(conn, include=True):
    w = Writer(True)
    _, resp = conn.request(DESCRIBE_CLUSTER, 0, boolean(include) + w.tags())
    r = Reader(resp, True)
    r.i32()
    error, _, _, _ = r.i16(), r.string(), r.string(), r.i32()
    r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string(), r.tags()))
    return error, r.i32()


def describe_group_ops(conn, group):
    w = Writer(True)
    _, resp = conn.request(DESCRIBE_GROUPS, 5, w.array([group], w.string) + boolean(True) + w.tags())
    r = Reader(resp, True)
    r.i32()

    def g(r):
        error, gid, _, _, _ = r.i16(), r.string(), r.string(), r.string(), r.string()
        r.array(lambda r: (r.string(), r.string(), r.string(), r.string(), r.bytes(), r.bytes(), r.tags()))
        ops = r.i32()
        r.tags()
        return gid, error, ops

    return {gid: (error, ops) for gid, error, ops in r.array(g)}


def raw_batches(conn, topic, partition=0):
    """Every stored batch of the partition as (attributes, producer id, epoch, base sequence, base offset)."""
    _, body = conn.request(kw.FETCH, 11, kw.fetch_request(11, topic, partition, 0, max_bytes=4 << 20))
    (_, error, _, records), = kw.parse_fetch(body, 11)
    assert error == 0, error
    out = []
    pos = 0
    while pos + 61 <= len(records):
        r = Reader(records[pos:])
        base, length = r.i64(), r.i32()
        r.i32(), r.i8(), r.i32()
        attrs = r.i16()
        r.i32(), r.i64(), r.i64()
        pid, epoch, seq = r.i64(), r.i16(), r.i32()
        out.append((attrs, pid, epoch, seq, base))
        pos += 12 + length
    return out


def gzip_batch(recs, base_ts, **kwargs):
    section = kw.records_section(recs, base_ts)
    z = zlib.compressobj(wbits=31)
    body = z.compress(section) + z.flush()
    return kw.batch_around(body, len(recs), base_ts, max(r[3] for r in recs), attributes=1, **kwargs)


# -- the cases ------------------------------------------------------------------------------


class AdminApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="admin-api-itest-")
        cls.data_dir = os.path.join(cls.tmp, "data")
        cls.start_server()
        cls.admin = AdminClient({"bootstrap.servers": cls.srv.bootstrap})

    @classmethod
    def start_server(cls):
        cls.srv = harness.RunnelServer(BINARY, name="admin-api", data_dir=cls.data_dir, extra_args=[
            "--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0", "--sasl-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512",
            "--group-initial-rebalance-delay-ms", "0",
        ]).start()
        cls.sasl_port = harness.listener_port(cls.srv, "SASL_PLAINTEXT")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def conn(self):
        c = kw.Connection(self.srv.port)
        self.addCleanup(c.close)
        return c

    def create(self, name, config=None):
        futures = self.admin.create_topics([NewTopic(name, 1, 1, config=config or {})], request_timeout=30)
        futures[name].result(timeout=30)

    def describe(self, rtype, name):
        f = self.admin.describe_configs([ConfigResource(rtype, name)], request_timeout=30)
        (res, fut), = f.items()
        return {k: v for k, v in fut.result(timeout=30).items()}

    # -- AlterConfigs ----------------------------------------------------------------------

    def test_alter_configs_replaces_the_topic_set(self):
        self.create("ac-topic", {"retention.ms": "60000", "cleanup.policy": "compact"})
        res = ConfigResource("topic", "ac-topic", set_config={"compression.type": "gzip", "flush.ms": "12345678"})
        self.admin.alter_configs([res], request_timeout=30)[res].result(timeout=30)
        got = self.describe("topic", "ac-topic")
        self.assertEqual(got["compression.type"].value, "gzip")
        self.assertEqual(got["flush.ms"].value, "12345678")
        self.assertEqual(got["retention.ms"].value, "604800000", "not in the set: back to the default")
        self.assertEqual(got["cleanup.policy"].value, "delete")
        self.assertFalse(got["compression.type"].is_default)

        # validate_only checks and changes nothing; a bad value fails the whole resource.
        res = ConfigResource("topic", "ac-topic", set_config={"compression.type": "lz4"})
        self.admin.alter_configs([res], validate_only=True, request_timeout=30)[res].result(timeout=30)
        self.assertEqual(self.describe("topic", "ac-topic")["compression.type"].value, "gzip")
        res = ConfigResource("topic", "ac-topic", set_config={"compression.type": "lz4", "retention.ms": "soon"})
        with self.assertRaises(KafkaException) as e:
            self.admin.alter_configs([res], request_timeout=30)[res].result(timeout=30)
        self.assertEqual(e.exception.args[0].code(), 40, e.exception)  # INVALID_CONFIG
        self.assertEqual(self.describe("topic", "ac-topic")["compression.type"].value, "gzip")

        res = ConfigResource("topic", "ac-no-such-topic", set_config={"compression.type": "lz4"})
        with self.assertRaises(KafkaException) as e:
            self.admin.alter_configs([res], request_timeout=30)[res].result(timeout=30)
        self.assertEqual(e.exception.args[0].code(), kw.UNKNOWN_TOPIC_OR_PARTITION, e.exception)

    def test_alter_configs_of_the_broker_keeps_dynamic_configs(self):
        res = ConfigResource("broker", "0", set_config={"sasl.kerberos.min.time.before.relogin": "58000"})
        self.admin.alter_configs([res], request_timeout=30)[res].result(timeout=30)
        got = self.describe("broker", "0")
        self.assertEqual(got["sasl.kerberos.min.time.before.relogin"].value, "58000")
        self.assertEqual(got["num.partitions"].source, 4, "a flag stays STATIC_BROKER_CONFIG")
        res = ConfigResource("broker", "0", set_config={"background.threads": "9"})
        self.admin.alter_configs([res], request_timeout=30)[res].result(timeout=30)
        got = self.describe("broker", "0")
        self.assertNotIn("sasl.kerberos.min.time.before.relogin", got, "AlterConfigs replaces the set")
        self.assertEqual(got["background.threads"].value, "9")
        self.assertEqual(got["background.threads"].source, 2)  # DYNAMIC_BROKER_CONFIG
        # Runnel's flags are static: INVALID_REQUEST, as Kafka answers for static configs.
        res = ConfigResource("broker", "0", set_config={"num.partitions": "3"})
        with self.assertRaises(KafkaException) as e:
            self.admin.alter_configs([res], request_timeout=30)[res].result(timeout=30)
        self.assertEqual(e.exception.args[0].code(), kw.INVALID_REQUEST, e.exception)
        # Another broker's configs: the client would wait for broker 7 to appear, so the request
        # goes to this broker raw, and it refuses the name.
        body = (kw.array([(4, "7")], lambda res: kw.i8(res[0]) + kw.string(res[1]) +
                         kw.array([("background.threads", "9")], lambda kv: kw.string(kv[0]) + kw.string(kv[1])))
                + kw.boolean(False))
        _, resp = self.conn().request(ALTER_CONFIGS, 0, body)
        r = kw.Reader(resp)
        r.i32()
        [(error, message, _, name)] = r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string()))
        self.assertEqual((error, name), (kw.INVALID_REQUEST, "7"), message)

    # -- compression.type --------------------------------------------------------------------

    def test_zstd_topic_stores_zstd_batches_and_consumers_read_them(self):
        self.create("zstd-topic", {"compression.type": "zstd"})
        self.assertEqual(self.describe("topic", "zstd-topic")["compression.type"].value, "zstd")
        c = self.conn()
        recs = [(b"k%d" % i, b"value-%d" % i * 20, [], 1_700_000_000_000 + i) for i in range(20)]
        err, base, msg = kw.parse_produce(c.request(kw.PRODUCE, 9, kw.produce_request(
            9, "zstd-topic", 0, kw.record_batch(recs[:10])))[1], 9)[0][2:]
        self.assertEqual(err, 0, msg)
        err, base, msg = kw.parse_produce(c.request(kw.PRODUCE, 9, kw.produce_request(
            9, "zstd-topic", 0, gzip_batch(recs[10:], recs[10][3])))[1], 9)[0][2:]
        self.assertEqual((err, base), (0, 10), msg)
        batches = raw_batches(c, "zstd-topic")
        self.assertEqual([b[0] & 7 for b in batches], [4, 4], "both stored as zstd")
        self.assertEqual([b[4] for b in batches], [0, 10])
        # Librdkafka-based producers compress with their own codec; the topic's wins.
        p = Producer({"bootstrap.servers": self.srv.bootstrap, "compression.type": "lz4", "linger.ms": 5,
                      "enable.idempotence": True})
        for i in range(20, 30):
            p.produce("zstd-topic", key=b"k%d" % i, value=b"value-%d" % i * 20, partition=0)
        self.assertEqual(p.flush(30), 0)
        batches = raw_batches(c, "zstd-topic")
        self.assertTrue(all(b[0] & 7 == 4 for b in batches), batches)
        self.assertTrue(any(b[1] >= 0 for b in batches[2:]), "the idempotent producer's id is kept")
        cons = Consumer({"bootstrap.servers": self.srv.bootstrap, "group.id": "zstd-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            cons.assign([TopicPartition("zstd-topic", 0, 0)])
            got = []
            deadline = harness.Deadline(30, "reading the zstd topic")
            while len(got) < 30:
                deadline.check(f"{len(got)} of 30 records")
                m = cons.poll(0.5)
                if m is not None and not m.error():
                    got.append((m.offset(), m.key(), m.value()))
        finally:
            cons.close()
        self.assertEqual([o for o, _, _ in got], list(range(30)))
        self.assertEqual([(k, v) for _, k, v in got[:20]], [(k, v) for k, v, _, _ in recs])

    # -- ListOffsets MAX_TIMESTAMP -----------------------------------------------------------

    def test_list_offsets_max_timestamp_matches_a_scan(self):
        self.create("max-ts")
        c = self.conn()
        base = 1_700_000_000_000
        # librdkafka's case (+100, +400, +250: offset 1), then more batches, some compressed,
        # with the largest timestamp reached twice (the first one is the answer).
        layout = [[100, 400, 250], [50, 60], [900, 10, 900], [300], [900, 899]]
        scan = []
        for i, stamps in enumerate(layout):
            recs = [(None, b"v", [], base + t) for t in stamps]
            batch = gzip_batch(recs, min(r[3] for r in recs)) if i % 2 else kw.record_batch(recs)
            (_, _, err, _, msg), = kw.parse_produce(c.request(kw.PRODUCE, 9, kw.produce_request(
                9, "max-ts", 0, batch))[1], 9)
            self.assertEqual(err, 0, msg)
            scan += [base + t for t in stamps]
        best = max(range(len(scan)), key=lambda i: (scan[i], -i))
        self.assertEqual(list_offsets(c, "max-ts", 0, -3), (0, best, scan[best]))
        self.assertEqual(best, 5)
        # Before v7 -3 is no query of its own: it finds the first record at or after -3.
        self.assertEqual(list_offsets(c, "max-ts", 0, -3, version=6)[1], 0)
        self.create("max-ts-empty")
        self.assertEqual(list_offsets(c, "max-ts-empty", 0, -3), (0, -1, -1))

    # -- SCRAM credentials -------------------------------------------------------------------

    def test_scram_credentials_upsert_describe_delete_and_log_in(self):
        c = self.conn()
        got = alter_scram(c, upsertions=[salted_upsertion("dora", SHA256, "first pass"),
                                         salted_upsertion("dora", SHA512, "first pass", 8192)])
        self.assertEqual(got, {"dora": (DUPLICATE_RESOURCE, got["dora"][1])}, "one user twice")
        got = alter_scram(c, upsertions=[salted_upsertion("dora", SHA256, "first pass", 8192),
                                         salted_upsertion("erin", SHA512, "erin pass")])
        self.assertEqual({u: e for u, (e, _) in got.items()}, {"dora": 0, "erin": 0})
        err, users = describe_scram(c, ["dora", "erin", "nobody"])
        self.assertEqual(err, 0)
        self.assertEqual(users["dora"], (0, {SHA256: 8192}))
        self.assertEqual(users["erin"], (0, {SHA512: 4096}))
        self.assertEqual(users["nobody"][0], RESOURCE_NOT_FOUND)
        err, everyone = describe_scram(c)
        self.assertEqual(err, 0)
        self.assertIn("dora", everyone)

        # Per-user errors as Kafka answers them.
        got = alter_scram(c, deletions=[("nobody", SHA256), ("frank", 0)],
                          upsertions=[salted_upsertion("gina", SHA256, "x", iterations=4095),
                                      salted_upsertion("hank", SHA512, "x", iterations=16385),
                                      salted_upsertion("", SHA256, "x")])
        self.assertEqual({u: e for u, (e, _) in got.items()},
                         {"nobody": RESOURCE_NOT_FOUND, "frank": UNSUPPORTED_SASL_MECHANISM,
                          "gina": UNACCEPTABLE_CREDENTIAL, "hank": UNACCEPTABLE_CREDENTIAL,
                          "": UNACCEPTABLE_CREDENTIAL})

        # The next login uses the new password, without a restart.
        self.assertEqual(self.scram_login("dora", "first pass", "SCRAM-SHA-256"), None)
        self.assertIsNotNone(self.scram_login("dora", "wrong pass", "SCRAM-SHA-256"))
        got = alter_scram(c, upsertions=[salted_upsertion("dora", SHA256, "second pass", salt=b"other salt")])
        self.assertEqual(got["dora"][0], 0)
        self.assertIsNotNone(self.scram_login("dora", "first pass", "SCRAM-SHA-256"))
        self.assertEqual(self.scram_login("dora", "second pass", "SCRAM-SHA-256"), None)

        got = alter_scram(c, deletions=[("erin", SHA512)])
        self.assertEqual(got["erin"][0], 0)
        self.assertEqual(describe_scram(c, ["erin"])[1]["erin"][0], RESOURCE_NOT_FOUND)
        self.assertIsNotNone(self.scram_login("erin", "erin pass", "SCRAM-SHA-512"))

        # Durable: the file holds keys, never the password, and a restarted server knows dora.
        with open(os.path.join(self.data_dir, "security", "scram-credentials")) as f:
            self.assertNotIn("second pass", f.read())
        type(self).srv.stop()
        type(self).start_server()
        type(self).admin = AdminClient({"bootstrap.servers": self.srv.bootstrap})
        self.assertEqual(describe_scram(self.conn(), ["dora"])[1]["dora"], (0, {SHA256: 4096}))
        self.assertEqual(self.scram_login("dora", "second pass", "SCRAM-SHA-256"), None)

    def scram_login(self, user, password, mechanism):
        """None when a SCRAM login on the SASL listener succeeds, else the error: the client's
        authentication error as soon as it reports one, or the last failure after 30 s."""
        errors = []
        a = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password,
                         "error_cb": errors.append})
        deadline = time.monotonic() + 30
        while True:
            try:
                a.list_topics(timeout=1)
                return None
            except KafkaException as e:
                a.poll(0)
                refused = [x for x in errors if x.code() == KafkaError._AUTHENTICATION]
                if refused:
                    return refused[0]
                if time.monotonic() > deadline:
                    return e

    # -- authorized operations ---------------------------------------------------------------

    def test_authorized_operations_without_an_authorizer_are_every_operation(self):
        self.create("ops-topic")
        c = self.conn()
        cluster, topics = metadata_ops(c, "ops-topic")
        self.assertEqual(ops_of(topics["ops-topic"][1]), TOPIC_OPS)
        self.assertEqual(len(TOPIC_OPS), 8)
        self.assertEqual(ops_of(cluster), CLUSTER_OPS)
        self.assertEqual(describe_cluster_ops(c), (0, bits(CLUSTER_OPS)))
        self.assertEqual(describe_cluster_ops(c, include=False), (0, NOT_ASKED))
        p = Producer({"bootstrap.servers": self.srv.bootstrap})
        p.produce("ops-topic", b"x")
        p.flush(30)
        cons = Consumer({"bootstrap.servers": self.srv.bootstrap, "group.id": "ops-group",
                         "auto.offset.reset": "earliest"})
        try:
            cons.subscribe(["ops-topic"])
            deadline = harness.Deadline(30, "the consumer joining")
            while cons.poll(0.5) is None:
                deadline.check()
            self.assertEqual(describe_group_ops(c, "ops-group")["ops-group"], (0, bits(GROUP_OPS)))
        finally:
            cons.close()


def runnel_acl(data_dir, *args):
    p = subprocess.run([BINARY, "acl", *args, "--data-dir", data_dir], text=True, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr


class AuthorizedOperationsWithAclsTest(unittest.TestCase):
    """`--authorizer acl`: the bit sets hold what the ACLs allow the principal (ANONYMOUS here)."""

    def test_bits_follow_the_acls(self):
        tmp = tempfile.mkdtemp(prefix="admin-api-acl-itest-")
        self.addCleanup(shutil.rmtree, tmp, True)
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        runnel_acl(data, "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Read", "--topic", "seen")
        runnel_acl(data, "add", "--allow-principal", "User:ANONYMOUS", "--operation", "ALTER_CONFIGS",
                   "--topic", "seen")
        runnel_acl(data, "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Create", "--cluster")
        runnel_acl(data, "add", "--allow-principal", "User:ANONYMOUS", "--operation", "Describe", "--cluster")
        with harness.RunnelServer(BINARY, name="admin-api-acl", data_dir=data,
                                  extra_args=["--authorizer", "acl"]) as srv:
            with kw.Connection(srv.port) as c:
                _, body = c.request(kw.CREATE_TOPICS, 4, kw.create_topics_request(4, [("seen", 1, -1, {})]))
                self.assertEqual(kw.parse_create_topics(body, 4)["seen"][0], kw.NONE)
                cluster, topics = metadata_ops(c, "seen")
                # READ implies DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS (Kafka's rule).
                self.assertEqual(ops_of(topics["seen"][1]), {READ, DESCRIBE, ALTER_CONFIGS_OP, DESCRIBE_CONFIGS_OP})
                self.assertEqual(ops_of(cluster), {CREATE, DESCRIBE})
                self.assertEqual(describe_cluster_ops(c), (0, bits({CREATE, DESCRIBE})))
                # SCRAM credentials need ALTER / DESCRIBE on the cluster.
                got = alter_scram(c, upsertions=[salted_upsertion("ivy", SHA256, "x")])
                self.assertEqual(got["ivy"][0], 31)  # CLUSTER_AUTHORIZATION_FAILED
                self.assertEqual(describe_scram(c, ["ivy"])[1]["ivy"][0], RESOURCE_NOT_FOUND)


class ReplicationFactorTest(unittest.TestCase):
    def test_replication_factor_above_one_is_refused_unless_the_server_accepts_any(self):
        """A single node refuses replication factor 3 as a single Kafka broker does; with
        `--accept-any-replication-factor` (client test suites written for three brokers) it
        creates the topic with its one replica."""
        create = lambda c, name: kw.parse_create_topics(
            c.request(kw.CREATE_TOPICS, 5, kw.create_topics_request(5, [(name, 2, 3, {})]))[1], 5)[name]
        tmp = tempfile.mkdtemp(prefix="admin-api-rf-itest-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        with harness.RunnelServer(BINARY, name="admin-api-rf-refused", data_dir=os.path.join(tmp, "a")) as srv:
            with kw.Connection(srv.port) as c:
                error, message, _ = create(c, "rf3-refused")
                self.assertEqual(error, 38, message)  # INVALID_REPLICATION_FACTOR
                self.assertIn("replication factor 3", message)
        with harness.RunnelServer(BINARY, name="admin-api-rf", data_dir=os.path.join(tmp, "b"),
                                  extra_args=["--accept-any-replication-factor"]) as srv:
            with kw.Connection(srv.port) as c:
                error, message, _ = create(c, "rf3-accepted")
                self.assertEqual(error, kw.NONE, message)
                _, body = c.request(kw.METADATA, 4, kw.metadata_request(4, ["rf3-accepted"], False))
                self.assertEqual(kw.parse_metadata(body, 4)[0]["rf3-accepted"], (kw.NONE, 2))


if __name__ == "__main__":
    harness.run_unittests("admin_api_test")
