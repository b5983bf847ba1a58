-- Nexmark q12: Processing time windows
--
-- How many bids each bidder placed in each 10-second window of processing time.
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

CREATE TABLE q12_sink (
  bidder BIGINT,
  bid_count BIGINT,
  starttime TIMESTAMP(3),
  endtime TIMESTAMP(3)
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO q12_sink
SELECT
  b.bidder,
  COUNT(*) AS bid_count,
  TUMBLE_START(b.p_time, INTERVAL '10' SECOND) AS starttime,
  TUMBLE_END(b.p_time, INTERVAL '10' SECOND) AS endtime
FROM (SELECT *, PROCTIME() AS p_time FROM bid) AS b
GROUP BY b.bidder, TUMBLE(b.p_time, INTERVAL '10' SECOND);
