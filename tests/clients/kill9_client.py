#!/usr/bin/env python3
"""The client side of Seedlog's kill -9 test (tests/tests/kill9.rs), with confluent-kafka.

produce: creates the topic (replication factor and min.insync.replicas as given), then writes
    numbered records (values r000000001, r000000002, ...) with acks=all, idempotence off and one
    request in flight, until --stop-file appears or --max-seconds pass; then flushes (bounded).
    Every acknowledged record is appended to --acked as "offset<TAB>value" the moment its
    acknowledgement arrives; records whose delivery failed (indefinite: they may or may not be in
    the log) go to --failed as "value<TAB>error". Prints a one-line summary.
consume: reads partition 0 from the beginning (assigned, no commits) up to the high watermark
    as it was when it started, and writes every record as "offset<TAB>value" to --out.

The harness judges the files: every acknowledged record must be in the log at its offset.
"""

import argparse
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def produce(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = NewTopic(args.topic, num_partitions=1, replication_factor=args.replication_factor,
                     config={"min.insync.replicas": str(args.min_insync)})
    try:
        admin.create_topics([topic], request_timeout=15, operation_timeout=10)[args.topic].result(timeout=20)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL create topic {args.topic}: {e!r}", flush=True)
        sys.exit(1)

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        # One request in flight: a retried request can never overtake a later one, so the
        # acknowledged records must appear in the log in the order they were sent.
        "max.in.flight.requests.per.connection": 1,
        "linger.ms": 2,
        "request.timeout.ms": 5000,
        "message.timeout.ms": 20000,
        "retry.backoff.ms": 100,
        "retry.backoff.max.ms": 500,
        "topic.metadata.refresh.interval.ms": 1000,
        "reconnect.backoff.max.ms": 500,
        **({"debug": args.debug} if args.debug else {}),
    })
    acked = open(args.acked, "w", buffering=1)
    failed = open(args.failed, "w", buffering=1)
    counts = {"acked": 0, "failed": 0}

    def on_delivery(err, msg):
        if err is None:
            acked.write(f"{msg.offset()}\t{msg.value().decode()}\n")
            counts["acked"] += 1
        else:
            failed.write(f"{msg.value().decode()}\t{err}\n")
            counts["failed"] += 1

    started = time.monotonic()
    sent = 0
    interval = 1.0 / args.rate
    next_send = time.monotonic()
    while not os.path.exists(args.stop_file) and time.monotonic() - started < args.max_seconds:
        now = time.monotonic()
        if now < next_send:
            producer.poll(min(0.05, next_send - now))
            continue
        value = f"r{sent + 1:09d}".encode()
        try:
            producer.produce(args.topic, value=value, key=b"k", partition=0, on_delivery=on_delivery)
            sent += 1
            next_send += interval
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(args.flush_seconds)
    acked.close()
    failed.close()
    print(f"produced: sent {sent}, acknowledged {counts['acked']}, failed {counts['failed']}, "
          f"unresolved at exit {left}", flush=True)
    # Unresolved and failed records are indefinite, not errors: exit 0 either way.
    os._exit(0)


def consume(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        # confluent-kafka insists on a group id; assign() without commits never uses the group.
        "group.id": f"seedlog-kill9-{args.topic}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100,
    })
    tp = TopicPartition(args.topic, 0)
    deadline = time.monotonic() + args.max_seconds
    high = None
    while high is None and time.monotonic() < deadline:
        try:
            _, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
        except Exception as e:  # noqa: BLE001 - a leader may still be moving; try again
            print(f"watermarks: {e!r}", file=sys.stderr, flush=True)
            time.sleep(0.5)
    if high is None:
        print("FAIL consume: no high watermark", flush=True)
        sys.exit(1)
    consumer.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    out = open(args.out, "w")
    position = 0
    count = 0
    while position < high and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                print(f"consumer error: {msg.error()}", file=sys.stderr, flush=True)
            continue
        out.write(f"{msg.offset()}\t{msg.value().decode()}\n")
        position = msg.offset() + 1
        count += 1
    out.close()
    consumer.close()
    if position < high:
        print(f"FAIL consume: reached offset {position} of high watermark {high} in time", flush=True)
        sys.exit(1)
    print(f"consumed: {count} records below the high watermark {high}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["produce", "consume"])
    p.add_argument("--bootstrap", required=True, help="HOST:PORT[,HOST:PORT...]")
    p.add_argument("--topic", required=True)
    p.add_argument("--acked", help="produce: file of acknowledged records")
    p.add_argument("--failed", help="produce: file of records whose delivery failed")
    p.add_argument("--stop-file", help="produce: stop when this file exists")
    p.add_argument("--replication-factor", type=int, default=3)
    p.add_argument("--min-insync", type=int, default=2)
    p.add_argument("--rate", type=float, default=500.0, help="produce: records per second")
    p.add_argument("--flush-seconds", type=float, default=25.0)
    p.add_argument("--out", help="consume: file of the records read")
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--debug", help="produce: librdkafka debug contexts (e.g. metadata,topic,msg), to stderr")
    args = p.parse_args()
    if args.mode == "produce":
        if not (args.acked and args.failed and args.stop_file):
            p.error("produce needs --acked, --failed and --stop-file")
        produce(args)
    else:
        if not args.out:
            p.error("consume needs --out")
        consume(args)


if __name__ == "__main__":
    main()
