-- Nexmark q13: Bounded side input join
--
-- Each bid joined with a row of a bounded side table chosen by its auction id.
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

CREATE TABLE side_input (
  `key` BIGINT,
  `value` STRING
) WITH (
  'connector' = 'file',
  'path' = 'examples/nexmark/side_input.csv',
  'format' = 'csv'
);

CREATE TABLE q13_sink (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  dateTime TIMESTAMP(3),
  `value` STRING
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO q13_sink
SELECT b.auction, b.bidder, b.price, b.dateTime, s.`value`
FROM (SELECT *, PROCTIME() AS p_time FROM bid) AS b
JOIN side_input FOR SYSTEM_TIME AS OF b.p_time AS s
ON MOD(b.auction, 10000) = s.`key`;
