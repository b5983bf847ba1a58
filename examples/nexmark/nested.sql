-- Nexmark the way Flink's published setup reads it: one generated table of every event,
-- whose `event_type` says which of the ROWs `person`, `auction` and `bid` it carries (the
-- other two are NULL), an event time computed from that ROW's dateTime, and one view per
-- kind. The views have the columns of the per-kind tables the queries of this folder
-- declare, so a query's CREATE TABLEs of kind person, auction and bid can be replaced by
-- this file (tests/nexmark/shapes_test.py does, and compares the results).
-- Written for Runnel from the setup's published description.

CREATE TABLE nexmark (
  event_type INT,
  person ROW<
    id BIGINT,
    name STRING,
    emailAddress STRING,
    creditCard STRING,
    city STRING,
    state STRING,
    dateTime TIMESTAMP(3),
    extra STRING>,
  auction ROW<
    id BIGINT,
    itemName STRING,
    description STRING,
    initialBid BIGINT,
    reserve BIGINT,
    dateTime TIMESTAMP(3),
    expires TIMESTAMP(3),
    seller BIGINT,
    category BIGINT,
    extra STRING>,
  bid ROW<
    auction BIGINT,
    bidder BIGINT,
    price BIGINT,
    channel STRING,
    url STRING,
    dateTime TIMESTAMP(3),
    extra STRING>,
  dateTime AS
    CASE
      WHEN event_type = 0 THEN person.dateTime
      WHEN event_type = 1 THEN auction.dateTime
      ELSE bid.dateTime
    END,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
  'connector' = 'nexmark',
  'first-event.rate' = '10000000'
);

CREATE VIEW person AS
SELECT
  person.id,
  person.name,
  person.emailAddress,
  person.creditCard,
  person.city,
  person.state,
  dateTime,
  person.extra
FROM nexmark
WHERE event_type = 0;

CREATE VIEW auction AS
SELECT
  auction.id,
  auction.itemName,
  auction.description,
  auction.initialBid,
  auction.reserve,
  dateTime,
  auction.expires,
  auction.seller,
  auction.category,
  auction.extra
FROM nexmark
WHERE event_type = 1;

CREATE VIEW bid AS
SELECT
  bid.auction,
  bid.bidder,
  bid.price,
  bid.channel,
  bid.url,
  dateTime,
  bid.extra
FROM nexmark
WHERE event_type = 2;
