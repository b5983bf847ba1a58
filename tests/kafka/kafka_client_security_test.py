#!/usr/bin/python3
"""SQL pipelines as secure Kafka clients of an external cluster.

Server A plays the external cluster: a SASL_SSL listener (SCRAM-SHA-512), an SSL listener that
requires client certificates, and PLAINTEXT for the test's own set-up, with certificates made
by `openssl` (security_test's helpers). Server B runs SQL pipelines whose tables name A with
Flink's options (`properties.security.protocol`, `properties.sasl.jaas.config`,
`properties.ssl.truststore.location`, `properties.ssl.keystore.location`, …):

- a pipeline reads a topic of A over SASL_SSL and writes another topic of A, and rows arrive;
- a pipeline reads A over SSL with a client certificate (mTLS) into B's own log;
- a wrong password shows as the pipeline's reason in its status and in /metrics;
- a JKS truststore and a property librdkafka does not know are refused when the pipeline is
  created, naming the table and the option;
- the password appears nowhere: not in /v1/sql answers (statements, EXPLAIN, errors), not in
  /v1/pipelines, not in /metrics, not in B's log.

Run: /usr/bin/python3 kafka_client_security_test.py --runnel PATH
"""

import json
import os
import re
import shutil
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import security_test as sec  # noqa: E402  (certificates, users, listener ports)
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PASSWORD = "pipeline-Pa55-word!"
WRONG = "not-the-Pa55-word"
ROWS = 200


def request(url, body=None, method=None):
    data = body.encode() if isinstance(body, str) else None
    headers = {"Content-Type": "application/json" if body.startswith("{") else "application/sql"} if data else {}
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def jaas(password):
    return ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="pipeline" password="{password}";')


class SecureClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runnel-kclient-itest-")
        cls.certs = sec.make_certificates(cls.tmp)
        c = cls.certs
        # A PEM keystore as Flink users give one: the client's certificate and key in one file.
        cls.keystore = os.path.join(cls.tmp, "client-keystore.pem")
        with open(cls.keystore, "w") as out:
            for part in (c["client.crt"], c["client.key"]):
                with open(part) as f:
                    out.write(f.read())
        cls.jks = os.path.join(cls.tmp, "truststore.jks")
        with open(cls.jks, "wb") as f:
            f.write(b"\xfe\xed\xfe\xed\x00\x00\x00\x02" + b"\x00" * 64)
        data_a = os.path.join(cls.tmp, "a")
        sec.create_user(data_a, "pipeline", PASSWORD, mechanisms="SCRAM-SHA-512")
        cls.a = harness.RunnelServer(sec.BINARY, name="kclient-cluster", data_dir=data_a, extra_args=[
            "--kafka-listener", "SASL_SSL://127.0.0.1:0",
            "--kafka-listener", "SSL://127.0.0.1:0",
            "--tls-cert-file", c["server.crt"], "--tls-key-file", c["server.key"], "--tls-ca-file", c["ca.crt"],
            "--tls-client-auth", "required",
            "--sasl-mechanisms", "SCRAM-SHA-512",
        ]).start()
        cls.b = None
        try:
            cls.sasl_ssl = f"127.0.0.1:{sec.listener_port(cls.a, 'SASL_SSL')}"
            cls.ssl = f"127.0.0.1:{sec.listener_port(cls.a, 'SSL')}"
            admin = AdminClient({"bootstrap.servers": cls.a.bootstrap})
            for t in ("sec-in", "sec-out"):
                admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
            p = Producer({"bootstrap.servers": cls.a.bootstrap})
            for i in range(ROWS):
                p.produce("sec-in", value=json.dumps({"id": i, "v": f"row-{i}"}))
            assert p.flush(30) == 0
            cls.b = harness.RunnelServer(sec.BINARY, name="kclient-runner").start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.b:
            cls.b.stop()
        cls.a.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def sasl_table(self, name, topic, password=PASSWORD, extra=""):
        return (f"CREATE TABLE {name} (id INT, v STRING) WITH ('connector' = 'kafka', 'topic' = '{topic}', "
                f"'format' = 'json', 'properties.bootstrap.servers' = '{self.sasl_ssl}', "
                f"'properties.security.protocol' = 'SASL_SSL', 'properties.sasl.mechanism' = 'SCRAM-SHA-512', "
                f"'properties.sasl.jaas.config' = '{jaas(password)}', "
                f"'properties.ssl.truststore.location' = '{self.certs['ca.crt']}'{extra})")

    def sql(self, script):
        # Each test declares `src`, `dst` and `sink` its own way: as temporary tables, which the
        # server's catalog (shared by the tests) does not keep.
        script = script.replace("CREATE TABLE ", "CREATE TEMPORARY TABLE ")
        status, body = request(f"{self.b.http}/v1/sql", script)
        self.assert_no_secret(body)
        return status, json.loads(body)

    def pipeline(self, pid):
        status, body = request(f"{self.b.http}/v1/pipelines/{pid}")
        self.assertEqual(status, 200, body)
        self.assert_no_secret(body)
        return json.loads(body)

    def metrics(self):
        status, body = request(f"{self.b.http}/metrics")
        self.assertEqual(status, 200)
        self.assert_no_secret(body)
        return body

    def assert_no_secret(self, text):
        for secret in (PASSWORD, WRONG):
            self.assertNotIn(secret, text)

    def stop_pipeline(self, pid):
        request(f"{self.b.http}/v1/pipelines/{pid}", method="DELETE")

    def start_pipeline(self, pid, script):
        """Runs `script` (naming its pipeline `pid`), which must be accepted; the pipeline is
        deleted after the test."""
        status, body = self.sql(script)
        self.assertEqual(status, 200, body)
        self.addCleanup(self.stop_pipeline, pid)
        return body

    def wait_for_rows(self, bootstrap, topic, what):
        """The first ROWS records of `topic` (one partition), once they are all there."""
        def rows():
            try:
                r = harness.read_to_end(bootstrap, topic, 1, committed=False)
            except Exception:  # a topic the pipeline creates appears with its first row
                return None
            return len(r) >= ROWS and r
        return harness.wait_until(rows, 60, what, interval=0.2)

    # -- cases --------------------------------------------------------------------------------

    def test_a_pipeline_reads_and_writes_over_sasl_ssl(self):
        script = (self.sasl_table("src", "sec-in") + ";\n" +
                  self.sasl_table("dst", "sec-out", extra=", 'sink.delivery-guarantee' = 'at-least-once'") + ";\n"
                  "SET 'pipeline.name' = 'sasl-copy';\n"
                  "INSERT INTO dst SELECT id, UPPER(v) AS v FROM src;\n")
        body = self.start_pipeline("sasl-copy", script)
        statements = [r["statement"] for r in body["results"]]
        self.assertIn("'properties.sasl.jaas.config' = '******'", statements[0])

        rows = self.wait_for_rows(self.a.bootstrap, "sec-out", "every row copied over SASL_SSL")
        values = sorted(json.loads(v)["id"] for _, _, v in rows)
        self.assertEqual(values, list(range(ROWS)))
        self.assertEqual(json.loads(rows[0][2])["v"], f"ROW-{json.loads(rows[0][2])['id']}")
        self.assertEqual(self.pipeline("sasl-copy")["state"], "running")

    def test_mtls_with_a_pem_keystore(self):
        script = (f"CREATE TABLE src (id INT, v STRING) WITH ('connector' = 'kafka', 'topic' = 'sec-in', "
                  f"'format' = 'json', 'properties.bootstrap.servers' = '{self.ssl}', "
                  f"'properties.security.protocol' = 'SSL', "
                  f"'properties.ssl.truststore.location' = '{self.certs['ca.crt']}', "
                  f"'properties.ssl.keystore.location' = '{self.keystore}');\n"
                  "CREATE TABLE local_out (id INT, v STRING) WITH ('connector' = 'topic', 'topic' = 'mtls-out');\n"
                  "SET 'pipeline.name' = 'mtls-copy';\n"
                  "INSERT INTO local_out SELECT id, v FROM src;\n")
        self.start_pipeline("mtls-copy", script)

        rows = self.wait_for_rows(self.b.bootstrap, "mtls-out", "every row read over mTLS into B's log")
        self.assertEqual(sorted(json.loads(v)["id"] for _, _, v in rows), list(range(ROWS)))

    def test_a_wrong_password_shows_as_the_pipeline_reason(self):
        script = (self.sasl_table("src", "sec-in", password=WRONG) + ";\n"
                  "CREATE TABLE sink (id INT, v STRING) WITH ('connector' = 'blackhole');\n"
                  "SET 'pipeline.name' = 'wrong-password';\n"
                  "INSERT INTO sink SELECT id, v FROM src;\n")
        self.start_pipeline("wrong-password", script)

        def refused():
            p = self.pipeline("wrong-password")
            why = p.get("error", "") + p.get("waiting_for", "")
            return "refuses access" in why and why
        why = harness.wait_until(refused, 60, "the refused login in the pipeline's status", interval=0.2)
        print(f"\n  a wrong password shows as: {why}", flush=True)
        self.assertIn(self.sasl_ssl, why)
        self.assertRegex(why, r"(?i)authenticat")
        text = harness.wait_until(
            lambda: (m := self.metrics()) and re.search(r'runnel_job_info\{pipeline="wrong-password"[^}]*'
                                                        r'reason="[^"]*refuses access', m) and m,
            30, "the reason in /metrics", interval=0.2)
        self.assertIn("wrong-password", text)
        with urllib.request.urlopen(f"{self.b.http}/v1/pipelines", timeout=30) as r:
            self.assert_no_secret(r.read().decode())

    def test_a_wrong_password_fails_a_sink_with_the_reason(self):
        script = ("CREATE TABLE gen (id INT, v STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');\n" +
                  self.sasl_table("dst", "sec-out", password=WRONG,
                                  extra=", 'sink.delivery-guarantee' = 'at-least-once'") + ";\n"
                  "SET 'pipeline.name' = 'wrong-password-sink';\n"
                  "INSERT INTO dst SELECT id, v FROM gen;\n")
        self.start_pipeline("wrong-password-sink", script)

        def failed():
            p = self.pipeline("wrong-password-sink")
            return p["state"] == "failed" and p
        p = harness.wait_until(failed, 90, "the sink's refused login failing the pipeline", interval=0.2)
        self.assertIn("refuses access", p["error"])
        self.assertRegex(p["error"], r"(?i)authenticat")
        self.assertRegex(self.metrics(), r'runnel_job_state\{pipeline="wrong-password-sink",state="failed"\} 1')

    def test_bad_options_are_refused_at_creation_naming_table_and_option(self):
        cases = [
            (f", 'properties.ssl.truststore.location' = '{self.jks}'",
             [f"table src: option 'properties.ssl.truststore.location': '{self.jks}' is a Java keystore (JKS)",
              "PEM"]),
            (", 'properties.fetch.max.wait' = '5'",
             ["table src: option 'properties.fetch.max.wait': the Kafka client refuses it: "
              'No such configuration property: "fetch.max.wait"']),
        ]
        for extra, wants in cases:
            with self.subTest(extra=extra):
                table = self.sasl_table("src", "sec-in", extra=extra)
                if "truststore" in extra:  # replace the PEM one, not add a second
                    table = table.replace(f", 'properties.ssl.truststore.location' = '{self.certs['ca.crt']}'", "", 1)
                script = (table + ";\nCREATE TABLE sink (id INT) WITH ('connector' = 'blackhole');\n"
                          "INSERT INTO sink SELECT id FROM src;\n")
                status, body = self.sql(script)
                self.assertEqual((status, body["type"]), (422, "urn:runnel:problem:invalid-pipeline"), body)
                for want in wants:
                    self.assertIn(want, body["detail"])

    def test_the_password_is_masked_in_explain_errors_and_logs(self):
        table = self.sasl_table("src", "sec-in")
        status, body = self.sql(json.dumps({"sql": table + ";\nCREATE TABLE sink (id INT) WITH ('connector' = "
                                                   "'blackhole');\nINSERT INTO sink SELECT id FROM src;\n",
                                            "explain": True}))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["results"][-1]["kind"], "explain")
        # A syntax error on the line of the secret shows the line masked, the caret in place.
        status, body = self.sql(table.replace("'format' = 'json',", "'format' = 'json'\n,") + " garbage")
        self.assertEqual(status, 400, body)
        self.assertIn("******", body["detail"])
        self.assert_no_secret(self.b.log())
        self.assert_no_secret(self.a.log())


if __name__ == "__main__":
    harness.run_unittests("kafka_client_security")
