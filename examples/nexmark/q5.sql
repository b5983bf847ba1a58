-- Nexmark q5: Hot items
--
-- The auctions with the most bids in each 10-second window, sliding every 2 seconds.
-- Written for Runnel from the query's published description of what it computes.

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel STRING,
  url STRING,
  dateTime TIMESTAMP(3),
  extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
  'connector' = 'nexmark',
  'event' = 'bid',
  'first-event.rate' = '10000000'
);

CREATE TABLE q5_sink (
  auction BIGINT,
  num BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO q5_sink
SELECT counts.auction, counts.num
FROM (
  SELECT
    b.auction,
    COUNT(*) AS num,
    HOP_START(b.dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS starttime,
    HOP_END(b.dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS endtime
  FROM bid AS b
  GROUP BY b.auction, HOP(b.dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
) AS counts
JOIN (
  SELECT MAX(per_auction.num) AS maxn, per_auction.starttime, per_auction.endtime
  FROM (
    SELECT
      COUNT(*) AS num,
      HOP_START(b2.dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS starttime,
      HOP_END(b2.dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS endtime
    FROM bid AS b2
    GROUP BY b2.auction, HOP(b2.dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
  ) AS per_auction
  GROUP BY per_auction.starttime, per_auction.endtime
) AS top
ON counts.starttime = top.starttime
  AND counts.endtime = top.endtime
  AND counts.num >= top.maxn;
