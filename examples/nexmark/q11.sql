-- Nexmark q11: User sessions
--
-- How many bids each bidder placed in each of their sessions (sessions end after 10 seconds without a bid).
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

CREATE TABLE q11_sink (
  bidder BIGINT,
  bid_count BIGINT,
  starttime TIMESTAMP(3),
  endtime TIMESTAMP(3)
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO q11_sink
SELECT
  b.bidder,
  COUNT(*) AS bid_count,
  SESSION_START(b.dateTime, INTERVAL '10' SECOND) AS starttime,
  SESSION_END(b.dateTime, INTERVAL '10' SECOND) AS endtime
FROM bid AS b
GROUP BY b.bidder, SESSION(b.dateTime, INTERVAL '10' SECOND);
