CREATE TABLE e (k INT, p ROW<id BIGINT, `select` STRING NOT NULL, a ROW(city STRING, zip INT)> NOT NULL, ts TIMESTAMP(3), d AS p.a.zip + 1, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);
SELECT p.id, e.p.a.city, p, CASE WHEN k = 0 THEN p.`select` END FROM e AS e WHERE p.a IS NOT NULL GROUP BY p.id;
SELECT x.p.a.zip FROM e AS x JOIN e AS y ON x.p.id = y.p.id;
