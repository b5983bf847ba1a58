#!/usr/bin/python3
"""ACLs on the Kafka listeners, as Kafka users manage and meet them.

One server runs `--authorizer acl --super-users User:admin` with a SASL_PLAINTEXT listener
(SCRAM users admin, alice, bob and carol made with `runnel user create`) beside the PLAINTEXT
one. The super user manages ACLs with kafka-python's admin client (CreateAcls, DescribeAcls,
DeleteAcls: the AdminClient calls of the Kafka tools; the confluent-kafka of Debian bookworm,
1.7, predates its ACL calls) and with `runnel acl` on the data directory. Then:

- alice, allowed WRITE on `orders`, produces with confluent-kafka; bob, without it, gets
  TOPIC_AUTHORIZATION_FAILED for the same records;
- a PREFIXED ALLOW on `sales-` lets alice write `sales-eu`, and a LITERAL DENY on
  `sales-secret` wins over it; ANONYMOUS clients of the PLAINTEXT listener are denied;
- Metadata lists only the topics a principal may describe;
- a consumer in a group its principal may READ consumes; one in a group it may not gets
  GROUP_AUTHORIZATION_FAILED;
- a transactional producer without WRITE on its transactional id gets
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and with it commits;
- a non-super user cannot create ACLs (CLUSTER_AUTHORIZATION_FAILED);
- `runnel acl add` on the data directory takes effect in the running server;
- denials are counted in /metrics;
- the ACLs survive a restart of the server.

Run: /usr/bin/python3 acl_test.py --runnel PATH
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,  # noqa: E402
                         KafkaAdminClient, NewTopic, ResourcePattern, ResourcePatternFilter, ResourceType)

BINARY = harness.runnel_binary()
USERS = {"admin": "admin secret", "alice": "alice secret", "bob": "bob secret", "carol": "carol secret"}


def create_user(data_dir, name):
    p = subprocess.run([BINARY, "user", "create", "--data-dir", data_dir, name], input=USERS[name] + "\n",
                       text=True, capture_output=True, timeout=60)
    assert p.returncode == 0, f"runnel user create failed: {p.stderr}"


def runnel_acl(data_dir, *args):
    p = subprocess.run([BINARY, "acl", *args, "--data-dir", data_dir], text=True, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def listener_port(srv, name):
    m = srv.wait_for_log(rf"Kafka listener {name} \(\w+\) on 127\.0\.0\.1:(\d+)")
    return int(m.group(1))


def counter(srv, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    with urllib.request.urlopen(f"{srv.http}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def acl(principal, op, rtype, name, pattern=ACLResourcePatternType.LITERAL, permission=ACLPermissionType.ALLOW):
    return ACL(principal=principal, host="*", operation=op, permission_type=permission,
               resource_pattern=ResourcePattern(rtype, name, pattern))


class Acls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runnel-acl-itest-")
        cls.data_dir = os.path.join(cls.tmp, "data")
        for u in USERS:
            create_user(cls.data_dir, u)
        cls.start_server()
        cls.admin = cls.admin_client("admin")
        cls.admin.create_topics([NewTopic(t, 1, 1) for t in
                                 ["orders", "sales-eu", "sales-secret", "hidden", "tx-out"]])
        result = cls.admin.create_acls([
            acl("User:alice", ACLOperation.WRITE, ResourceType.TOPIC, "orders"),
            acl("User:alice", ACLOperation.WRITE, ResourceType.TOPIC, "sales-", ACLResourcePatternType.PREFIXED),
            acl("User:alice", ACLOperation.WRITE, ResourceType.TOPIC, "sales-secret",
                permission=ACLPermissionType.DENY),
            acl("User:alice", ACLOperation.READ, ResourceType.TOPIC, "orders"),
            acl("User:alice", ACLOperation.READ, ResourceType.GROUP, "app-", ACLResourcePatternType.PREFIXED),
            acl("User:bob", ACLOperation.READ, ResourceType.TOPIC, "orders"),
            acl("User:carol", ACLOperation.WRITE, ResourceType.TRANSACTIONAL_ID, "carol-tx"),
            acl("User:carol", ACLOperation.WRITE, ResourceType.TOPIC, "tx-out"),
        ])
        assert not result["failed"], result["failed"]

    @classmethod
    def start_server(cls):
        cls.srv = harness.RunnelServer(BINARY, name="acl", data_dir=cls.data_dir, extra_args=[
            "--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0",
            "--sasl-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512",
            "--authorizer", "acl", "--super-users", "User:admin",
            "--group-initial-rebalance-delay-ms", "0",
        ]).start()
        cls.sasl_port = listener_port(cls.srv, "SASL_PLAINTEXT")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.admin.close()
            cls.srv.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def admin_client(cls, user):
        return KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{cls.sasl_port}", security_protocol="SASL_PLAINTEXT",
                                sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=user,
                                sasl_plain_password=USERS[user], client_id=f"itest-acl-{user}",
                                request_timeout_ms=30000)

    def config(self, user, **extra):
        cfg = {"bootstrap.servers": f"127.0.0.1:{self.sasl_port}", "client.id": f"itest-acl-{user}"}
        if user is not None:
            cfg.update({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
                        "sasl.username": user, "sasl.password": USERS[user]})
        else:
            cfg["bootstrap.servers"] = self.srv.bootstrap  # PLAINTEXT: User:ANONYMOUS
        cfg.update(extra)
        return cfg

    def produce(self, user, topic, n=3):
        """Produces n records; returns the error codes of their delivery reports."""
        p = Producer(self.config(user, **{"message.timeout.ms": 20000, "retries": 0}))
        codes = []

        def report(err, msg):
            codes.append(err.code() if err else 0)

        for i in range(n):
            p.produce(topic, value=f"{user}-{i}".encode(), on_delivery=report)
        left = p.flush(30)
        self.assertEqual(left, 0, "delivery reports missing")
        return codes

    # -- produce -------------------------------------------------------------------------------

    def test_write_allowed_for_one_user_and_denied_for_another(self):
        self.assertEqual(self.produce("alice", "orders"), [0, 0, 0])
        self.assertEqual(set(self.produce("bob", "orders")), {KafkaError.TOPIC_AUTHORIZATION_FAILED})
        self.assertEqual(set(self.produce("admin", "orders")), {0})  # super user

    def test_prefixed_allow_and_deny_over_allow(self):
        self.assertEqual(self.produce("alice", "sales-eu"), [0, 0, 0])
        self.assertEqual(set(self.produce("alice", "sales-secret")), {KafkaError.TOPIC_AUTHORIZATION_FAILED})

    def test_anonymous_plaintext_client_is_denied(self):
        self.assertEqual(set(self.produce(None, "orders", n=1)), {KafkaError.TOPIC_AUTHORIZATION_FAILED})

    # -- metadata ------------------------------------------------------------------------------

    def test_metadata_hides_topics_the_principal_may_not_describe(self):
        c = Consumer(self.config("alice", **{"group.id": "app-meta"}))
        try:
            topics = set(c.list_topics(timeout=20).topics)
        finally:
            c.close()
        self.assertIn("orders", topics)
        self.assertIn("sales-eu", topics)
        self.assertNotIn("hidden", topics)
        self.assertNotIn("tx-out", topics)
        # sales-secret: alice's WRITE (which implies DESCRIBE) comes from the prefixed ALLOW;
        # the DENY is for WRITE only, so she still sees it, as in Kafka.
        self.assertIn("sales-secret", topics)
        admin_topics = set(self.admin.list_topics())
        self.assertTrue({"orders", "hidden", "tx-out"} <= admin_topics)

    # -- groups --------------------------------------------------------------------------------

    def consume_one(self, user, group, timeout=30):
        """The first message or error a group consumer of `orders` gets."""
        c = Consumer(self.config(user, **{"group.id": group, "auto.offset.reset": "earliest",
                                          "enable.auto.commit": False}))
        try:
            c.subscribe(["orders"])
            deadline = harness.Deadline(timeout, f"{user} consuming in {group}")
            while not deadline.expired():
                m = c.poll(0.5)
                if m is None:
                    continue
                return m
            self.fail(f"{user} got nothing in group {group} within {timeout} s")
        finally:
            c.close()

    def test_group_member_with_read_consumes_and_one_without_is_refused(self):
        self.assertEqual(self.produce("alice", "orders", n=1), [0])
        m = self.consume_one("alice", "app-orders")
        self.assertIsNone(m.error(), m.error())
        m = self.consume_one("bob", "app-orders")
        self.assertIsNotNone(m.error())
        self.assertEqual(m.error().code(), KafkaError.GROUP_AUTHORIZATION_FAILED, m.error())

    # -- transactions --------------------------------------------------------------------------

    def test_transactional_id_needs_write(self):
        p = Producer(self.config("carol", **{"transactional.id": "someone-elses-tx"}))
        with self.assertRaises(KafkaException) as e:
            p.init_transactions(20)
        self.assertEqual(e.exception.args[0].code(), KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                         e.exception.args[0])
        p = Producer(self.config("carol", **{"transactional.id": "carol-tx"}))
        p.init_transactions(30)
        p.begin_transaction()
        p.produce("tx-out", value=b"committed")
        p.commit_transaction(30)

    # -- managing ACLs -------------------------------------------------------------------------

    def test_admin_client_describes_and_deletes(self):
        found, error = self.admin.describe_acls(ACLFilter(
            principal="User:alice", host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, None, ACLResourcePatternType.ANY)))
        self.assertEqual(error.errno, 0)
        described = {(a.resource_pattern.resource_name, a.resource_pattern.pattern_type, a.operation, a.permission_type)
                     for a in found}
        self.assertIn(("sales-", ACLResourcePatternType.PREFIXED, ACLOperation.WRITE, ACLPermissionType.ALLOW),
                      described)
        self.assertIn(("sales-secret", ACLResourcePatternType.LITERAL, ACLOperation.WRITE, ACLPermissionType.DENY),
                      described)
        # MATCH: the bindings that apply to one topic, literal and prefixed.
        found, _ = self.admin.describe_acls(ACLFilter(
            principal=None, host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "sales-secret", ACLResourcePatternType.MATCH)))
        self.assertEqual({a.resource_pattern.resource_name for a in found}, {"sales-", "sales-secret"})

        temp = acl("User:dave", ACLOperation.READ, ResourceType.TOPIC, "temp")
        self.assertFalse(self.admin.create_acls([temp])["failed"])
        deleted = self.admin.delete_acls([ACLFilter(
            principal="User:dave", host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))])
        (_, matched, error), = deleted
        self.assertEqual(error.errno, 0)
        self.assertEqual([m[0].resource_pattern.resource_name for m in matched], ["temp"])

    def test_non_super_user_cannot_change_acls(self):
        client = self.admin_client("alice")
        try:
            result = client.create_acls([acl("User:alice", ACLOperation.ALL, ResourceType.TOPIC, "*")])
        finally:
            client.close()
        self.assertEqual(len(result["failed"]), 1)
        self.assertEqual(result["failed"][0][1].__name__, "ClusterAuthorizationFailedError")

    def test_invalid_binding_is_refused_with_its_reason(self):
        bad = ACL(principal="User:x", host="*", operation=ACLOperation.READ, permission_type=ACLPermissionType.ALLOW,
                  resource_pattern=ResourcePattern(ResourceType.CLUSTER, "not-the-cluster"))
        result = self.admin.create_acls([bad, acl("User:x", ACLOperation.READ, ResourceType.TOPIC, "x")])
        self.assertEqual(len(result["failed"]), 1)
        self.assertEqual(result["failed"][0][1].__name__, "InvalidRequestError")
        self.assertEqual(len(result["succeeded"]), 1)

    def test_runnel_acl_cli_changes_a_running_server(self):
        code, out, err = runnel_acl(self.data_dir, "add", "--allow-principal", "User:bob", "--operation", "Write",
                                    "--topic", "bob-only")
        self.assertEqual(code, 0, err)
        code, out, err = runnel_acl(self.data_dir, "list", "--principal", "User:bob")
        self.assertEqual(code, 0, err)
        self.assertIn("TOPIC\tLITERAL\tbob-only\tUser:bob\t*\tWRITE\tALLOW", out)
        self.admin.create_topics([NewTopic("bob-only", 1, 1)])
        deadline = harness.Deadline(30, "the server applying `runnel acl add`")
        while self.produce("bob", "bob-only", n=1) != [0]:
            deadline.check()
        code, out, err = runnel_acl(self.data_dir, "remove", "--topic", "bob-only")
        self.assertEqual(code, 0, err)
        self.assertIn("removed: User:bob has ALLOW on WRITE", out)
        deadline = harness.Deadline(30, "the server applying `runnel acl remove`")
        while self.produce("bob", "bob-only", n=1) != [KafkaError.TOPIC_AUTHORIZATION_FAILED]:
            deadline.check()
        code, _, err = runnel_acl(self.data_dir, "add", "--allow-principal", "bob", "--operation", "Read",
                                  "--topic", "t")
        self.assertEqual(code, 2)
        self.assertIn("TYPE:NAME", err)

    def test_denials_are_counted(self):
        before = counter(self.srv, "runnel_authz_denied_total", resource_type="TOPIC", operation="WRITE")
        self.produce("bob", "orders", n=1)
        after = counter(self.srv, "runnel_authz_denied_total", resource_type="TOPIC", operation="WRITE")
        self.assertGreater(after, before)

    # Runs last (unittest sorts by name): restarts the server.
    def test_zz_acls_survive_a_restart(self):
        self.srv.stop()
        type(self).start_server()
        self.admin.close()
        type(self).admin = self.admin_client("admin")
        self.assertEqual(self.produce("alice", "orders", n=1), [0])
        self.assertEqual(self.produce("bob", "orders", n=1), [KafkaError.TOPIC_AUTHORIZATION_FAILED])
        found, _ = self.admin.describe_acls(ACLFilter(
            principal="User:carol", host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)))
        self.assertEqual({a.resource_pattern.resource_name for a in found}, {"carol-tx", "tx-out"})


if __name__ == "__main__":
    harness.run_unittests("kafka_acl_test")
