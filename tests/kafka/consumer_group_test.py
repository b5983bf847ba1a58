#!/usr/bin/python3
"""The consumer group protocol of KIP-848 on the wire, against `runnel serve`.

Raw ConsumerGroupHeartbeat, ConsumerGroupDescribe, OffsetCommit v9 and ListGroups v5 requests
(kafka_wire.py): two members joining and reconciling (a partition moves only after its owner
revoked it), commits checked against the member epoch, leaving, fencing, and a group of one
protocol refusing members of the other.

Run: /usr/bin/python3 consumer_group_test.py --runnel PATH
"""

import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import kafka_wire as kw  # noqa: E402

BINARY = harness.runnel_binary(sys.argv)
PARTITIONS = 4


def create_topic(conn, name, partitions=PARTITIONS):
    _, body = conn.request(kw.CREATE_TOPICS, 5, kw.create_topics_request(5, [(name, partitions, 1, {})]))
    assert kw.parse_create_topics(body, 5)[name][0] in (0, 36), kw.parse_create_topics(body, 5)


def join_group_request(group, member_id=""):
    """JoinGroup v6 (flexible), protocol type "consumer" with one "range" protocol."""
    return kw.compact_string(group) + kw.i32(10000) + kw.i32(10000) + kw.compact_string(member_id) \
        + kw.compact_string(None) + kw.compact_string("consumer") \
        + kw.compact_array([("range", b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")],
                           lambda p: kw.compact_string(p[0]) + kw.compact_bytes(p[1]) + kw.NO_TAGS) + kw.NO_TAGS


class member:
    """A member of a consumer-protocol group as a client runs one: it applies each assignment
    it is given and reports what it owns on its next heartbeat."""

    def __init__(self, conn, group, topic, instance_id=None):
        self.conn, self.group, self.topic, self.instance_id = conn, group, topic, instance_id
        self.id, self.epoch, self.owned = "", 0, {}

    def beat(self, epoch=None, topics=None):
        epoch = self.epoch if epoch is None else epoch
        joining = epoch == 0
        req = kw.consumer_group_heartbeat_request(
            self.group, self.id, epoch, topics=[self.topic] if joining else topics,
            owned=[(tid, ps) for tid, ps in self.owned.items()], instance_id=self.instance_id,
            rebalance_timeout_ms=30000 if joining else -1)
        _, body = self.conn.request(kw.CONSUMER_GROUP_HEARTBEAT, 0, req)
        r = kw.parse_consumer_group_heartbeat(body)
        if r["error"] == 0:
            self.id, self.epoch = r["member_id"], r["epoch"]
            if r["assignment"] is not None:
                self.owned = {tid: ps for tid, ps in r["assignment"].items() if ps}
        return r

    def partitions(self):
        return sorted(p for ps in self.owned.values() for p in ps)

    def commit(self, offsets, epoch=None):
        req = kw.offset_commit_request(self.group, self.epoch if epoch is None else epoch, self.id, self.topic, offsets)
        _, body = self.conn.request(kw.OFFSET_COMMIT, 9, req)
        return kw.parse_offset_commit(body)


class consumer_group_test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.RunnelServer(BINARY, name="kip848", extra_args=["--group-consumer-heartbeat-interval-ms", "500"])
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def connect(self):
        return kw.Connection(self.srv.port)

    def test_api_versions_advertise_the_consumer_protocol(self):
        with self.connect() as c:
            _, body = c.request(kw.API_VERSIONS, 3, kw.api_versions_request(3))
            error, apis = kw.parse_api_versions(body, 3)
            self.assertEqual(error, 0)
            self.assertEqual(apis[kw.CONSUMER_GROUP_HEARTBEAT], (0, 1))
            self.assertEqual(apis[kw.CONSUMER_GROUP_DESCRIBE], (0, 1))
            self.assertEqual(apis[kw.OFFSET_COMMIT][1], 9)
            self.assertEqual(apis[kw.LIST_GROUPS][1], 5)

    def test_two_members_reconcile_and_commit(self):
        with self.connect() as c:
            create_topic(c, "kip848-two")
            a, b = member(c, "g-two", "kip848-two"), member(c, "g-two", "kip848-two")
            r = a.beat()
            self.assertEqual(r["error"], 0, r)
            self.assertEqual(len(a.id), 22)  # a server-made UUID, URL-safe base64
            self.assertEqual((a.epoch, a.partitions()), (1, [0, 1, 2, 3]))
            self.assertEqual(r["interval"], 500)
            self.assertEqual(a.commit({0: 5, 1: 7}), {("kip848-two", 0): 0, ("kip848-two", 1): 0})

            b.beat()
            self.assertEqual((b.epoch, b.partitions()), (2, []))  # nothing is free yet
            r = a.beat()                                           # a is told to give two up
            self.assertEqual(r["epoch"], 1)
            self.assertEqual(len(a.partitions()), 2)
            self.assertEqual(b.beat()["error"], 0)
            self.assertEqual(b.partitions(), [])                   # a has not revoked yet
            a.beat()                                               # a reports it revoked
            self.assertEqual(a.epoch, 2)
            b.beat()
            self.assertEqual(sorted(a.partitions() + b.partitions()), [0, 1, 2, 3])
            self.assertTrue(a.partitions() and b.partitions())

            # A commit in an old epoch is stale; an unknown member is refused.
            stale = a.commit({a.partitions()[0]: 9}, epoch=1)
            self.assertEqual(set(stale.values()), {kw.STALE_MEMBER_EPOCH})
            self.assertEqual(set(b.commit({b.partitions()[0]: 3}).values()), {0})
            ghost = member(c, "g-two", "kip848-two")
            ghost.id, ghost.epoch = "ghost", 2
            self.assertEqual(set(ghost.commit({0: 1}).values()), {kw.UNKNOWN_MEMBER_ID})

            _, body = c.request(kw.CONSUMER_GROUP_DESCRIBE, 1, kw.consumer_group_describe_request(["g-two", "nope"]))
            g, missing = kw.parse_consumer_group_describe(body)
            self.assertEqual((g["error"], g["state"], g["assignor"]), (0, "Stable", "uniform"))
            self.assertEqual(g["group_epoch"], g["assignment_epoch"])
            self.assertEqual(sorted(m["member_id"] for m in g["members"]), sorted([a.id, b.id]))
            self.assertTrue(all(m["type"] == 1 and m["topics"] == ["kip848-two"] for m in g["members"]))
            self.assertEqual(missing["error"], kw.GROUP_ID_NOT_FOUND)

            # b leaves; a gets everything back.
            self.assertEqual(b.beat(epoch=-1)["epoch"], -1)
            a.beat()
            self.assertEqual(a.partitions(), [0, 1, 2, 3])

            _, body = c.request(kw.LIST_GROUPS, 5, kw.list_groups_request(types=["consumer"]))
            error, groups = kw.parse_list_groups(body)
            self.assertIn(("g-two", "consumer", "Stable", "consumer"), groups)
            _, body = c.request(kw.LIST_GROUPS, 5, kw.list_groups_request(types=["classic"]))
            self.assertNotIn("g-two", [g[0] for g in kw.parse_list_groups(body)[1]])

    def test_fencing(self):
        with self.connect() as c:
            create_topic(c, "kip848-fence")
            a = member(c, "g-fence", "kip848-fence")
            a.beat()
            self.assertEqual(a.beat(epoch=a.epoch + 5)["error"], kw.FENCED_MEMBER_EPOCH)
            ghost = member(c, "g-fence", "kip848-fence")
            ghost.id = "not-a-member"
            self.assertEqual(ghost.beat(epoch=1)["error"], kw.UNKNOWN_MEMBER_ID)
            # An unknown assignor, and a regular expression, are refused with reasons.
            req = kw.consumer_group_heartbeat_request("g-fence", "x", 0, topics=["kip848-fence"], assignor="sticky")
            r = kw.parse_consumer_group_heartbeat(c.request(kw.CONSUMER_GROUP_HEARTBEAT, 0, req)[1])
            self.assertEqual(r["error"], kw.UNSUPPORTED_ASSIGNOR)
            req = kw.consumer_group_heartbeat_request("g-fence", "x", 0, topics=[], regex="kip.*", version=1)
            r = kw.parse_consumer_group_heartbeat(c.request(kw.CONSUMER_GROUP_HEARTBEAT, 1, req)[1])
            self.assertEqual(r["error"], kw.INVALID_REQUEST)
            self.assertIn("regular expression", r["message"])
            # Version 1: the client makes the member id; an empty one is refused.
            req = kw.consumer_group_heartbeat_request("g-fence", "", 0, topics=["kip848-fence"], version=1)
            r = kw.parse_consumer_group_heartbeat(c.request(kw.CONSUMER_GROUP_HEARTBEAT, 1, req)[1])
            self.assertEqual(r["error"], kw.INVALID_REQUEST)

    def test_a_group_keeps_its_protocol_while_it_has_members(self):
        with self.connect() as c:
            create_topic(c, "kip848-mixed")
            a = member(c, "g-mixed", "kip848-mixed")
            a.beat()
            _, body = c.request(kw.JOIN_GROUP, 6, join_group_request("g-mixed"))
            r = kw.Reader(body, flexible=True)
            r.i32()
            self.assertEqual(r.i16(), kw.INCONSISTENT_GROUP_PROTOCOL)
            a.beat(epoch=-1)
            # Empty again: a classic member may take the group over...
            _, body = c.request(kw.JOIN_GROUP, 6, join_group_request("g-mixed"))
            r = kw.Reader(body, flexible=True)
            r.i32()
            self.assertEqual(r.i16(), 79)  # MEMBER_ID_REQUIRED: the classic join goes on
            member_id = (r.i32(), r.string(), r.string(), r.string())[3]  # generation, protocol, leader, member id
            c.send_request(kw.JOIN_GROUP, 6, join_group_request("g-mixed", member_id))
            # ...and while it has one, the consumer protocol is refused.
            with self.connect() as c2:
                def classic_state():
                    _, body = c2.request(kw.LIST_GROUPS, 5, kw.list_groups_request())
                    return [(t, state) for g, t, state, _ in kw.parse_list_groups(body)[1] if g == "g-mixed"]
                harness.wait_until(lambda: classic_state() == [("classic", "PreparingRebalance")], 20,
                                   "the classic member to join")
                b = member(c2, "g-mixed", "kip848-mixed")
                r2 = b.beat()
                self.assertEqual(r2["error"], kw.GROUP_ID_NOT_FOUND)
                self.assertIn("not a consumer group", r2["message"])


class restart_test(unittest.TestCase):
    """Members are kept in memory (decision 0014): after a restart a member in its old epoch
    is fenced, joins again and finds its committed offsets."""

    def test_members_join_again_after_a_restart(self):
        data = tempfile.mkdtemp(prefix="kip848-restart-")
        try:
            srv = harness.RunnelServer(BINARY, name="kip848-restart", data_dir=data)
            with srv:
                with self.connect(srv) as c:
                    create_topic(c, "kip848-restart")
                    a = member(c, "g-restart", "kip848-restart")
                    a.beat()
                    self.assertEqual(a.partitions(), [0, 1, 2, 3])
                    self.assertEqual(set(a.commit({0: 11, 3: 42}).values()), {0})
            srv = harness.RunnelServer(BINARY, name="kip848-restart", data_dir=data)
            with srv:
                with self.connect(srv) as c:
                    a.conn = c
                    harness.wait_until(lambda: a.beat()["error"] != kw.COORDINATOR_LOAD_IN_PROGRESS, 20,
                                       "the offsets topic to load")
                    r = a.beat()
                    self.assertEqual(r["error"], kw.FENCED_MEMBER_EPOCH, r)
                    a.owned = {}
                    self.assertEqual(a.beat(epoch=0)["error"], 0)
                    self.assertEqual(a.partitions(), [0, 1, 2, 3])
                    fetched = c.request(kw.OFFSET_FETCH, 8, kw.offset_fetch_request("g-restart", "kip848-restart", [0, 3]))[1]
                    self.assertEqual(kw.parse_offset_fetch(fetched), {0: 11, 3: 42})
        finally:
            shutil.rmtree(data, ignore_errors=True)

    def connect(self, srv):
        return kw.Connection(srv.port)


if __name__ == "__main__":
    harness.run_unittests("kafka_consumer_group")
