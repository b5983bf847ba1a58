#!/usr/bin/python3
"""A consumer group whose committed offset is past the end of the log (after retention, or a
topic recreated) resets per `auto.offset.reset`, as against Kafka, with confluent-kafka
(librdkafka): `earliest` reads from the log start, `latest` reads what is produced after it,
and `error` reports _AUTO_OFFSET_RESET. Each within 5 s of the first poll, over Fetch v4
(the protocol of Kafka 0.11, forced with `api.version.request=false`) and the newest Fetch
the client speaks.

Run: /usr/bin/python3 offset_reset_test.py --runnel PATH
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

RESET_WITHIN_S = 5.0
PROTOCOLS = {
    "fetch-v4": {"api.version.request": False, "broker.version.fallback": "0.11.0"},
    "newest": {},
}


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for v in values:
        p.produce(topic, value=v, partition=0)
    assert p.flush(30) == 0, "records left unacknowledged"


def commit_past_end(bootstrap, group, topic, offset, extra):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **extra})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def first_event(bootstrap, group, topic, reset, extra, tick=None):
    """Subscribes with `auto.offset.reset=reset` and returns ('record', value) or ('error', code)
    for the first thing the consumer sees, and how long after its assignment it came.
    `tick(n)` runs before each poll after the assignment."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": reset, "session.timeout.ms": 6000, **extra})
    assigned = []
    c.subscribe([topic], on_assign=lambda consumer, parts: assigned.extend(parts))
    try:
        # Joining the group is not part of the reset: time from the assignment on.
        deadline = harness.Deadline(60, f"{group}: assignment")
        while not assigned:
            deadline.check()
            m = c.poll(0.2)
            if m is not None:
                return kind_of(m), 0.0
        started = time.monotonic()
        deadline = harness.Deadline(30, f"{group}: the reset ({reset})")
        for n in range(1 << 30):
            deadline.check()
            if tick:
                tick(n)
            m = c.poll(0.1)
            if m is not None:
                return kind_of(m), time.monotonic() - started
    finally:
        c.close()


def kind_of(m):
    if m.error():
        return ("error", m.error().code())
    value = m.value()
    # Records produced while a `latest` reset is under way: any of them proves the reset.
    return ("record", b"new" if value.startswith(b"new-") else value)


def main():
    binary = harness.runnel_binary()
    started = time.monotonic()
    passed = failed = 0
    with harness.RunnelServer(binary, name="offset-reset", extra_args=["--group-initial-rebalance-delay-ms", "0"]) as srv:
        for proto, extra in PROTOCOLS.items():
            topic = f"reset-{proto}"
            produce(srv.bootstrap, topic, [b"old-%d" % i for i in range(10)])
            cases = [
                ("earliest", None, ("record", b"old-0")),
                # Until the reset lands, records keep arriving: the first one seen must be new.
                ("latest", lambda n, t=topic: n % 5 == 0 and produce(srv.bootstrap, t, [b"new-%d" % n]),
                 ("record", b"new")),
                ("error", None, ("error", KafkaError._AUTO_OFFSET_RESET)),
            ]
            for reset, tick, want in cases:
                group = f"g-{proto}-{reset}"
                commit_past_end(srv.bootstrap, group, topic, 1000, extra)
                got, seconds = first_event(srv.bootstrap, group, topic, reset, extra, tick)
                ok = got == want and seconds <= RESET_WITHIN_S
                print(f"{proto} auto.offset.reset={reset}: {got} after {seconds:.2f} s "
                      f"({'ok' if ok else f'want {want} within {RESET_WITHIN_S} s'})", flush=True)
                if ok:
                    passed += 1
                else:
                    failed += 1
        srv.assert_alive()
    harness.summary("offset-reset", passed, failed, seconds=time.monotonic() - started)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
