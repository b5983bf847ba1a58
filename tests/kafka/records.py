"""The records every client test produces, and the check of what came back.

Record i of a run has a key shared with other records (so per-key order means something), a
value that names the client and carries i (so a consumed record says which one it is), a
few headers (some binary, some empty, a varying count) and an explicit CreateTime one hour in
the past plus i milliseconds (so a timestamp the server or client made up is caught).
`verify` checks the consumed records against that: every record exactly once, each
partition's offsets contiguous from 0, produce order kept within each partition, each key on
one partition, and key, value, headers and timestamp of each record as produced.
"""

import time
from collections import defaultdict

N_RECORDS = 100_000
PARTITIONS = 6
N_KEYS = 4999
FILLER = b"abcdefghijklmnopqrstuvwxyz0123456789" * 6


class Dataset:
    def __init__(self, client, n=N_RECORDS, base_ts=None):
        self.client = client
        self.n = n
        now_ms = int(time.time() * 1000)
        self.base_ts = now_ms - 3_600_000 if base_ts is None else base_ts
        self.prefix = client.encode() + b"-"

    def key(self, i):
        return b"k%05d" % (i % N_KEYS)

    def value(self, i):
        return self.prefix + b"%06d|" % i + FILLER[: (i * 7919) % 181]

    def headers(self, i):
        h = [("seq", b"%d" % i), ("client", self.client.encode())]
        if i % 3 == 0:
            h.append(("bin", bytes([i & 0xFF, 0, 0xFF, (i >> 8) & 0xFF])))
        if i % 5 == 0:
            h.append(("empty", b""))
        return h

    def timestamp(self, i):
        return self.base_ts + i

    def seq_of(self, value):
        """The record number a consumed value carries, or None if it is not one of ours."""
        if not value.startswith(self.prefix):
            return None
        digits = value[len(self.prefix):len(self.prefix) + 6]
        return int(digits) if digits.isdigit() else None


class Consumed:
    """One record as a client returned it."""

    __slots__ = ("partition", "offset", "key", "value", "headers", "timestamp")

    def __init__(self, partition, offset, key, value, headers, timestamp):
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp


def verify(records, ds, headers=None, timestamps=None, partitions=PARTITIONS):
    """Checks `records` (Consumed, in the order the client delivered them) against `ds`.

    `headers(i)` gives the expected headers of record i (default: ds.headers);
    `timestamps` is None for exact explicit timestamps, or (low, high) when the client
    cannot set them and the producer's clock stamped them (then each partition's timestamps
    must also be non-decreasing). Raises AssertionError naming the first problem; returns a
    one-line description of what was checked.
    """
    expect_headers = headers or ds.headers
    by_partition = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r)
    assert set(by_partition) <= set(range(partitions)), \
        f"records from partitions {sorted(by_partition)}, topic has {partitions}"
    assert len(by_partition) == partitions, \
        f"only partitions {sorted(by_partition)} got records; {ds.n} records over {N_KEYS} keys should reach all {partitions}"

    seen = bytearray(ds.n)
    key_partition = {}
    for p, recs in sorted(by_partition.items()):
        last_seq = -1
        last_ts = None
        for expected_offset, r in enumerate(recs):
            where = f"partition {p} offset {r.offset}"
            assert r.offset == expected_offset, \
                f"{where}: expected offset {expected_offset} (offsets must be contiguous from 0 in delivery order)"
            seq = ds.seq_of(r.value)
            assert seq is not None and 0 <= seq < ds.n, f"{where}: value {r.value[:40]!r} is not one of the produced records"
            assert not seen[seq], f"{where}: record {seq} delivered twice"
            seen[seq] = 1
            assert seq > last_seq, f"{where}: record {seq} after record {last_seq}: produce order lost within the partition"
            last_seq = seq
            assert r.key == ds.key(seq), f"{where}: record {seq} has key {r.key!r}, produced {ds.key(seq)!r}"
            assert r.value == ds.value(seq), f"{where}: record {seq} value differs: {r.value!r} != {ds.value(seq)!r}"
            want_h = expect_headers(seq)
            assert r.headers == want_h, f"{where}: record {seq} headers {r.headers!r}, produced {want_h!r}"
            if timestamps is None:
                assert r.timestamp == ds.timestamp(seq), \
                    f"{where}: record {seq} timestamp {r.timestamp}, produced {ds.timestamp(seq)}"
            else:
                low, high = timestamps
                assert low <= r.timestamp <= high, \
                    f"{where}: record {seq} timestamp {r.timestamp} outside the produce window [{low}, {high}]"
                assert last_ts is None or r.timestamp >= last_ts, \
                    f"{where}: record {seq} timestamp {r.timestamp} before the previous record's {last_ts}"
                last_ts = r.timestamp
            other = key_partition.setdefault(r.key, p)
            assert other == p, f"{where}: key {r.key!r} is on partitions {other} and {p}"
    missing = ds.n - sum(seen)
    assert missing == 0, f"{missing} of {ds.n} records never came back (first: {seen.index(0)})"
    sizes = ", ".join(f"p{p}={len(by_partition[p])}" for p in range(partitions))
    return f"{ds.n} records verified over {partitions} partitions ({sizes}), {len(key_partition)} keys"
