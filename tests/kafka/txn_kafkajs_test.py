#!/usr/bin/python3
"""kafkajs (npm, Node.js) transactions against `runnel serve`.

kafkajs/transactions.js runs a transactional producer: send + sendOffsets + commit, then
send + sendOffsets + abort, then send + commit. A read_committed reader (confluent-kafka) then
sees exactly the committed records, a read_uncommitted one sees the aborted ones too, and the
group's committed offset is the one of the committed transaction, not the aborted one.

Run: /usr/bin/python3 txn_kafkajs_test.py --runnel PATH [--node PATH] [--npm PATH]
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from kafkajs_test import JS_DIR  # noqa: E402


def main():
    argv = sys.argv
    binary = harness.runnel_binary(argv)
    node = harness.tool(argv, "--node", "node")
    npm = harness.tool(argv, "--npm", "npm")
    started = time.monotonic()
    print(harness.npm_ci(npm, JS_DIR, "kafkajs"), flush=True)
    with harness.RunnelServer(binary, name="kafkajs-txn") as srv:
        env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
        p = subprocess.run([node, os.path.join(JS_DIR, "transactions.js"), srv.bootstrap, "js-txn", "js-in",
                            "js-group"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120, env=env)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        assert p.returncode == 0, f"transactions.js exited with {p.returncode}:\n{err}\n{out}"
        report = json.loads(out.strip().splitlines()[-1])
        committed = [v for _, _, v in harness.read_to_end(srv.bootstrap, "js-txn", 2, committed=True)]
        assert sorted(committed) == sorted([b"committed-%d" % i for i in range(100)]
                                           + [b"last-%d" % i for i in range(10)]), committed[:5]
        everything = harness.read_to_end(srv.bootstrap, "js-txn", 2, committed=False)
        assert len(everything) == report["committed"] + report["aborted"], len(everything)
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "js-group", "enable.auto.commit": False})
        try:
            (tp,) = c.committed([TopicPartition("js-in", 0)], 30)
        finally:
            c.close()
        assert tp.offset == 42, f"the group's offset is {tp.offset}, not the committed transaction's 42"
        srv.assert_alive()
    print(f"kafkajs transactions: {len(committed)} committed records visible, {report['aborted']} aborted hidden, "
          f"group offset from the committed transaction")
    harness.summary("kafkajs-txn", 1, 0, seconds=time.monotonic() - started)


if __name__ == "__main__":
    harness.run_script("kafkajs-txn", main)
