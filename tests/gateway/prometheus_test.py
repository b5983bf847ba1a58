#!/usr/bin/python3
"""A real Prometheus (Debian `prometheus`) scrapes `runnel serve`'s /metrics on loopback.

Records are produced over REST to a topic of three partitions; Prometheus, started on a free
loopback port with a generated config scraping every 500 ms, must report the target up with
no scrape error, and its query API must return each partition's log end offset as produced,
and the lag of a consumer group that committed offsets through the Kafka protocol
(`kafka_consumergroup_lag`, kafka_exporter's name) as log end minus committed, and each
partition's offset under kafka_exporter's `kafka_topic_partition_current_offset`. The server
runs the demo pipeline, whose watermark lag Prometheus must see under the label `pipeline`
(not `job`, which Prometheus keeps for its own scrape job), and the process series.

Run: /usr/bin/python3 prometheus_test.py --runnel PATH
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gw  # noqa: E402
from gw import call, expect, harness  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"
DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs")
ALERTS = os.path.abspath(os.path.join(DOCS, "prometheus", "alerts.yml"))
GRAFANA = os.path.abspath(os.path.join(DOCS, "grafana", "runnel.json"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base, q):
    r = call("GET", f"{base}/api/v1/query?query={urllib.parse.quote(q)}")
    if r.status != 200:
        return None
    return r.json()["data"]["result"]


def test_prometheus_scrapes_log_end_offsets(srv):
    expect(call("POST", f"{srv.http}/v1/topics", {"name": "prom", "partitions": 3}), 201, "create")
    counts = {0: 7, 1: 12, 2: 3}
    for p, n in counts.items():
        expect(call("POST", f"{srv.http}/v1/topics/prom/records",
                    {"records": [{"value": f"{p}-{i}", "partition": p} for i in range(n)]}), 200, "produce")
    # A consumer group commits part of each partition through the Kafka protocol.
    from confluent_kafka import Consumer, TopicPartition
    committed = {0: 2, 1: 12, 2: 0}
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "prom-group", "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition("prom", p, o) for p, o in committed.items()], asynchronous=False)
    finally:
        c.close()
    want_lag = {str(p): float(counts[p] - committed[p]) for p in counts}
    with tempfile.TemporaryDirectory(prefix="gw-prom-") as work:
        port = free_port()
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 500ms\n  evaluation_interval: 500ms\n"
                    f"rule_files:\n  - {ALERTS}\n"
                    "scrape_configs:\n  - job_name: runnel\n    scrape_interval: 500ms\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{srv.http_port}']\n")
        log = open(os.path.join(work, "prometheus.log"), "w+")
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={work}/data",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = harness.Deadline(60, "Prometheus to scrape the log end offsets")
            want = {str(p): float(n) for p, n in counts.items()}
            got = {}
            while got != want:
                assert prom.poll() is None, "prometheus exited:\n" + open(log.name).read()[-3000:]
                deadline.check(f"(last answer {got})")
                try:
                    res = query(base, 'runnel_partition_log_end_offset{topic="prom"}') or []
                    got = {r["metric"]["partition"]: float(r["value"][1]) for r in res}
                except OSError:
                    pass
                time.sleep(0.2)
            deadline = harness.Deadline(30, "Prometheus to report the consumer group's lag")
            lag = {}
            while lag != want_lag:
                deadline.check(f"(last answer {lag})")
                res = query(base, 'kafka_consumergroup_lag{consumergroup="prom-group",topic="prom"}') or []
                lag = {r["metric"]["partition"]: float(r["value"][1]) for r in res}
                time.sleep(0.2)
            offsets = query(base, 'kafka_topic_partition_current_offset{topic="prom"}') or []
            assert {r["metric"]["partition"]: float(r["value"][1]) for r in offsets} == want, offsets
            parts = query(base, 'kafka_topic_partitions{topic="prom"}')
            assert parts and parts[0]["value"][1] == "3", parts
            deadline = harness.Deadline(60, "the demo pipeline's watermark lag in Prometheus")
            while True:
                res = query(base, 'runnel_job_watermark_lag_seconds{pipeline="demo-bids-per-channel"}')
                if res:
                    assert res[0]["metric"]["job"] == "runnel", res  # Prometheus's own label, unrenamed
                    assert "exported_job" not in res[0]["metric"], res
                    break
                deadline.check()
                time.sleep(0.2)
            running = query(base, 'runnel_job_state{pipeline="demo-bids-per-channel",state="running"}')
            assert running and running[0]["value"][1] == "1", running
            for name in ("process_cpu_seconds_total", "process_start_time_seconds", "process_open_fds",
                         "kafka_brokers"):
                assert query(base, name), f"no {name}"
            # The shipped alert rules load, and every Grafana panel's query is one Prometheus runs.
            groups = call("GET", f"{base}/api/v1/rules").json()["data"]["groups"]
            assert groups and all(r["health"] != "err" for g in groups for r in g["rules"]), groups
            with open(GRAFANA) as f:
                board = json.load(f)
            for panel in board["panels"]:
                for t in panel["targets"]:
                    expr = t["expr"].replace("$instance", ".*")
                    r = call("GET", f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
                    assert r.status == 200, f"Grafana panel {panel['title']!r}: {expr}: {r!r}"
            lag_sum = query(base, 'kafka_consumergroup_lag_sum{consumergroup="prom-group",topic="prom"}')
            assert lag_sum and float(lag_sum[0]["value"][1]) == sum(want_lag.values()), lag_sum
            assert query(base, 'runnel_kafka_requests_total{api="OffsetCommit"}'), "no Kafka request counter"
            targets = call("GET", f"{base}/api/v1/targets").json()["data"]["activeTargets"]
            assert len(targets) == 1 and targets[0]["health"] == "up", json.dumps(targets)
            assert targets[0]["lastError"] == "", targets[0]["lastError"]
            up = query(base, 'up{job="runnel"}')
            assert up and up[0]["value"][1] == "1", up
            # The process and HTTP series are there too.
            assert query(base, "process_resident_memory_bytes"), "no process_resident_memory_bytes"
            # A scrape is counted once answered, so the counter shows from the second scrape on.
            deadline = harness.Deadline(30, "the /metrics request counter in Prometheus")
            while not query(base, 'runnel_http_requests_total{route="/metrics",status="200"}'):
                deadline.check()
                time.sleep(0.2)
        finally:
            prom.terminate()
            try:
                prom.wait(timeout=30)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
            log.close()


def main():
    binary = harness.runnel_binary()
    with harness.RunnelServer(binary, name="gw-prom", shards=2,
                              extra_args=["--demo", "--demo-rate", "500"]) as srv:
        return gw.run_tests("prometheus_test", [test_prometheus_scrapes_log_end_offsets], srv)


if __name__ == "__main__":
    sys.exit(main())
