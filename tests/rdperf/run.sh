#!/usr/bin/env bash
# librdkafka's own rdkafka_performance produces 1,000,000 records with acks=all to a fresh
# `runnel serve`, then consumes them all back; both must finish without an error.
set -euo pipefail
runnel=$1
rdperf=$2
dir=$(mktemp -d)
log="$dir/serve.log"
"$runnel" serve --data-dir "$dir/data" --kafka-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --shards 2 >"$log" 2>&1 &
server=$!
trap 'kill -9 $server 2>/dev/null || true; rm -rf "$dir"' EXIT
# Wait (with a deadline) for the ready line that names the port.
port=""
for _ in $(seq 1 200); do
    port=$(grep -o 'Kafka listener on 127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    kill -0 $server 2>/dev/null || { cat "$log"; echo "server died"; exit 1; }
    sleep 0.05
done
[ -n "$port" ] || { cat "$log"; echo "server not ready within 10 s"; exit 1; }

produce=$(timeout 120 "$rdperf" -P -t perf -b "127.0.0.1:$port" -s 100 -c 1000000 -X acks=all -X linger.ms=5 2>&1 | tail -1)
echo "$produce"
echo "$produce" | grep -q '1000000 delivered (offset [0-9]*, 0 failed)' || { echo "FAIL: produce"; exit 1; }
consume=$(timeout 120 "$rdperf" -C -t perf -p 0 -b "127.0.0.1:$port" -c 1000000 -o beginning -e 2>&1 | grep 'messages' | tail -1)
echo "$consume"
echo "$consume" | grep -q '1000000 messages' || { echo "FAIL: consume"; exit 1; }
kill -TERM $server
wait $server
echo "rdkafka_performance: 1000000 produced (acks=all) and consumed"
