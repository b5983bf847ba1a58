INSERT INTO out_t SELECT /*+ PARALLELISM(4) */ a, b FROM t;
SELECT /*+ X(1, 'two', c) */ * FROM t;
