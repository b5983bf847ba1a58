#!/usr/bin/python3
"""Every Nexmark query gives the same result over Flink's nested shape as over per-kind tables.

For each query of examples/nexmark that plans, `nexmark_check run` runs it twice over the same
bounded generated stream: once as written (tables of one event kind each) and once with
`--nested examples/nexmark/nested.sql` (one `nexmark` table of every event with the ROWs
person, auction and bid, and views per kind). The two final results must be equal as
multisets of rows. q12 windows processing time, so its rows depend on the wall clock: it is
compared by its rows' count of bidders only.
"""

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
from collections import Counter

# Processing-time windows: only which bidders appear is deterministic.
BY_FIRST_COLUMN = {"q12"}


def run(tool, events, query, out, nested=None, parallelism=1):
    cmd = [tool, "run", "--events", str(events), "--query", query, "--out", out,
           "--option", "base-time=1704034800000", "--option", "first-event.rate=5"]
    if nested:
        cmd += ["--nested", nested]
    if parallelism > 1:
        cmd += ["--parallelism", str(parallelism)]
    return subprocess.run(cmd, capture_output=True, text=True)


def rows(path, first_column_only):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    body = lines[1:]
    if first_column_only:
        return lines[0], Counter(set(line.split(",")[0] for line in body))
    return lines[0], Counter(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True, help="the nexmark_check binary")
    ap.add_argument("--queries", required=True, help="the directory of q0.sql ... q22.sql")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--only", default="", help="comma-separated queries (default: all)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    names = sorted((f[:-4] for f in os.listdir(args.queries) if f.startswith("q") and f.endswith(".sql")),
                   key=lambda n: int(n[1:]))
    names = [q for q in names if not only or q in only]
    nested = os.path.join(args.queries, "nested.sql")
    failed, ok, skipped = [], [], []
    with tempfile.TemporaryDirectory(prefix="nexmark-shapes-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for q in names:
            path = os.path.join(args.queries, f"{q}.sql")
            flat_out, nested_out = os.path.join(tmp, f"{q}.flat.csv"), os.path.join(tmp, f"{q}.nested.csv")
            a = pool.submit(run, args.tool, args.events, path, flat_out)
            b = pool.submit(run, args.tool, args.events, path, nested_out, nested)
            ra, rb = a.result(), b.result()
            if ra.returncode == 2:
                print(f"{q}: skipped: does not plan on per-kind tables")
                skipped.append(q)
                continue
            if ra.returncode != 0 or rb.returncode != 0:
                print(f"{q}: FAIL: exit {ra.returncode} (per-kind) / {rb.returncode} (nested)\n"
                      f"{ra.stdout}{ra.stderr}{rb.stdout}{rb.stderr}")
                failed.append(q)
                continue
            ha, want = rows(flat_out, q in BY_FIRST_COLUMN)
            hb, got = rows(nested_out, q in BY_FIRST_COLUMN)
            if ha != hb or want != got:
                missing = list((want - got).elements())[:10]
                unexpected = list((got - want).elements())[:10]
                print(f"{q}: FAIL: header {ha!r} / {hb!r}; {sum(want.values())} rows per-kind, "
                      f"{sum(got.values())} nested\n  missing: {missing}\n  unexpected: {unexpected}")
                failed.append(q)
                continue
            print(f"{q}: ok ({sum(want.values())} rows)")
            ok.append(q)
    print(f"\nequal {len(ok)}: {' '.join(ok)}\nskipped {len(skipped)}: {' '.join(skipped)}\n"
          f"failed {len(failed)}: {' '.join(failed)}")
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
