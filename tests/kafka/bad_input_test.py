#!/usr/bin/python3
"""Bad input over the Kafka protocol never takes down `runnel serve` or other connections.

One server (auto-creation off) for the whole class. A healthy kafka-python producer and
consumer connect before the first case and stay connected; after every case they must still
produce and consume, and the server must still run. Each case sends hand-encoded bytes
(kafka_wire.py) and checks exactly what the server answers: a closed connection for frames
it cannot read, or the Kafka error code for requests it can.

Run: /usr/bin/python3 bad_input_test.py --runnel PATH [unittest options]
"""

import os
import struct
import sys
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

BINARY = None
HEALTHY_TOPIC = "healthy"
MAX_FRAME = 100 * 1024 * 1024  # server_config::max_frame_bytes (Kafka's socket.request.max.bytes)


def now_ms():
    return int(time.time() * 1000)


def gzip_bytes(data):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing, as Kafka clients send
    return c.compress(data) + c.flush()


def gzip_bomb_batch(inflated_bytes):
    """A gzip batch of one record whose value is `inflated_bytes` zeros, compressed while it is
    written (the test never holds the inflated bytes)."""
    ts = now_ms()
    fields = b"\x00" + kw.varint(0) + kw.varint(0) + kw.varint(-1) + kw.varint(inflated_bytes)
    tail = kw.varint(0)  # no headers
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(kw.varint(len(fields) + inflated_bytes + len(tail)) + fields)]
    zeros = bytes(1 << 20)
    for _ in range(inflated_bytes >> 20):
        out.append(c.compress(zeros))
    out.append(c.compress(tail))
    out.append(c.flush())
    return kw.batch_around(b"".join(out), 1, ts, ts, attributes=1)


def peak_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def small_batch(n=3, tag=b"x", size=10):
    ts = now_ms()
    return kw.record_batch([(b"k%d" % i, tag * size, [("h", b"v")], ts + i) for i in range(n)])


class BadInputTest(unittest.TestCase):
    srv = None

    @classmethod
    def setUpClass(cls):
        cls.srv = harness.RunnelServer(BINARY, name="bad-input", auto_create_topics=False).start()
        try:
            admin = KafkaAdminClient(bootstrap_servers=cls.srv.bootstrap, client_id="itest-healthy-admin")
            admin.create_topics([NewTopic(HEALTHY_TOPIC, num_partitions=2, replication_factor=1)])
            admin.close()
            cls.producer = KafkaProducer(bootstrap_servers=cls.srv.bootstrap, client_id="itest-healthy-producer",
                                         acks="all", linger_ms=0)
            cls.consumer = KafkaConsumer(bootstrap_servers=cls.srv.bootstrap, client_id="itest-healthy-consumer",
                                         group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100)
            cls.tps = [TopicPartition(HEALTHY_TOPIC, p) for p in range(2)]
            cls.consumer.assign(cls.tps)
            cls.consumer.seek_to_beginning(*cls.tps)
            # Two raw connections held open from the start (the server hands connections to its
            # shards in turn, so one per shard): a case must not close anyone else's connection.
            cls.bystanders = [kw.Connection(cls.srv.port, client_id=f"itest-bystander-{i}") for i in range(2)]
            cls.round = 0
            cls.check_healthy_clients()
        except BaseException:
            cls.srv.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.producer.close(timeout=10)
        cls.consumer.close()
        for c in cls.bystanders:
            c.close()
        cls.srv.stop(check=True)

    @classmethod
    def check_healthy_clients(cls):
        """The long-lived healthy producer and consumer still work (20 new records go in and
        come back, in order per key), and the bystander connections still get answers."""
        cls.round += 1
        tag = b"round-%d-" % cls.round
        futures = [cls.producer.send(HEALTHY_TOPIC, key=b"k%d" % (i % 4), value=tag + b"%d" % i) for i in range(20)]
        cls.producer.flush(timeout=20)
        for f in futures:
            f.get(timeout=1)
        got = []
        deadline = harness.Deadline(20, f"healthy consumer to receive round {cls.round}")
        while len(got) < 20:
            deadline.check(f"({len(got)} of 20)")
            for msgs in cls.consumer.poll(timeout_ms=200).values():
                got.extend((m.key, int(m.value[len(tag):])) for m in msgs if m.value.startswith(tag))
        assert sorted(i for _, i in got) == list(range(20)), f"healthy consumer got {got}"
        for key in {k for k, _ in got}:
            seq = [i for k, i in got if k == key]
            assert seq == sorted(seq), f"key {key!r}: records came back as {seq}"
        for c in cls.bystanders:
            _, body = c.request(kw.API_VERSIONS, 0, b"")
            assert kw.parse_api_versions(body, 0)[0] == kw.NONE
        cls.srv.assert_alive()

    def setUp(self):
        self.srv.assert_alive()

    def tearDown(self):
        # Every case ends with the server and the other clients still working.
        type(self).check_healthy_clients()

    def conn(self):
        c = kw.Connection(self.srv.port)
        self.addCleanup(c.close)
        return c

    def produce(self, version, topic, partition, records, acks=-1):
        c = self.conn()
        _, body = c.request(kw.PRODUCE, version, kw.produce_request(version, topic, partition, records, acks))
        results = kw.parse_produce(body, version)
        self.assertEqual(len(results), 1, results)
        return results[0]

    def create_topic(self, name, partitions=1, configs=None, version=4):
        c = self.conn()
        _, body = c.request(kw.CREATE_TOPICS, version,
                            kw.create_topics_request(version, [(name, partitions, -1, configs or {})]))
        return kw.parse_create_topics(body, version)[name]

    def metadata(self, version, topics, allow_auto_create=True):
        c = self.conn()
        _, body = c.request(kw.METADATA, version, kw.metadata_request(version, topics, allow_auto_create))
        return kw.parse_metadata(body, version)[0]

    def end_offset(self, topic, partition):
        tp = TopicPartition(topic, partition)
        return self.consumer.end_offsets([tp])[tp]

    def advertised(self):
        c = self.conn()
        _, body = c.request(kw.API_VERSIONS, 0, b"")
        error, apis = kw.parse_api_versions(body, 0)
        self.assertEqual(error, kw.NONE)
        return apis

    # -- frames the server cannot read: that connection closes -------------------------------

    def test_frame_larger_than_maximum_closes_connection(self):
        c = self.conn()
        size = 200 * 1024 * 1024
        c.send_raw(struct.pack(">i", size) + b"\x00\x03\x00\x01" + b"\x00" * 60)
        c.expect_closed()
        self.srv.wait_for_log(rf"frame of {size} bytes \(limit {MAX_FRAME}\)")

    def test_negative_frame_size_closes_connection(self):
        c = self.conn()
        c.send_raw(struct.pack(">i", -5) + b"\x00" * 16)
        c.expect_closed()
        self.srv.wait_for_log(r"frame of -5 bytes")

    def test_garbage_header_closes_connection(self):
        cases = {
            "empty frame": b"",
            "three bytes": b"\xff\xfe\x00",
            "no correlation id": b"\x00\x03\x00\x01\x00",
            "client id longer than the frame": b"\x00\x03\x00\x01\x00\x00\x00\x07\x7f\xff" + b"abc",
            "flexible header with a truncated tag section": (b"\x00\x03\x00\x09\x00\x00\x00\x07\x00\x02id"
                                                             + b"\x05\x01"),
        }
        for what, frame in cases.items():
            with self.subTest(what):
                c = self.conn()
                c.send_frame(frame)
                c.expect_closed()
        self.srv.wait_for_log(r"undecodable request header")

    def test_undecodable_body_closes_connection(self):
        # Metadata v4 whose topic array claims 5 entries and holds none.
        c = self.conn()
        c.send_request(kw.METADATA, 4, kw.i32(5))
        c.expect_closed()
        self.srv.wait_for_log(r"cannot decode api 3 v4")

    # -- requests the server can read: Kafka error codes -------------------------------------

    def test_corrupt_crc_is_corrupt_message(self):
        topic = "crc-check"
        self.assertEqual(self.create_topic(topic)[0], kw.NONE)
        good = small_batch()
        for version in (3, 8, 9):
            for what, bad in (("stored CRC changed", kw.corrupt_crc(good)),
                              ("record byte changed", kw.corrupt_payload(good))):
                with self.subTest(version=version, case=what):
                    _, partition, error, base, _ = self.produce(version, topic, 0, bad)
                    self.assertEqual(partition, 0)
                    self.assertEqual(error, kw.CORRUPT_MESSAGE)
                    self.assertEqual(base, -1)
        self.assertEqual(self.end_offset(topic, 0), 0, "a corrupt batch must not be appended")
        # The same partition takes the intact batch afterwards.
        self.assertEqual(self.produce(3, topic, 0, good)[2:4], (kw.NONE, 0))
        self.assertEqual(self.end_offset(topic, 0), 3)

    def test_batch_above_max_message_bytes_is_message_too_large(self):
        topic = "small-messages"
        error, message, _ = self.create_topic(topic, configs={"max.message.bytes": "1000"})
        self.assertEqual(error, kw.NONE, message)
        # The flexible CreateTopics answer reports the config as set on the topic.
        error, message, configs = self.create_topic("small-messages-v7", configs={"max.message.bytes": "1000"},
                                                    version=7)
        self.assertEqual(error, kw.NONE, message)
        self.assertEqual(configs.get("max.message.bytes"), "1000", configs)

        big = kw.record_batch([(b"key", b"x" * 5000, [], now_ms())])
        self.assertGreater(len(big), 5000)
        for version in (3, 9):
            with self.subTest(version=version):
                _, _, error, base, _ = self.produce(version, topic, 0, big)
                self.assertEqual(error, kw.MESSAGE_TOO_LARGE)
                self.assertEqual(base, -1)
        fits = kw.record_batch([(b"key", b"y" * 500, [], now_ms())])
        self.assertLess(len(fits), 1000)
        self.assertEqual(self.produce(3, topic, 0, fits)[2:4], (kw.NONE, 0))
        self.assertEqual(self.end_offset(topic, 0), 1)

    def test_unsupported_api_or_version_answers_unsupported_version(self):
        apis = self.advertised()
        # What the server implements, as the task describes it; a narrower table is a regression.
        for key, (lo, hi) in {kw.PRODUCE: (3, 9), kw.FETCH: (4, 12), kw.LIST_OFFSETS: (1, 7), kw.METADATA: (0, 12),
                              kw.API_VERSIONS: (0, 3), kw.CREATE_TOPICS: (2, 7), kw.DELETE_TOPICS: (1, 6)}.items():
            self.assertIn(key, apis)
            self.assertLessEqual(apis[key][0], lo, f"api {key}")
            self.assertGreaterEqual(apis[key][1], hi, f"api {key}")
        cases = [(999, 0), (-1, 0), (kw.PRODUCE, 2), (kw.METADATA, 13)]
        # Just outside every advertised range (these move when the server grows).
        for key, (lo, hi) in apis.items():
            if key == kw.API_VERSIONS:
                continue
            cases.append((key, hi + 1))
            if lo > 0:
                cases.append((key, lo - 1))
        # An api key no one answers (the first of these that is not advertised).
        unadvertised = [k for k in (10, 11, 12, 13, 14, 15, 16, 9, 8) if k not in apis]
        if unadvertised:
            cases.append((unadvertised[0], 0))
        c = self.conn()
        for key, version in cases:
            if key in apis and apis[key][0] <= version <= apis[key][1]:
                continue  # the server grew to answer it
            with self.subTest(api_key=key, version=version):
                # A body the server must not try to read: it only looks at the header. The header
                # ends with an empty tag section, so it reads both as v1 (the 0 is then body)
                # and as v2, whichever the server expects for this key and version.
                correlation = c.send_request(key, version, b"\xde\xad\xbe\xef", flexible_header=True)
                frame = c.recv_frame()
                self.assertEqual(frame, struct.pack(">ih", correlation, kw.UNSUPPORTED_VERSION),
                                 "expected exactly the correlation id and error 35")
        # The connection stays usable after those answers.
        _, body = c.request(kw.API_VERSIONS, 0, b"")
        self.assertEqual(kw.parse_api_versions(body, 0)[0], kw.NONE)

    def test_api_versions_in_unknown_version_answers_v0_with_table(self):
        # As Kafka does: an ApiVersions the broker cannot read gets a v0 answer carrying
        # error 35 and the table, so the client can retry in a version both speak.
        c = self.conn()
        correlation = c.send_request(kw.API_VERSIONS, 99, b"\x00", flexible_header=True)
        frame = c.recv_frame()
        self.assertEqual(struct.unpack(">i", frame[:4])[0], correlation)
        error, apis = kw.parse_api_versions(frame[4:], 0)
        self.assertEqual(error, kw.UNSUPPORTED_VERSION)
        self.assertIn(kw.API_VERSIONS, apis)
        self.assertEqual(apis[kw.API_VERSIONS][0], 0)
        _, body = c.request(kw.API_VERSIONS, 3, kw.api_versions_request(3))
        self.assertEqual(kw.parse_api_versions(body, 3), (kw.NONE, apis))

    def test_unknown_topic_without_auto_creation(self):
        topic = "no-such-topic"
        for version in (3, 8, 9):
            with self.subTest(api="Produce", version=version):
                _, partition, error, base, _ = self.produce(version, topic, 0, small_batch())
                self.assertEqual((partition, error, base), (0, kw.UNKNOWN_TOPIC_OR_PARTITION, -1))
        for version in (1, 4, 9, 12):
            with self.subTest(api="Metadata", version=version):
                topics = self.metadata(version, [topic], allow_auto_create=True)
                self.assertEqual(topics, {topic: (kw.UNKNOWN_TOPIC_OR_PARTITION, 0)})
        self.assertNotIn(topic, self.metadata(1, None), "the unknown topic must not have been created")
        # A partition the topic does not have is unknown too.
        _, _, error, _, _ = self.produce(3, HEALTHY_TOPIC, 7, small_batch())
        self.assertEqual(error, kw.UNKNOWN_TOPIC_OR_PARTITION)

    def test_invalid_topic_name(self):
        names = ["bad/name", "..", "a b", "x" * 250]
        for name in names:
            for version in (1, 4, 12):
                with self.subTest(api="Metadata", version=version, name=name[:20]):
                    self.assertEqual(self.metadata(version, [name]), {name: (kw.INVALID_TOPIC_EXCEPTION, 0)})
            for version in (2, 4, 7):
                with self.subTest(api="CreateTopics", version=version, name=name[:20]):
                    error, message, _ = self.create_topic(name, version=version)
                    self.assertEqual(error, kw.INVALID_TOPIC_EXCEPTION)
                    self.assertTrue(message, "CreateTopics should say why the name is invalid")
        listed = self.metadata(1, None)
        for name in names:
            self.assertNotIn(name, listed)

    # -- batches that are well formed but break Kafka's rules for produced batches --------

    def test_refused_produce_appends_nothing(self):
        # One partition's records: a batch that fits, then one above max.message.bytes. As in
        # Kafka, a partition's records must be exactly one batch (INVALID_RECORD otherwise),
        # and a refused produce appends nothing, so a retrying client never duplicates data.
        topic = "refused-produce"
        self.assertEqual(self.create_topic(topic, configs={"max.message.bytes": "1000"})[0], kw.NONE)
        fits = kw.record_batch([(b"k", b"a" * 10, [], now_ms())])
        big = kw.record_batch([(b"k", b"b" * 5000, [], now_ms())])
        _, _, error, base, _ = self.produce(3, topic, 0, fits + big)
        self.assertIn(error, (kw.MESSAGE_TOO_LARGE, kw.INVALID_RECORD))
        self.assertEqual(base, -1)
        self.assertEqual(self.end_offset(topic, 0), 0, "an answer of MESSAGE_TOO_LARGE must append nothing")

    def test_batch_offset_range_must_match_record_count(self):
        # lastOffsetDelta + 1 must equal the record count, else INVALID_RECORD (87) and nothing
        # appended: otherwise the next batch's offsets would overlap these records.
        topic = "offset-range"
        self.assertEqual(self.create_topic(topic)[0], kw.NONE)
        recs = [(b"k%d" % i, b"v", [], now_ms()) for i in range(3)]
        for what, batch in (("count 5, lastOffsetDelta 2", kw.record_batch(recs, record_count=5)),
                            ("count 3, lastOffsetDelta 0", kw.record_batch(recs, last_offset_delta=0)),
                            ("count 3, lastOffsetDelta 99", kw.record_batch(recs, last_offset_delta=99))):
            _, _, error, base, _ = self.produce(3, topic, 0, batch)
            self.assertEqual((error, base), (kw.INVALID_RECORD, -1), what)
        self.assertEqual(self.end_offset(topic, 0), 0)

    def test_undecodable_records_with_valid_crc_are_rejected(self):
        # The CRC covers the bytes, not their meaning: the records of every uncompressed batch
        # are decoded and malformed ones refused (INVALID_RECORD 87; CORRUPT_MESSAGE 2 also fine).
        topic = "garbage-records"
        self.assertEqual(self.create_topic(topic)[0], kw.NONE)
        bad = kw.scramble_records(kw.record_batch([(b"k", b"v" * 20, [], now_ms())]))
        _, _, error, base, _ = self.produce(3, topic, 0, bad)
        self.assertIn(error, (kw.INVALID_RECORD, kw.CORRUPT_MESSAGE))
        self.assertEqual(base, -1)
        self.assertEqual(self.end_offset(topic, 0), 0)

    def test_compressed_batches_are_inflated_and_checked_before_append(self):
        # The CRC covers compressed bytes, not whether they inflate: a body its codec cannot
        # read, or an unknown codec (attribute bits 5..7), is CORRUPT_MESSAGE and appends nothing.
        topic = "undecodable-compressed"
        self.assertEqual(self.create_topic(topic)[0], kw.NONE)
        ts = now_ms()
        recs = [(b"k%d" % i, b"value-%d" % i, [("h", b"v")], ts + i) for i in range(5)]
        section = kw.records_section(recs, ts)
        garbage = bytes((i * 37 + 11) % 256 for i in range(300))
        truncated = gzip_bytes(section)[:-12]
        cases = {"gzip garbage": (1, garbage), "gzip truncated": (1, truncated), "snappy garbage": (2, garbage),
                 "lz4 garbage": (3, garbage), "zstd garbage": (4, garbage), "codec 5": (5, section),
                 "codec 7": (7, section)}
        for what, (codec, body) in cases.items():
            with self.subTest(what):
                batch = kw.batch_around(body, len(recs), ts, ts + 4, attributes=codec)
                _, _, error, base, _ = self.produce(9, topic, 0, batch)
                self.assertEqual((error, base), (kw.CORRUPT_MESSAGE, -1))
        self.assertEqual(self.end_offset(topic, 0), 0, "an undecodable batch must not be appended")
        # The same records gzip'd properly go in, and a consumer reads them back.
        good = kw.batch_around(gzip_bytes(section), len(recs), ts, ts + 4, attributes=1)
        self.assertEqual(self.produce(9, topic, 0, good)[2:4], (kw.NONE, 0))
        self.assertEqual([m.value for m in self.read_all(topic, 5)], [r[1] for r in recs])

    def test_gzip_bomb_is_refused_within_the_inflation_bound(self):
        # 1 GiB of zeros gzip'd to about 1 MiB: inflating stops at --kafka-max-inflated-batch-bytes
        # (64 MiB by default), so the server's peak RSS grows by far less than the bomb.
        topic = "gzip-bomb"
        self.assertEqual(self.create_topic(topic, configs={"max.message.bytes": str(8 << 20)})[0], kw.NONE)
        bomb = gzip_bomb_batch(1 << 30)
        self.assertLess(len(bomb), 4 << 20)
        before = peak_rss_bytes(self.srv.proc.pid)
        _, _, error, base, _ = self.produce(9, topic, 0, bomb)
        grew = peak_rss_bytes(self.srv.proc.pid) - before
        print(f"gzip bomb: {len(bomb)} bytes compressed, peak RSS grew {grew / 2**20:.1f} MiB", file=sys.stderr)
        self.assertEqual((error, base), (kw.INVALID_RECORD, -1))
        self.assertLess(grew, 256 << 20, "inflating the bomb must stop at the bound")
        self.assertEqual(self.end_offset(topic, 0), 0)

    def test_records_sharing_an_offset_are_invalid_record(self):
        # Two records at offsetDelta 0 (uncompressed and gzip'd): INVALID_RECORD, nothing
        # appended; the next good batch goes in at offset 0 and a consumer reads each record once.
        topic = "offset-deltas"
        self.assertEqual(self.create_topic(topic)[0], kw.NONE)
        ts = now_ms()
        recs = [(b"k%d" % i, b"dup-%d" % i, [], ts) for i in range(3)]
        plain = kw.record_batch(recs, offset_deltas=[0, 0, 1])
        section = kw.records_section(recs, ts, offset_deltas=[0, 0, 1])
        gz = kw.batch_around(gzip_bytes(section), 3, ts, ts, attributes=1)
        skipping = kw.record_batch(recs, offset_deltas=[0, 2, 1])
        for what, batch in (("plain", plain), ("gzip", gz), ("out of order", skipping)):
            with self.subTest(what):
                _, _, error, base, _ = self.produce(9, topic, 0, batch)
                self.assertEqual((error, base), (kw.INVALID_RECORD, -1))
        self.assertEqual(self.end_offset(topic, 0), 0)
        good = [(b"k%d" % i, b"good-%d" % i, [], ts) for i in range(3)]
        self.assertEqual(self.produce(9, topic, 0, kw.record_batch(good))[2:4], (kw.NONE, 0))
        got = self.read_all(topic, 3)
        self.assertEqual([(m.offset, m.value) for m in got], [(i, b"good-%d" % i) for i in range(3)])

    def test_malformed_record_fields_are_invalid_record(self):
        topic = "record-fields"
        self.assertEqual(self.create_topic(topic)[0], kw.NONE)
        ts = now_ms()
        # A record whose key length runs past the record, a six-byte varint, a null header key.
        key_past = b"\x00" + kw.varint(0) + kw.varint(0) + kw.varint(50) + b"abc"
        long_varint = b"\x00" + kw.varint(0) + b"\x80\x80\x80\x80\x80\x00" + kw.varint(-1) * 2 + kw.varint(0)
        null_header = b"\x00" + kw.varint(0) + kw.varint(0) + kw.varint(-1) * 2 + kw.varint(1) + kw.varint(-1) * 2
        for what, rec in (("key past record", key_past), ("six-byte varint", long_varint),
                          ("null header key", null_header)):
            with self.subTest(what):
                batch = kw.batch_around(kw.varint(len(rec)) + rec, 1, ts, ts)
                _, _, error, base, _ = self.produce(9, topic, 0, batch)
                self.assertEqual((error, base), (kw.INVALID_RECORD, -1))
        with self.subTest("LogAppendTime set by the producer"):
            batch = kw.record_batch([(b"k", b"v", [], ts)], attributes=0x08)
            self.assertEqual(self.produce(9, topic, 0, batch)[2], kw.INVALID_RECORD)
        with self.subTest("record after maxTimestamp"):
            section = kw.records_section([(b"k", b"v", [], ts + 5000)], ts)
            self.assertEqual(self.produce(9, topic, 0, kw.batch_around(section, 1, ts, ts))[2], kw.INVALID_RECORD)
        self.assertEqual(self.end_offset(topic, 0), 0)

    def read_all(self, topic, n, timeout=20):
        """The first `n` records of partition 0 of `topic`, read by a fresh kafka-python consumer."""
        consumer = KafkaConsumer(bootstrap_servers=self.srv.bootstrap, group_id=None, enable_auto_commit=False,
                                 fetch_max_wait_ms=100)
        self.addCleanup(consumer.close)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        deadline = harness.Deadline(timeout, f"{n} records from {topic}")
        while len(got) < n:
            deadline.check(f"({len(got)} so far)")
            for msgs in consumer.poll(timeout_ms=200).values():
                got.extend(msgs)
        return got

    def test_client_control_batch_is_invalid_record(self):
        # Kafka: "Clients are not allowed to write control records" -> INVALID_RECORD (87).
        topic = "control-batch"
        self.assertEqual(self.create_topic(topic)[0], kw.NONE)
        control = kw.record_batch([(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", [], now_ms())],
                                  attributes=0x20)
        _, _, error, base, _ = self.produce(3, topic, 0, control)
        self.assertEqual((error, base), (kw.INVALID_RECORD, -1))
        self.assertEqual(self.end_offset(topic, 0), 0)

    def test_invalid_required_acks(self):
        _, _, error, base, _ = self.produce(3, HEALTHY_TOPIC, 0, small_batch(), acks=2)
        self.assertEqual((error, base), (kw.INVALID_REQUIRED_ACKS, -1))


def main():
    global BINARY
    BINARY = harness.runnel_binary()
    harness.run_unittests("bad-input")


if __name__ == "__main__":
    main()
