#!/usr/bin/python3
"""kafkajs (npm, Node.js) against `runnel serve`.

Installs kafkajs from tests/kafka/kafkajs/package-lock.json (`npm ci`) when it is not there
yet, starts a server, writes the 100,000 records as JSON lines, runs kafkajs/roundtrip.js
(create the 6-partition topic, produce with headers and explicit timestamps, read offsets
by position and by time, consume everything back) and verifies what it consumed with the
same rules as the other clients, plus the time lookup against the consumed timestamps.

Run: /usr/bin/python3 kafkajs_test.py --runnel PATH [--node PATH] [--npm PATH]
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import records  # noqa: E402

TOPIC = "kafkajs-roundtrip"
JS_DIR = os.path.join(HERE, "kafkajs")


def main():
    argv = sys.argv
    binary = harness.runnel_binary(argv)
    node = harness.tool(argv, "--node", "node")
    npm = harness.tool(argv, "--npm", "npm")
    started = time.monotonic()
    print(harness.npm_ci(npm, JS_DIR, "kafkajs"), flush=True)

    ds = records.Dataset("kafkajs")
    time_query = ds.timestamp(ds.n // 2)
    with harness.RunnelServer(binary, name="kafkajs") as srv, \
            tempfile.TemporaryDirectory(prefix="kafkajs-itest-") as work:
        input_path = os.path.join(work, "in.ndjson")
        output_path = os.path.join(work, "out.ndjson")
        with open(input_path, "w") as f:
            for i in range(ds.n):
                f.write(json.dumps({
                    "k": ds.key(i).decode(), "v": ds.value(i).decode(),
                    "h": [[name, base64.b64encode(v).decode()] for name, v in ds.headers(i)],
                    "ts": ds.timestamp(i),
                }) + "\n")
        env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
        p = subprocess.run([node, os.path.join(JS_DIR, "roundtrip.js"), srv.bootstrap, TOPIC,
                            str(records.PARTITIONS), input_path, output_path, str(time_query)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=240, env=env)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        assert p.returncode == 0, f"roundtrip.js exited with {p.returncode}:\n{err}\n{out}"
        if err.strip():
            print(f"kafkajs stderr:\n{err.strip()}")
        report = json.loads(out.strip().splitlines()[-1])
        assert report["partitionsUsed"] == list(range(records.PARTITIONS)), f"producer used {report['partitionsUsed']}"

        got = []
        with open(output_path) as f:
            for line in f:
                r = json.loads(line)
                got.append(records.Consumed(r["p"], r["o"], base64.b64decode(r["k"]), base64.b64decode(r["v"]),
                                            [(n, base64.b64decode(v)) for n, v in r["h"]], r["ts"]))
        what = records.verify(got, ds)

        per_partition = {}
        first_at_or_after = {}
        for r in got:
            per_partition[r.partition] = per_partition.get(r.partition, 0) + 1
            if r.timestamp >= time_query and r.partition not in first_at_or_after:
                first_at_or_after[r.partition] = r.offset
        high = {int(k): v for k, v in report["high"].items()}
        assert high == per_partition, f"high watermarks {high} differ from records consumed {per_partition}"
        by_time = {int(k): v for k, v in report["timeOffsets"].items()}
        assert by_time == first_at_or_after, \
            f"offsets for timestamp {time_query}: server said {by_time}, consumed records say {first_at_or_after}"
        srv.assert_alive()
        for line in srv.warnings():
            print(f"server: {line}")
    print(f"kafkajs: {what}; time lookup checked on {len(by_time)} partitions; "
          f"produce {report['produceSeconds']:.1f} s, consume {report['consumeSeconds']:.1f} s")
    harness.summary("kafkajs", 1, 0, seconds=time.monotonic() - started)


if __name__ == "__main__":
    harness.run_script("kafkajs", main)
