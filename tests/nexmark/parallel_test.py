#!/usr/bin/python3
"""Nexmark queries give the same result as 2 and 4 parallel instances as they do as one.

For each listed query, `nexmark_check run` runs it over the same bounded generated stream once
as one instance and again with `--parallelism 2` and `--parallelism 4`: N pipelines on N
threads, each generating the events n with n % N == i, joined by the planner's exchanges
before every keyed operator. The final results must be equal as multisets of rows (a
changelog applied to its sink's table first). q19 ranks bids by price, and bids of equal price
rank in the order they reach the Top-N, which differs when they come from several instances:
it is compared by (auction, price, rank) only, which ties cannot change.
"""

import argparse
import csv
import os
import sys
import tempfile
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes_test import rows, run  # noqa: E402

QUERIES = "q4,q5,q7,q8,q9,q11,q15,q16,q17,q18,q19,q20"
# Queries whose rows may differ among ties, by the columns that may not (auction, price, rank).
TIES = {"q19": (0, 2, 7)}


def project(counter, columns):
    """The multiset of rows cut to `columns` (None: unchanged)."""
    if columns is None:
        return counter
    out = Counter()
    for line, n in counter.items():
        fields = next(csv.reader([line]))
        out[tuple(fields[i] for i in columns)] += n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True, help="the nexmark_check binary")
    ap.add_argument("--queries", required=True, help="the directory of q0.sql ... q22.sql")
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--only", default=QUERIES, help="comma-separated queries")
    ap.add_argument("--parallelism", default="2,4", help="instance counts to compare with one")
    args = ap.parse_args()
    failed, ok = [], []
    counts = [int(n) for n in args.parallelism.split(",")]
    with tempfile.TemporaryDirectory(prefix="nexmark-parallel-") as tmp:
        for q in filter(None, args.only.split(",")):
            path = os.path.join(args.queries, f"{q}.sql")
            one = os.path.join(tmp, f"{q}.1.csv")
            r = run(args.tool, args.events, path, one)
            if r.returncode != 0:
                print(f"{q}: FAIL: one instance: exit {r.returncode}\n{r.stdout}{r.stderr}")
                failed.append(q)
                continue
            header, want = rows(one, False)
            want = project(want, TIES.get(q))
            good = True
            for n in counts:
                out = os.path.join(tmp, f"{q}.{n}.csv")
                r = run(args.tool, args.events, path, out, parallelism=n)
                if r.returncode != 0:
                    print(f"{q}: FAIL: {n} instances: exit {r.returncode}\n{r.stdout}{r.stderr}")
                    good = False
                    continue
                h, got = rows(out, False)
                got = project(got, TIES.get(q))
                if h != header or got != want:
                    missing = list((want - got).elements())[:10]
                    unexpected = list((got - want).elements())[:10]
                    print(f"{q}: FAIL: {n} instances: {sum(want.values())} rows from one, "
                          f"{sum(got.values())} from {n}\n  missing: {missing}\n  unexpected: {unexpected}")
                    good = False
            if good:
                print(f"{q}: ok ({sum(want.values())} rows at parallelism 1, {args.parallelism})")
                ok.append(q)
            else:
                failed.append(q)
    print(f"\nequal {len(ok)}: {' '.join(ok)}\nfailed {len(failed)}: {' '.join(failed)}")
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
