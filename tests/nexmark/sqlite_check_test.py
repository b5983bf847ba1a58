#!/usr/bin/python3
"""Every Nexmark query of examples/nexmark that plans, run by Runnel to the end of a bounded
generated stream, against the same query computed again as ordinary batch SQL in SQLite over
the same events (tests/nexmark/README.md).

    sqlite_check_test.py --tool build/release/tests/nexmark/nexmark_check \
                         --queries examples/nexmark [--events 200000] [--only q5,q7]

`nexmark_check dump` writes the events as CSV; they are loaded into an in-memory SQLite
database. For each query `nexmark_check run` writes Runnel's final rows (also loaded as the
table `got` when a query compares a projection of them or checks them with SQL). The SQLite side below is written from what each query computes (the Nexmark
suite's description), not from how the planner runs it: windows by integer arithmetic on epoch
milliseconds, sessions with LAG and a running sum, Top-N and deduplication with NOT EXISTS or
ROW_NUMBER. The two results are compared as multisets (doubles within a relative 1e-9), and
every difference is printed as rows. A query that does not plan is printed as skipped with the
planner's message, unless it is one that must plan (MUST_PLAN), which fails.
"""

import argparse
import concurrent.futures
import csv
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

# Queries the planner runs today: each of these must plan and match.
MUST_PLAN = {"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q11", "q12", "q13", "q14", "q15", "q16", "q17", "q18", "q19", "q20",
             "q21", "q22"}

# The stream: 5 events per second of event time from 2023-12-31 15:00:00 UTC, so 200,000
# events span about 11 hours: thousands of 10-second windows, sessions that close and sessions
# that run on, every HOUR class of q14, and a change of day (and year) for q15-q17. Every event
# has its own millisecond (200 ms apart), so "latest" and "earliest" never tie.
GENERATOR = {"first-event.rate": "5", "base-time": "1704034800000"}

SCHEMAS = {
    "person": [("id", "INTEGER"), ("name", "TEXT"), ("emailAddress", "TEXT"), ("creditCard", "TEXT"),
               ("city", "TEXT"), ("state", "TEXT"), ("dateTime", "INTEGER"), ("extra", "TEXT")],
    "auction": [("id", "INTEGER"), ("itemName", "TEXT"), ("description", "TEXT"), ("initialBid", "INTEGER"),
                ("reserve", "INTEGER"), ("dateTime", "INTEGER"), ("expires", "INTEGER"), ("seller", "INTEGER"),
                ("category", "INTEGER"), ("extra", "TEXT")],
    "bid": [("auction", "INTEGER"), ("bidder", "INTEGER"), ("price", "INTEGER"), ("channel", "TEXT"),
            ("url", "TEXT"), ("dateTime", "INTEGER"), ("extra", "TEXT")],
}

# The bands of q15-q17: under $100, under $10,000, the rest (prices are in cents).
BANDS = ["price < 10000", "price >= 10000 AND price < 1000000", "price >= 1000000"]


def day(ts):
    return f"strftime('%Y-%m-%d', {ts} / 1000, 'unixepoch')"


def band_counts(col=None):
    """COUNT(*) per band, or COUNT(DISTINCT col) per band, as SQLite expressions."""
    if col is None:
        return ", ".join(f"SUM(CASE WHEN {b} THEN 1 ELSE 0 END)" for b in BANDS)
    return ", ".join(f"COUNT(DISTINCT CASE WHEN {b} THEN {col} END)" for b in BANDS)


# The value of the URL parameter channel_id: the text after the first 'channel_id=' that starts
# the URL or follows a '&', up to the next '&' (NULL when there is none).
CHANNEL_ID = """
  CASE WHEN p IS NULL THEN NULL
       WHEN instr(substr(url, p), '&') > 0 THEN substr(url, p, instr(substr(url, p), '&') - 1)
       ELSE substr(url, p) END"""
CHANNEL_ID_FROM = """
  (SELECT *, CASE WHEN substr(url, 1, 11) = 'channel_id=' THEN 12
                  WHEN instr(url, '&channel_id=') > 0 THEN instr(url, '&channel_id=') + 12 END AS p
   FROM bid)"""


# The parts of each bid's URL split at '/', numbered from 0, by the bid's rowid: the URL with a
# '/' appended is cut at each '/' in turn.
URL_PARTS = """
  WITH RECURSIVE split(id, i, part, rest) AS (
    SELECT rowid, -1, NULL, url || '/' FROM bid
    UNION ALL
    SELECT id, i + 1, substr(rest, 1, instr(rest, '/') - 1), substr(rest, instr(rest, '/') + 1)
    FROM split WHERE instr(rest, '/') > 0 AND i < 5),
  dirs AS (
    SELECT id, MAX(CASE WHEN i = 3 THEN part END) AS dir1, MAX(CASE WHEN i = 4 THEN part END) AS dir2,
           MAX(CASE WHEN i = 5 THEN part END) AS dir3
    FROM split GROUP BY id)"""


# Per query: `expected` (SQLite over person, auction, bid, side_input), optionally `got` (SQL
# over Runnel's rows in table got, when the comparison is on a projection of them), and
# `checks`: (what must hold, SQL listing the rows that break it).
QUERIES = {
    # Every bid.
    "q0": {"expected": "SELECT auction, bidder, price, dateTime, extra FROM bid"},
    # Every bid, price in euros.
    "q1": {"expected": "SELECT auction, bidder, 0.908 * price, dateTime, extra FROM bid"},
    # Bids on every 123rd auction.
    "q2": {"expected": "SELECT auction, price FROM bid WHERE auction % 123 = 0"},
    # Sellers in OR, ID, CA with auctions in category 10.
    "q3": {"expected": """
        SELECT p.name, p.city, p.state, a.id
        FROM auction a, person p
        WHERE a.seller = p.id AND a.category = 10 AND p.state IN ('OR', 'ID', 'CA')"""},
    # Per category, the average (integer, truncated) of each auction's highest bid placed
    # while it was open.
    "q4": {"expected": """
        WITH winners AS (
          SELECT a.id, a.category, MAX(b.price) AS final
          FROM auction a, bid b
          WHERE b.auction = a.id AND b.dateTime >= a.dateTime AND b.dateTime <= a.expires
          GROUP BY a.id, a.category)
        SELECT category, SUM(final) / COUNT(*) FROM winners GROUP BY category"""},
    # Per 10 s window sliding by 2 s: the auctions with the most bids. A bid at t is in the
    # windows starting at t - t % 2000 - k * 2000, k = 0..4.
    "q5": {"expected": """
        WITH k(k) AS (VALUES (0), (1), (2), (3), (4)),
        counts AS (
          SELECT b.auction, b.dateTime - b.dateTime % 2000 - k.k * 2000 AS ws, COUNT(*) AS num
          FROM bid b, k GROUP BY 1, 2),
        top AS (SELECT ws, MAX(num) AS maxn FROM counts GROUP BY ws)
        SELECT c.auction, c.num FROM counts c, top t WHERE c.ws = t.ws AND c.num >= t.maxn"""},
    # The bids at the highest price of each 10 s tumbling window; a bid qualifies when its
    # time is in [window end - 10 s, window end], both ends included.
    "q7": {"expected": """
        WITH w AS (SELECT dateTime - dateTime % 10000 + 10000 AS we, MAX(price) AS maxprice FROM bid GROUP BY 1)
        SELECT b.auction, b.price, b.bidder, b.dateTime, b.extra
        FROM bid b, w
        WHERE b.price = w.maxprice AND b.dateTime >= w.we - 10000 AND b.dateTime <= w.we"""},
    # People who registered and opened an auction in the same 10 s tumbling window.
    "q8": {"expected": """
        WITH p AS (SELECT DISTINCT id, name, dateTime - dateTime % 10000 AS ws FROM person),
             a AS (SELECT DISTINCT seller, dateTime - dateTime % 10000 AS ws FROM auction)
        SELECT p.id, p.name, p.ws FROM p, a WHERE p.id = a.seller AND p.ws = a.ws"""},
    # Each auction with its winning bid: the highest price placed while it was open, the
    # earliest of equal prices.
    "q9": {"expected": """
        SELECT a.id, a.itemName, a.description, a.initialBid, a.reserve, a.dateTime, a.expires, a.seller,
               a.category, a.extra, b.auction, b.bidder, b.price, b.dateTime, b.extra
        FROM auction a, bid b
        WHERE b.auction = a.id AND b.dateTime >= a.dateTime AND b.dateTime <= a.expires
          AND NOT EXISTS (
            SELECT 1 FROM bid o
            WHERE o.auction = a.id AND o.dateTime >= a.dateTime AND o.dateTime <= a.expires
              AND (o.price > b.price OR (o.price = b.price AND o.dateTime < b.dateTime)))"""},
    # Bids per bidder per session. A bid opens the window [t, t + 10 s); windows that overlap
    # or touch merge (Flink's session windows), so a bid more than 10 s after the bidder's
    # previous one starts a new session. A session ends 10 s after its last bid.
    "q11": {
        "expected": """
        WITH o AS (
          SELECT bidder, dateTime,
                 CASE WHEN dateTime - LAG(dateTime) OVER (PARTITION BY bidder ORDER BY dateTime) <= 10000
                      THEN 0 ELSE 1 END AS opens
          FROM bid),
        s AS (
          SELECT bidder, dateTime,
                 SUM(opens) OVER (PARTITION BY bidder ORDER BY dateTime ROWS UNBOUNDED PRECEDING) AS session
          FROM o)
        SELECT bidder, COUNT(*), MIN(dateTime), MAX(dateTime) + 10000 FROM s GROUP BY bidder, session"""},
    # Bids per bidder per 10 s window of processing time: which window a bid lands in depends
    # on the clock, so the check is each bidder's total and the windows' shape.
    "q12": {
        "expected": "SELECT bidder, COUNT(*) FROM bid GROUP BY bidder",
        "got": "SELECT bidder, SUM(bid_count) FROM got GROUP BY bidder",
        "checks": [("windows are 10 s and aligned",
                    "SELECT * FROM got WHERE endtime - starttime <> 10000 OR starttime % 10000 <> 0")],
    },
    # Each bid with the side table's row for its auction id modulo 10,000.
    "q13": {"expected": """
        SELECT b.auction, b.bidder, b.price, b.dateTime, s.value
        FROM bid b, side_input s WHERE b.auction % 10000 = s.key"""},
    # Bids between 1,000,000 and 50,000,000 euro cents, with the hour of day classified and
    # the 'c's of extra counted.
    "q14": {"expected": """
        SELECT auction, bidder, 0.908 * price,
               CASE WHEN h >= 8 AND h <= 18 THEN 'dayTime'
                    WHEN h <= 6 OR h >= 20 THEN 'nightTime'
                    ELSE 'otherTime' END,
               dateTime, extra, length(extra) - length(replace(extra, 'c', ''))
        FROM (SELECT *, dateTime / 3600000 % 24 AS h FROM bid)
        WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000"""},
    # Per day: bids, distinct bidders, distinct auctions, overall and per price band.
    "q15": {"expected": f"""
        SELECT {day('dateTime')}, COUNT(*), {band_counts()},
               COUNT(DISTINCT bidder), {band_counts('bidder')},
               COUNT(DISTINCT auction), {band_counts('auction')}
        FROM bid GROUP BY 1"""},
    # q15 per channel and day, with the last minute of the day that saw a bid.
    "q16": {"expected": f"""
        SELECT channel, {day('dateTime')}, MAX(strftime('%H:%M', dateTime / 1000, 'unixepoch')),
               COUNT(*), {band_counts()},
               COUNT(DISTINCT bidder), {band_counts('bidder')},
               COUNT(DISTINCT auction), {band_counts('auction')}
        FROM bid GROUP BY 1, 2"""},
    # Per auction and day: bids per band, and min, max, average (integer, truncated), total price.
    "q17": {"expected": f"""
        SELECT auction, {day('dateTime')}, COUNT(*), {band_counts()},
               MIN(price), MAX(price), SUM(price) / COUNT(price), SUM(price)
        FROM bid GROUP BY 1, 2"""},
    # The latest bid of each bidder on each auction.
    "q18": {"expected": """
        SELECT auction, bidder, price, channel, url, dateTime, extra FROM bid b
        WHERE NOT EXISTS (SELECT 1 FROM bid n WHERE n.bidder = b.bidder AND n.auction = b.auction
                                                AND n.dateTime > b.dateTime)"""},
    # The ten highest bids of each auction, numbered. Equal prices may be numbered either way,
    # so the comparison is on (auction, price, number); the rows themselves must be distinct
    # bids of that auction.
    "q19": {
        "expected": """
            SELECT auction, price, n FROM (
              SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS n FROM bid)
            WHERE n <= 10""",
        "got": "SELECT auction, price, rank_number FROM got",
        "checks": [
            ("every row is a bid", """
                SELECT * FROM got g WHERE NOT EXISTS (
                  SELECT 1 FROM bid b WHERE b.auction = g.auction AND b.bidder = g.bidder AND b.price = g.price
                    AND b.channel = g.channel AND b.url = g.url AND b.dateTime = g.dateTime AND b.extra = g.extra)"""),
            ("no bid twice", """
                SELECT auction, bidder, dateTime, COUNT(*) FROM got GROUP BY 1, 2, 3 HAVING COUNT(*) > 1"""),
        ],
    },
    # Bids on auctions of category 10 with their auction's fields.
    "q20": {"expected": """
        SELECT b.auction, b.bidder, b.price, b.channel, b.url, b.dateTime, b.extra,
               a.itemName, a.description, a.initialBid, a.reserve, a.dateTime, a.expires, a.seller,
               a.category, a.extra
        FROM bid b, auction a WHERE b.auction = a.id AND a.category = 10"""},
    # Bids with a channel id: fixed for the four big channels, else the URL's channel_id.
    "q21": {"expected": f"""
        SELECT auction, bidder, price, channel,
               CASE lower(channel) WHEN 'apple' THEN '0' WHEN 'google' THEN '1'
                                   WHEN 'facebook' THEN '2' WHEN 'baidu' THEN '3'
                                   ELSE {CHANNEL_ID} END
        FROM {CHANNEL_ID_FROM}
        WHERE p IS NOT NULL OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')"""},
    # Each bid with parts 3, 4 and 5 (from 0) of its URL split at '/'.
    "q22": {"expected": f"""
        {URL_PARTS}
        SELECT b.auction, b.bidder, b.price, b.channel, d.dir1, d.dir2, d.dir3
        FROM dirs d, bid b WHERE b.rowid = d.id"""},
}


def load_csv(db, table, columns, path):
    """A file of nexmark_check dump (no NULLs) into a new table."""
    db.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)})")
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)


def read_result(path):
    """Runnel's rows: header `name:type`, \\N for NULL; values typed by the header."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        data = list(rows)
    names, types = zip(*(h.rsplit(":", 1) for h in header))
    conv = {"int64": int, "timestamp": int, "boolean": int, "float64": float, "string": str}
    columns = []
    for i, t in enumerate(types):
        values = [r[i] for r in data]
        fn = conv[t]
        if "\\N" in values:
            columns.append([None if v == "\\N" else fn(v) for v in values])
        elif t == "string":
            columns.append(values)
        else:
            columns.append(list(map(fn, values)))
    sqlite_types = {"int64": "INTEGER", "timestamp": "INTEGER", "boolean": "INTEGER", "float64": "REAL",
                    "string": "TEXT"}
    return list(names), [sqlite_types[t] for t in types], list(zip(*columns)) if data else []


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return False
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b
    return a == b


def compare(expected, got):
    """(missing, unexpected): rows of `expected` not in `got` and the other way round, as
    multisets; doubles match within a relative 1e-9."""
    want = Counter(expected)
    unexpected = []
    for row in got:
        n = want.get(row, 0)
        if n:
            want[row] = n - 1
        else:
            unexpected.append(row)
    missing = list((+want).elements())
    if not missing or not unexpected:
        return missing, unexpected
    # Pair what is left up to double rounding: group by the non-double values.
    def shape(row):
        return tuple("<float>" if isinstance(v, float) else v for v in row)

    pool = defaultdict(list)
    for row in unexpected:
        pool[shape(row)].append(row)
    still_missing = []
    for row in missing:
        cands = pool.get(shape(row), [])
        for i, c in enumerate(cands):
            if len(c) == len(row) and all(close(x, y) for x, y in zip(row, c)):
                cands.pop(i)
                break
        else:
            still_missing.append(row)
    return still_missing, [r for rows in pool.values() for r in rows]


def show(label, rows, limit=20):
    print(f"  {label}: {len(rows)} rows")
    for r in sorted(rows, key=repr)[:limit]:
        print("    " + ", ".join("NULL" if v is None else repr(v) if isinstance(v, float) else str(v) for v in r))
    if len(rows) > limit:
        print(f"    ... and {len(rows) - limit} more")


def run_query(tool, events, options, path, out):
    t = time.monotonic()
    r = subprocess.run([tool, "run", "--events", str(events), "--query", path, "--out", out] + options,
                       capture_output=True, text=True)
    return r, time.monotonic() - t


def check(db, q, spec, run, seconds, out):
    """Compares one query's rows; prints the outcome and returns 'ok', 'skipped' or 'failed'."""
    if run.returncode == 2:
        reason = run.stdout.strip().splitlines()[0] if run.stdout.strip() else "(no message)"
        if q in MUST_PLAN:
            print(f"{q}: FAIL: does not plan any more: {reason}")
            return "failed"
        # The SQLite side stays ready for the day the query plans: it must at least compile.
        try:
            db.execute("EXPLAIN " + spec["expected"]).fetchall()
        except sqlite3.Error as e:
            print(f"{q}: FAIL: the SQLite query does not compile: {e}")
            return "failed"
        print(f"{q}: skipped: {reason}")
        return "skipped"
    if run.returncode != 0:
        print(f"{q}: FAIL: nexmark_check run exited {run.returncode}\n{run.stdout}{run.stderr}")
        return "failed"
    t = time.monotonic()
    names, types, rows = read_result(out)
    if "got" in spec or "checks" in spec:
        db.execute("DROP TABLE IF EXISTS got")
        db.execute(f"CREATE TABLE got ({', '.join(f'{n} {t}' for n, t in zip(names, types))})")
        db.executemany(f"INSERT INTO got VALUES ({', '.join('?' * len(names))})", rows)
    got = db.execute(spec["got"]).fetchall() if "got" in spec else rows
    expected = db.execute(spec["expected"]).fetchall()
    missing, unexpected = compare(expected, got)
    broken = [(what, db.execute(sql).fetchall()) for what, sql in spec.get("checks", [])]
    broken = [(what, rs) for what, rs in broken if rs]
    known = spec.get("known")
    timing = f"Runnel {seconds:.1f} s, SQLite {time.monotonic() - t:.1f} s"
    if not missing and not unexpected and not broken:
        print(f"{q}: ok, {len(expected)} rows ({timing})")
        if known:
            print(f"  the known difference ({known['what']}) is gone: drop it from QUERIES")
        return "ok"
    if known and not broken:
        # A difference from the reference meaning that is known and reported: the rows are
        # printed, and Runnel must still match the meaning it has today exactly.
        print(f"{q}: known difference from the reference: {known['what']}")
        show("missing (SQLite has them, Runnel does not)", missing)
        show("unexpected (Runnel has them, SQLite does not)", unexpected)
        today = db.execute(known["expected"]).fetchall()
        missing, unexpected = compare(today, got)
        if not missing and not unexpected:
            print(f"{q}: ok as known, {len(today)} rows ({timing})")
            return "ok"
        print(f"{q}: FAIL: differs from the known difference too")
    else:
        print(f"{q}: FAIL: {len(got)} rows from Runnel, {len(expected)} from SQLite ({timing})")
    if missing:
        show("missing (SQLite has them, Runnel does not)", missing)
    if unexpected:
        show("unexpected (Runnel has them, SQLite does not)", unexpected)
    for what, rs in broken:
        show(f"not true that {what}", rs)
    return "failed"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True, help="the nexmark_check binary")
    ap.add_argument("--queries", required=True, help="the directory of q0.sql ... q22.sql")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--only", default="", help="comma-separated queries to check (default: all)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    names = [q for q in sorted(QUERIES, key=lambda n: int(n[1:])) if not only or q in only]
    options = [a for k, v in GENERATOR.items() for a in ("--option", f"{k}={v}")]
    t0 = time.monotonic()
    outcome = {"ok": [], "skipped": [], "failed": []}

    with tempfile.TemporaryDirectory(prefix="nexmark-check-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        # Runnel runs the queries one after another in the background while SQLite computes.
        runs = {q: pool.submit(run_query, args.tool, args.events, options, os.path.join(args.queries, f"{q}.sql"),
                               os.path.join(tmp, f"{q}.csv")) for q in names}
        dump = subprocess.run([args.tool, "dump", "--events", str(args.events), "--out", tmp] + options,
                              capture_output=True, text=True)
        if dump.returncode != 0:
            print(f"nexmark_check dump failed ({dump.returncode}):\n{dump.stdout}{dump.stderr}")
            for f in runs.values():
                f.cancel()
            return 1
        db = sqlite3.connect(":memory:")
        for table, columns in SCHEMAS.items():
            load_csv(db, table, columns, os.path.join(tmp, f"{table}.csv"))
        load_side_input(db, os.path.join(args.queries, "side_input.csv"))
        db.execute("CREATE INDEX bid_auction ON bid (auction, dateTime)")
        db.execute("CREATE INDEX bid_bidder ON bid (bidder, auction, dateTime)")
        db.execute("CREATE INDEX bid_price ON bid (price)")
        counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in SCHEMAS}
        print(f"{args.events} events: {counts['person']} people, {counts['auction']} auctions, "
              f"{counts['bid']} bids ({time.monotonic() - t0:.1f} s)")
        for q in names:
            run, seconds = runs[q].result()
            outcome[check(db, q, QUERIES[q], run, seconds, os.path.join(tmp, f"{q}.csv"))].append(q)

    print(f"\nchecked {len(outcome['ok'])}: {' '.join(outcome['ok'])}")
    print(f"skipped {len(outcome['skipped'])} (do not plan yet): {' '.join(outcome['skipped'])}")
    print(f"failed {len(outcome['failed'])}: {' '.join(outcome['failed'])}")
    print(f"total {time.monotonic() - t0:.1f} s")
    return 1 if outcome["failed"] else 0


def load_side_input(db, path):
    db.execute("CREATE TABLE side_input (key INTEGER, value TEXT)")
    with open(path, newline="", encoding="utf-8") as f:
        db.executemany("INSERT INTO side_input VALUES (?, ?)", (r for r in csv.reader(f) if r))


if __name__ == "__main__":
    sys.exit(main())
