-- Nexmark q4: Average price for a category
--
-- For each category, the average of the winning (highest, in-time) bid prices of its auctions.
-- Written for Runnel from the query's published description of what it computes.

CREATE TABLE auction (
  id BIGINT,
  itemName STRING,
  description STRING,
  initialBid BIGINT,
  reserve BIGINT,
  dateTime TIMESTAMP(3),
  expires TIMESTAMP(3),
  seller BIGINT,
  category BIGINT,
  extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
  'connector' = 'nexmark',
  'event' = 'auction',
  'first-event.rate' = '10000000'
);

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

CREATE TABLE q4_sink (
  category BIGINT,
  final BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO q4_sink
SELECT winners.category, AVG(winners.final)
FROM (
  SELECT MAX(b.price) AS final, a.category
  FROM auction AS a, bid AS b
  WHERE a.id = b.auction
    AND b.dateTime BETWEEN a.dateTime AND a.expires
  GROUP BY a.id, a.category
) AS winners
GROUP BY winners.category;
