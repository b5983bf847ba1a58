#!/usr/bin/python3
"""@platformatic/kafka (npm, pure JavaScript) against `runnel serve`.

Installs the client from tests/kafka/platformatic/package-lock.json (`npm ci`) when it is not
there yet, starts a server and runs platformatic/groups.mjs in one of two modes:

  --mode consumer  two members of a consumer-protocol group (KIP-848: ConsumerGroupHeartbeat)
                   share a 4-partition topic: both own partitions, every record is consumed and
                   committed exactly once across them; one leaves and the other takes over its
                   partitions from the committed offsets. The group is then checked with
                   ConsumerGroupDescribe and ListGroups v5 on the wire.
  --mode classic   two idempotent producers (this client asks InitProducerId for producer id and
                   epoch (0, 0)) write records concurrently; a classic group reads them over
                   Fetch v13+. Every acknowledged record is in the log exactly once.

Run: /usr/bin/python3 platformatic_test.py --runnel PATH --mode consumer|classic [--node PATH] [--npm PATH]
"""

import collections
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import kafka_wire  # noqa: E402

JS_DIR = os.path.join(HERE, "platformatic")
RECORDS = 400


def run_js(node, mode, bootstrap, topic):
    p = subprocess.run([node, os.path.join(JS_DIR, "groups.mjs"), mode, bootstrap, topic, str(RECORDS)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=240)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"groups.mjs {mode} exited with {p.returncode}:\n{err}\n{out}"
    return json.loads(out.strip().splitlines()[-1])


def check_consumer(srv, report):
    assert report["first"]["a"] and report["first"]["b"], f"a member owned nothing: {report['first']}"
    assert sorted(report["first"]["a"] + report["first"]["b"]) == [0, 1, 2, 3], report["first"]
    assert report["byA"] > 0 and report["byB"] > 0, f"one member consumed nothing: {report}"
    assert report["secondByA"] == RECORDS, f"after b left, a consumed {report['secondByA']} of {RECORDS}"
    # The group after both left: listed as a consumer-protocol group, empty, not as classic.
    group = report["group"]
    with kafka_wire.Connection(srv.port) as conn:
        _, body = conn.request(kafka_wire.LIST_GROUPS, 5, kafka_wire.list_groups_request(types=["consumer"]))
        _, groups = kafka_wire.parse_list_groups(body)
        assert (group, "consumer", "Empty", "consumer") in groups, f"ListGroups v5 said {groups}"
        _, body = conn.request(kafka_wire.LIST_GROUPS, 5, kafka_wire.list_groups_request(types=["classic"]))
        assert group not in [g[0] for g in kafka_wire.parse_list_groups(body)[1]], "listed as classic too"
    # `runnel group list|describe` name the type (ListGroups v5, ConsumerGroupDescribe).
    cli = [srv.binary, "group", "list", "--format", "json", "--brokers", srv.bootstrap]
    listed = json.loads(subprocess.run(cli, check=True, stdout=subprocess.PIPE, timeout=60).stdout)
    assert {"group": group, "state": "Empty", "protocol_type": "consumer", "protocol": "",
            "type": "consumer"} in listed, f"runnel group list: {listed}"
    cli = [srv.binary, "group", "describe", group, "--format", "json", "--brokers", srv.bootstrap]
    described = json.loads(subprocess.run(cli, check=True, stdout=subprocess.PIPE, timeout=60).stdout)
    assert (described["type"], described["state"], described["protocol"]) == ("consumer", "Empty", "uniform"), described
    committed = {p["partition"]: p["committed_offset"] for p in described["partitions"]}
    ends = {p["partition"]: p["log_end_offset"] for p in described["partitions"]}
    assert committed == ends and len(committed) == 4, f"committed {committed}, log end {ends}"
    return f"{report['byA']}+{report['byB']} records over members a {report['first']['a']} and b " \
           f"{report['first']['b']}, then {report['secondByA']} by a alone"


def check_classic(srv, report, topic):
    log = harness.read_to_end(srv.bootstrap, topic, 4, committed=False)
    keys = collections.Counter(k.decode() for _, k, _ in log)
    twice = [k for k, n in keys.items() if n > 1]
    assert not twice, f"{len(twice)} records are in the log more than once, e.g. {twice[:5]}"
    assert len(keys) == report["produced"], f"log holds {len(keys)} records, {report['produced']} were acknowledged"
    return f"{report['produced']} records from 2 idempotent producers (ids {report['producerIds']}), " \
           f"each once in the log and consumed once"


def main():
    argv = sys.argv
    binary = harness.runnel_binary(argv)
    node = harness.tool(argv, "--node", "node")
    npm = harness.tool(argv, "--npm", "npm")
    mode = argv[argv.index("--mode") + 1]
    name = f"platformatic-{mode}"
    started = time.monotonic()
    print(harness.npm_ci(npm, JS_DIR, "@platformatic/kafka"), flush=True)
    topic = f"platformatic-{mode}"
    # A short heartbeat interval keeps the test quick; sessions stay Kafka's default.
    with harness.RunnelServer(binary, name=name, extra_args=["--group-consumer-heartbeat-interval-ms", "500"]) as srv:
        report = run_js(node, mode, srv.bootstrap, topic)
        assert not report["duplicates"], f"records consumed twice: {report['duplicates'][:5]}"
        assert not report["missing"], f"records never consumed: {report['missing'][:5]}"
        assert report["consumed"] == report["produced"], report
        what = check_consumer(srv, report) if mode == "consumer" else check_classic(srv, report, topic)
        srv.assert_alive()
        for line in srv.warnings():
            print(f"server: {line}")
    print(f"{name}: {what}")
    harness.summary(name, 1, 0, seconds=time.monotonic() - started)


if __name__ == "__main__":
    harness.run_script("platformatic", main)
