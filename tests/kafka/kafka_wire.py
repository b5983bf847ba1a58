"""Kafka requests written byte by byte, for tests that must send what no client would.

Only what the bad-input tests need: the primitive types (classic and compact), request
headers v1 and v2, RecordBatch v2 with its CRC-32C, and encoders/decoders for ApiVersions,
Metadata, Produce and CreateTopics in one classic and one flexible version each, and a
Fetch v4 request. Field
layouts follow the Kafka message specs (clients/src/main/resources/common/message/*.json).
"""

import socket
import struct
import time

# -- CRC-32C (Castagnoli), reflected, table-driven ------------------------------------------

def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value"

# -- primitive encoding ---------------------------------------------------------------------


def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def u32(v):
    return struct.pack(">I", v)


def boolean(v):
    return b"\x01" if v else b"\x00"


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def varint(v):
    """Zig-zag signed varint (varlong too: Python ints have no width)."""
    return uvarint((v << 1) ^ (v >> 63))


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def nbytes(b):
    return i32(-1) if b is None else i32(len(b)) + b


def compact_bytes(b):
    return uvarint(0) if b is None else uvarint(len(b) + 1) + b


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def compact_array(items, enc):
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(enc(x) for x in items)


NO_TAGS = uvarint(0)
ZERO_UUID = bytes(16)


class Writer:
    """Encodes a message in either the classic or the flexible (compact) form."""

    def __init__(self, flexible):
        self.flexible = flexible

    def string(self, s):
        return compact_string(s) if self.flexible else string(s)

    def bytes(self, b):
        return compact_bytes(b) if self.flexible else nbytes(b)

    def array(self, items, enc):
        return compact_array(items, enc) if self.flexible else array(items, enc)

    def tags(self):
        return NO_TAGS if self.flexible else b""


# -- decoding -------------------------------------------------------------------------------


class Reader:
    def __init__(self, data, flexible=False):
        self.data = data
        self.pos = 0
        self.flexible = flexible

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError(f"response ends at byte {len(self.data)}, needed {self.pos + n}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self._take(1))[0]

    def i16(self):
        return struct.unpack(">h", self._take(2))[0]

    def i32(self):
        return struct.unpack(">i", self._take(4))[0]

    def i64(self):
        return struct.unpack(">q", self._take(8))[0]

    def boolean(self):
        return self._take(1) != b"\x00"

    def uuid(self):
        return self._take(16)

    def uvarint(self):
        shift = 0
        v = 0
        while True:
            b = self._take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def string(self):
        if self.flexible:
            n = self.uvarint() - 1
        else:
            n = self.i16()
        return None if n < 0 else self._take(n).decode()

    def bytes(self):
        n = self.uvarint() - 1 if self.flexible else self.i32()
        return None if n < 0 else self._take(n)

    def array(self, dec):
        n = self.uvarint() - 1 if self.flexible else self.i32()
        return None if n < 0 else [dec(self) for _ in range(n)]

    def tags(self):
        """Skips a tagged-field section; returns {tag: raw bytes}."""
        if not self.flexible:
            return {}
        out = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            out[tag] = self._take(self.uvarint())
        return out

    def done(self):
        return self.pos == len(self.data)


# -- RecordBatch v2 -------------------------------------------------------------------------


def records_section(recs, base_ts, offset_deltas=None):
    """The records of a RecordBatch v2, uncompressed. `recs` is a list of (key, value, headers,
    timestamp) with bytes or None for key/value and [(name, bytes)] headers; `offset_deltas`
    overrides the true 0, 1, … n-1 (to build records that share an offset)."""
    body = bytearray()
    for i, (key, value, headers, ts) in enumerate(recs):
        rec = bytearray(i8(0))
        rec += varint(ts - base_ts) + varint(i if offset_deltas is None else offset_deltas[i])
        rec += varint(-1) if key is None else varint(len(key)) + key
        rec += varint(-1) if value is None else varint(len(value)) + value
        rec += varint(len(headers))
        for name, v in headers:
            n = name.encode()
            rec += varint(len(n)) + n
            rec += varint(-1) if v is None else varint(len(v)) + v
        body += varint(len(rec)) + rec
    return bytes(body)


def batch_around(body, count, base_ts, max_ts, attributes=0, producer_id=-1, producer_epoch=-1,
                 base_sequence=-1, last_offset_delta=None):
    """A RecordBatch v2 whose records section is `body` as given (compressed or not, valid or
    not), with a CRC that matches."""
    lod = count - 1 if last_offset_delta is None else last_offset_delta
    after_crc = (i16(attributes) + i32(lod) + i64(base_ts) + i64(max_ts)
                 + i64(producer_id) + i16(producer_epoch) + i32(base_sequence) + i32(count) + bytes(body))
    return seal(after_crc)


def record_batch(recs, base_ts=None, producer_id=-1, producer_epoch=-1, base_sequence=-1,
                 attributes=0, last_offset_delta=None, record_count=None, offset_deltas=None):
    """One uncompressed RecordBatch v2 (see `records_section`). `last_offset_delta` and
    `record_count` override the true values (to build inconsistent batches)."""
    if base_ts is None:
        base_ts = min(r[3] for r in recs)
    body = records_section(recs, base_ts, offset_deltas)
    lod = len(recs) - 1 if last_offset_delta is None else last_offset_delta
    count = len(recs) if record_count is None else record_count
    return batch_around(body, count, base_ts, max(r[3] for r in recs), attributes, producer_id, producer_epoch,
                        base_sequence, lod)


def seal(after_crc):
    """A whole batch around `after_crc` (attributes to the end): base offset 0, the length,
    leader epoch -1, magic 2 and the CRC-32C of those bytes."""
    after_length = i32(-1) + i8(2) + u32(crc32c(after_crc)) + after_crc
    return i64(0) + i32(len(after_length)) + after_length


BATCH_CRC_OFFSET = 8 + 4 + 4 + 1  # base offset, batch length, leader epoch, magic


def corrupt_crc(batch):
    """The same batch with its stored CRC changed (the data stays intact)."""
    b = bytearray(batch)
    b[BATCH_CRC_OFFSET] ^= 0xFF
    return bytes(b)


def scramble_records(batch):
    """The same batch with its last record bytes replaced by garbage and a CRC that matches:
    only decoding the records shows that it is broken."""
    b = bytearray(batch[BATCH_CRC_OFFSET + 4:])
    b[-10:] = b"\xff" * 10
    return seal(bytes(b))


def corrupt_payload(batch):
    """The same batch with one byte of its last record changed (the CRC no longer matches)."""
    b = bytearray(batch)
    b[-2] ^= 0x55
    return bytes(b)


# -- api keys, error codes ------------------------------------------------------------------

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS, CREATE_TOPICS, DELETE_TOPICS = 0, 1, 2, 3, 18, 19, 20
DELETE_RECORDS = 21
OFFSET_COMMIT, OFFSET_FETCH, JOIN_GROUP, LIST_GROUPS = 8, 9, 11, 16
CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE = 68, 69

NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
OFFSET_OUT_OF_RANGE = 1
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUIRED_ACKS = 21
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
INVALID_RECORD = 87
COORDINATOR_LOAD_IN_PROGRESS = 14
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
GROUP_ID_NOT_FOUND = 69
FENCED_MEMBER_EPOCH = 110
UNRELEASED_INSTANCE_ID = 111
UNSUPPORTED_ASSIGNOR = 112
STALE_MEMBER_EPOCH = 113

# Versions from which each api is flexible (request header v2, response header v1).
FLEXIBLE_FROM = {PRODUCE: 9, FETCH: 12, LIST_OFFSETS: 6, METADATA: 9, API_VERSIONS: 3,
                 CREATE_TOPICS: 5, DELETE_TOPICS: 4, DELETE_RECORDS: 2, 10: 3, 22: 2, 23: 4, 60: 0,
                 OFFSET_COMMIT: 8, OFFSET_FETCH: 6, JOIN_GROUP: 6, LIST_GROUPS: 3,
                 CONSUMER_GROUP_HEARTBEAT: 0, CONSUMER_GROUP_DESCRIBE: 0,
                 24: 3, 25: 3, 26: 3, 28: 3, 37: 2, 61: 0, 65: 0, 66: 0}


def is_flexible(key, version):
    return key in FLEXIBLE_FROM and version >= FLEXIBLE_FROM[key]


# -- a connection ---------------------------------------------------------------------------


class Closed(Exception):
    """The server closed the connection."""


class Connection:
    """A blocking socket to the server that sends frames and reads whole response frames."""

    def __init__(self, port, timeout=10.0, client_id="itest-raw"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.client_id = client_id
        self.next_correlation = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, payload):
        self.send_raw(i32(len(payload)) + payload)

    def header(self, key, version, correlation, flexible=None):
        flexible = is_flexible(key, version) if flexible is None else flexible
        h = i16(key) + i16(version) + i32(correlation) + string(self.client_id)
        return h + (NO_TAGS if flexible else b"")

    def send_request(self, key, version, body, flexible_header=None):
        """Sends one request; returns its correlation id."""
        correlation = self.next_correlation
        self.next_correlation += 1
        self.send_frame(self.header(key, version, correlation, flexible_header) + body)
        return correlation

    def _recv_exactly(self, n):
        out = bytearray()
        while len(out) < n:
            try:
                chunk = self.sock.recv(n - len(out))
            except ConnectionResetError:
                raise Closed("connection reset by the server")
            if not chunk:
                raise Closed("connection closed by the server")
            out += chunk
        return bytes(out)

    def recv_frame(self):
        size = struct.unpack(">i", self._recv_exactly(4))[0]
        assert 0 <= size < 64 << 20, f"response frame of {size} bytes"
        return self._recv_exactly(size)

    def request(self, key, version, body, flexible_header=None):
        """Sends a request and returns (correlation id, response body after the header)."""
        correlation = self.send_request(key, version, body, flexible_header)
        frame = self.recv_frame()
        r = Reader(frame)
        got = r.i32()
        assert got == correlation, f"response correlation id {got}, sent {correlation}"
        if key != API_VERSIONS and is_flexible(key, version):
            r.flexible = True
            r.tags()
        return correlation, frame[r.pos:]

    def expect_closed(self, timeout=10.0):
        """Waits until the server closes this connection; fails if it answers or stays open."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return
            except socket.timeout:
                raise AssertionError(f"server kept the connection open for {timeout} s")
            if not data:
                return
            if time.monotonic() > deadline:
                raise AssertionError("server kept sending instead of closing")
            raise AssertionError(f"server answered instead of closing the connection: {data[:64]!r}")


# -- requests and responses -----------------------------------------------------------------


def api_versions_request(version):
    if version >= 3:
        return compact_string("itest") + compact_string("1.0") + NO_TAGS
    return b""


def parse_api_versions(body, version):
    """ApiVersions response (always after a v0 response header): (error, {key: (min, max)})."""
    r = Reader(body, flexible=version >= 3)
    error = r.i16()
    apis = r.array(lambda r: (r.i16(), r.i16(), r.i16(), r.tags())) or []
    return error, {k: (lo, hi) for k, lo, hi, _ in apis}


def metadata_request(version, topics, allow_auto_create=True):
    w = Writer(is_flexible(METADATA, version))
    if version >= 10:
        enc = lambda t: ZERO_UUID + w.string(t) + w.tags()  # noqa: E731
    else:
        enc = lambda t: w.string(t) + w.tags()  # noqa: E731
    body = w.array(topics, enc)
    if version >= 4:
        body += boolean(allow_auto_create)
    if 8 <= version <= 10:
        body += boolean(False)
    if version >= 8:
        body += boolean(False)
    return body + w.tags()


def parse_metadata(body, version):
    """{topic name: (error code, number of partitions)} and the broker list."""
    r = Reader(body, flexible=is_flexible(METADATA, version))
    if version >= 3:
        r.i32()

    def broker(r):
        b = (r.i32(), r.string(), r.i32())
        if version >= 1:
            r.string()
        r.tags()
        return b

    brokers = r.array(broker)
    if version >= 2:
        r.string()
    if version >= 1:
        r.i32()

    def partition(r):
        error, index, leader = r.i16(), r.i32(), r.i32()
        if version >= 7:
            r.i32()
        r.array(lambda r: r.i32())
        r.array(lambda r: r.i32())
        if version >= 5:
            r.array(lambda r: r.i32())
        r.tags()
        return error, index, leader

    def topic(r):
        error = r.i16()
        name = r.string()
        if version >= 10:
            r.uuid()
        if version >= 1:
            r.boolean()
        parts = r.array(partition)
        if version >= 8:
            r.i32()
        r.tags()
        return name, error, len(parts)

    topics = r.array(topic)
    if 8 <= version <= 10:
        r.i32()
    r.tags()
    assert r.done(), f"{len(body) - r.pos} bytes left after the Metadata v{version} response"
    return {name: (error, n) for name, error, n in topics}, brokers


def produce_request(version, topic, partition, records, acks=-1, timeout_ms=10000):
    w = Writer(is_flexible(PRODUCE, version))
    part = i32(partition) + w.bytes(records) + w.tags()
    topic_data = w.string(topic) + w.array([part], lambda p: p) + w.tags()
    return w.string(None) + i16(acks) + i32(timeout_ms) + w.array([topic_data], lambda t: t) + w.tags()


def fetch_request(version, topic, partition, offset, max_bytes=1 << 20, max_wait_ms=0, min_bytes=1, copies=1,
                  response_max_bytes=None, isolation_level=0):
    """Fetch (v4-v12, topics by name) of one partition, named `copies` times, each with
    `max_bytes` as its partition_max_bytes; the response's max_bytes is `response_max_bytes`
    (default: `max_bytes`)."""
    w = Writer(is_flexible(FETCH, version))
    part = i32(partition)
    if version >= 9:
        part += i32(-1)  # current leader epoch
    part += i64(offset)
    if version >= 12:
        part += i32(-1)  # last fetched epoch
    if version >= 5:
        part += i64(-1)  # log start offset
    part += i32(max_bytes) + w.tags()
    total = max_bytes if response_max_bytes is None else response_max_bytes
    body = i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(total) + i8(isolation_level)
    if version >= 7:
        body += i32(0) + i32(-1)  # session id and epoch
    body += w.array([w.string(topic) + w.array([part] * copies, lambda p: p) + w.tags()], lambda t: t)
    if version >= 7:
        body += w.array([], lambda t: t)  # forgotten topics
    if version >= 11:
        body += w.string("")  # rack
    return body + w.tags()


def parse_fetch(body, version):
    """[(partition, error code, high watermark, records bytes or None)] in response order."""
    r = Reader(body, flexible=is_flexible(FETCH, version))
    r.i32()  # throttle
    if version >= 7:
        r.i16()
        r.i32()  # session id
    out = []

    def partition(r):
        index, error, hw = r.i32(), r.i16(), r.i64()
        r.i64()  # last stable offset
        if version >= 5:
            r.i64()  # log start offset
        r.array(lambda r: (r.i64(), r.i64(), r.tags()))
        if version >= 11:
            r.i32()  # preferred read replica
        records = r.bytes()
        r.tags()
        out.append((index, error, hw, records))

    r.array(lambda r: (r.string(), r.array(partition), r.tags()))
    r.tags()
    return out


def parse_produce(body, version):
    """[(topic, partition, error code, base offset, error message)]."""
    r = Reader(body, flexible=is_flexible(PRODUCE, version))
    out = []

    def partition(r):
        index, error, base = r.i32(), r.i16(), r.i64()
        r.i64()  # log append time
        if version >= 5:
            r.i64()  # log start offset
        message = None
        if version >= 8:
            r.array(lambda r: (r.i32(), r.string(), r.tags()))
            message = r.string()
        r.tags()
        return index, error, base, message

    def topic(r):
        name = r.string()
        for index, error, base, message in r.array(partition):
            out.append((name, index, error, base, message))
        r.tags()

    r.array(topic)
    r.i32()  # throttle
    r.tags()
    assert r.done(), f"{len(body) - r.pos} bytes left after the Produce v{version} response"
    return out


def create_topics_request(version, topics, timeout_ms=10000, validate_only=False):
    """`topics`: [(name, partitions, replication factor, {config: value}[, assignments])], where
    assignments are [(partition, [broker id])]."""
    w = Writer(is_flexible(CREATE_TOPICS, version))

    def topic(t):
        name, partitions, rf, configs = t[:4]
        assignments = t[4] if len(t) > 4 else []
        cfgs = [w.string(k) + w.string(v) + w.tags() for k, v in configs.items()]
        assigned = [i32(p) + w.array(ids, i32) + w.tags() for p, ids in assignments]
        return (w.string(name) + i32(partitions) + i16(rf) + w.array(assigned, lambda a: a)
                + w.array(cfgs, lambda c: c) + w.tags())

    return w.array(topics, topic) + i32(timeout_ms) + boolean(validate_only) + w.tags()


def parse_create_topics(body, version):
    """{name: (error code, error message, {config: value} or None)}."""
    r = Reader(body, flexible=is_flexible(CREATE_TOPICS, version))
    r.i32()  # throttle

    def topic(r):
        name = r.string()
        if version >= 7:
            r.uuid()
        error, message = r.i16(), r.string()
        configs = None
        if version >= 5:
            r.i32()
            r.i16()
            cfgs = r.array(lambda r: (r.string(), r.string(), r.boolean(), r.i8(), r.boolean(), r.tags()))
            configs = None if cfgs is None else {c[0]: c[1] for c in cfgs}
        r.tags()
        return name, error, message, configs

    topics = r.array(topic)
    r.tags()
    assert r.done(), f"{len(body) - r.pos} bytes left after the CreateTopics v{version} response"
    return {name: (error, message, configs) for name, error, message, configs in topics}


def delete_records_request(version, topics, timeout_ms=10000):
    """DeleteRecords (v1-2) for `topics`: {name: [(partition, offset)]}."""
    w = Writer(version >= 2)

    def partition(p):
        return i32(p[0]) + i64(p[1]) + w.tags()

    def topic(item):
        name, parts = item
        return w.string(name) + w.array(parts, partition) + w.tags()

    return w.array(list(topics.items()), topic) + i32(timeout_ms) + w.tags()


def parse_delete_records(body, version):
    """{(topic, partition): (error, low watermark)}."""
    r = Reader(body, flexible=version >= 2)
    r.i32()  # throttle
    out = {}

    def topic(r):
        name = r.string()

        def partition(r):
            index, low, error = r.i32(), r.i64(), r.i16()
            r.tags()
            out[(name, index)] = (error, low)

        r.array(partition)
        r.tags()

    r.array(topic)
    r.tags()
    assert r.done(), "bytes left after the DeleteRecords response"
    return out


# -- groups: listing, and the consumer protocol (KIP-848) -------------------------------------


def list_groups_request(states=None, types=None):
    """ListGroups v5: filters by state and by type ("classic", "consumer")."""
    return compact_array(states or [], compact_string) + compact_array(types or [], compact_string) + NO_TAGS


def parse_list_groups(body):
    """ListGroups v5 response: (error, [(group id, type, state, protocol type)])."""
    r = Reader(body, flexible=True)
    r.i32()
    error = r.i16()
    groups = r.array(lambda r: (r.string(), r.string(), r.string(), r.string(), r.tags()))
    return error, [(g, t, state, ptype) for g, ptype, state, t, _ in groups or []]


def consumer_group_heartbeat_request(group, member_id, epoch, topics=None, owned=None, instance_id=None,
                                     rebalance_timeout_ms=-1, assignor=None, regex=None, version=0):
    """ConsumerGroupHeartbeat: `topics` subscribed names (None: unchanged), `owned` a list of
    (topic id bytes, [partitions]) (None: unchanged)."""
    body = compact_string(group) + compact_string(member_id) + i32(epoch) + compact_string(instance_id)
    body += compact_string(None) + i32(rebalance_timeout_ms) + compact_array(topics, compact_string)
    if version >= 1:
        body += compact_string(regex)
    body += compact_string(assignor)
    body += compact_array(owned, lambda tp: tp[0] + compact_array(tp[1], i32) + NO_TAGS)
    return body + NO_TAGS


def parse_consumer_group_heartbeat(body):
    """ConsumerGroupHeartbeat response as a dict; `assignment` is None or {topic id: [partitions]}."""
    r = Reader(body, flexible=True)
    out = {"throttle": r.i32(), "error": r.i16(), "message": r.string(), "member_id": r.string(),
           "epoch": r.i32(), "interval": r.i32(), "assignment": None}
    if r.i8() >= 0:
        parts = r.array(lambda r: (r.uuid(), r.array(lambda r: r.i32()), r.tags()))
        r.tags()
        out["assignment"] = {tid: sorted(ps) for tid, ps, _ in parts}
    r.tags()
    return out


def consumer_group_describe_request(groups):
    return compact_array(groups, compact_string) + boolean(False) + NO_TAGS


def parse_consumer_group_describe(body, version=1):
    """ConsumerGroupDescribe response: a list of dicts, one per group."""
    r = Reader(body, flexible=True)
    r.i32()

    def assignment(r):
        parts = r.array(lambda r: (r.uuid(), r.string(), r.array(lambda r: r.i32()), r.tags()))
        r.tags()
        return {name: sorted(ps) for _, name, ps, _ in parts}

    def member(r):
        m = {"member_id": r.string(), "instance_id": r.string(), "rack_id": r.string(), "epoch": r.i32(),
             "client_id": r.string(), "client_host": r.string(), "topics": r.array(lambda r: r.string()),
             "regex": r.string(), "assignment": assignment(r), "target": assignment(r)}
        if version >= 1:
            m["type"] = r.i8()
        r.tags()
        return m

    def group(r):
        g = {"error": r.i16(), "message": r.string(), "group_id": r.string(), "state": r.string(),
             "group_epoch": r.i32(), "assignment_epoch": r.i32(), "assignor": r.string(),
             "members": r.array(member), "operations": r.i32()}
        r.tags()
        return g

    groups = r.array(group)
    r.tags()
    return groups


def offset_commit_request(group, generation, member_id, topic, offsets, version=9):
    """OffsetCommit v8+ (flexible): `offsets` {partition: offset}."""
    def partition(item):
        p, o = item
        return i32(p) + i64(o) + i32(-1) + compact_string(None) + NO_TAGS
    t = compact_string(topic) + compact_array(sorted(offsets.items()), partition) + NO_TAGS
    return compact_string(group) + i32(generation) + compact_string(member_id) + compact_string(None) \
        + compact_array([t], lambda x: x) + NO_TAGS


def parse_offset_commit(body):
    """OffsetCommit v8+ response: {(topic, partition): error}."""
    r = Reader(body, flexible=True)
    r.i32()
    out = {}
    for name, parts, _ in r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.tags())), r.tags())):
        for p, e, _ in parts:
            out[(name, p)] = e
    return out


def offset_fetch_request(group, topic, partitions):
    """OffsetFetch v8 (flexible, groups array) for one group and one topic's partitions."""
    t = compact_string(topic) + compact_array(partitions, i32) + NO_TAGS
    g = compact_string(group) + compact_array([t], lambda x: x) + NO_TAGS
    return compact_array([g], lambda x: x) + boolean(False) + NO_TAGS


def parse_offset_fetch(body):
    """OffsetFetch v8 response for one group and topic: {partition: committed offset}."""
    r = Reader(body, flexible=True)
    r.i32()

    def partition(r):
        p, offset = r.i32(), r.i64()
        r.i32()
        r.string()
        r.i16()
        r.tags()
        return p, offset

    def group(r):
        r.string()
        topics = r.array(lambda r: (r.string(), r.array(partition), r.tags()))
        r.i16()
        r.tags()
        return topics

    out = {}
    for topics in r.array(group):
        for _, parts, _ in topics:
            out.update(dict(parts))
    return out
