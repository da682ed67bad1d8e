#!/usr/bin/env python3
"""Seedlog real-client check with confluent-kafka (librdkafka, bundled in the wheel).

Creates the topic (AdminClient.create_topics), produces keyed records with acks=all, consumes
them from the beginning of an assigned partition, checks order and content, lists offsets
(earliest, latest, by timestamp) and describes the cluster. Prints one PASS line or a FAIL line
with the differences. Run it with the venv's python: .venv/bin/python confluent_kafka_check.py
--bootstrap 127.0.0.1:9092 --topic t1
"""

import time

import confluent_kafka
from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, KafkaError,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from common import diff_records, record, run, ts_lookup_expect

CLIENT = f"confluent-kafka {confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"


def main(args, check):
    n = args.records
    base_ts = int(time.time() * 1000) - n - 1000
    want = []
    for i in range(n):
        key, value, headers, ts = record(i, base_ts)
        want.append((i, key, value, headers, ts))

    admin = AdminClient({"bootstrap.servers": args.bootstrap, "socket.timeout.ms": 10000})

    if not args.no_create:
        check.at("create topic")
        futures = admin.create_topics(
            [NewTopic(args.topic, num_partitions=1, replication_factor=args.replication_factor)],
            request_timeout=15, operation_timeout=10)
        try:
            futures[args.topic].result(timeout=check.remaining(20))
        except Exception as e:  # noqa: BLE001 - any failure is the verdict
            check.fail(f"create_topics: {e!r}")
        check.note(f"created '{args.topic}'")

    check.at("wait for a leader")
    leader = wait_for_leader(admin, args.topic, check, created=not args.no_create)

    check.at("produce")
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        # One request in flight: a retry can never reorder, so acknowledged order is log order.
        "max.in.flight.requests.per.connection": 1,
        "linger.ms": 5,
        "message.timeout.ms": 30000,
    })
    acks = []

    def on_delivery(err, msg):
        acks.append((err, msg.partition(), msg.offset(), msg.key()))

    # Two rounds, each flushed, so the log holds at least two batches.
    for part in (range(0, n // 2), range(n // 2, n)):
        for i in part:
            _, key, value, headers, ts = want[i]
            while True:
                try:
                    producer.produce(args.topic, value=value, key=key, headers=headers,
                                     partition=0, timestamp=ts, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
        left = producer.flush(check.remaining(30))
        if left:
            check.fail(f"{left} records still unacknowledged after flush")
    failed = [f"record {i}: {err}" for i, (err, _, _, _) in enumerate(acks) if err is not None]
    if failed:
        check.fail(f"{len(failed)} of {n} records failed delivery", failed)
    check.expect("acknowledged records", len(acks), n)
    got_acks = [(p, o, k) for _, p, o, k in acks]
    want_acks = [(0, i, want[i][1]) for i in range(n)]
    if got_acks != want_acks:
        check.fail("acknowledged (partition, offset, key) differ from the order produced",
                   diff_records(want_acks, got_acks))
    check.note(f"produced {n} records acks=all at offsets 0..{n - 1}")

    check.at("consume from the beginning (assigned partition)")
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        # confluent-kafka's Consumer insists on a group id; with assign() and no commits the
        # group coordinator is never needed.
        "group.id": f"seedlog-check-{args.topic}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100,
    })
    consumer.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    got = []
    errors = []
    stop = time.monotonic() + check.remaining(20)
    while len(got) < n and time.monotonic() < stop:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                errors.append(str(msg.error()))
            continue
        ts_type, ts = msg.timestamp()
        if ts_type != TIMESTAMP_CREATE_TIME:
            errors.append(f"offset {msg.offset()}: timestamp type {ts_type}, want CreateTime")
        got.append((msg.offset(), msg.key(), msg.value(), msg.headers() or [], ts))
    # Nothing past the last record may appear.
    extra_until = time.monotonic() + 1.0
    while time.monotonic() < extra_until:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            got.append((msg.offset(), msg.key(), msg.value(), msg.headers() or [], msg.timestamp()[1]))
    if errors:
        check.fail("consumer errors", errors)
    if got != want:
        check.fail(f"consumed {len(got)} records, want {n} equal to those produced",
                   diff_records(want, got))
    check.note(f"consumed {n} in order with keys, values, headers, timestamps")

    check.at("list offsets")
    tp = TopicPartition(args.topic, 0)
    low, high = consumer.get_watermark_offsets(tp, timeout=check.remaining(10), cached=False)
    check.expect("watermarks (low, high)", (low, high), (0, n))
    listed = {}
    for name, spec in (("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest())):
        fut = admin.list_offsets({tp: spec}, request_timeout=10)
        try:
            listed[name] = fut[tp].result(timeout=check.remaining(15)).offset
        except Exception as e:  # noqa: BLE001
            check.fail(f"AdminClient.list_offsets({name}): {e!r}")
    check.expect("list_offsets earliest/latest", (listed["earliest"], listed["latest"]), (0, n))
    timestamps = [w[4] for w in want]
    for target in (base_ts + n // 3, base_ts - 5, base_ts + n + 1000):
        found = consumer.offsets_for_times([TopicPartition(args.topic, 0, target)],
                                           timeout=check.remaining(10))
        if found[0].error:
            check.fail(f"offsets_for_times({target}): {found[0].error}")
        check.expect(f"offset for timestamp base+{target - base_ts}", found[0].offset,
                     ts_lookup_expect(timestamps, target))
    check.note("offsets earliest 0, latest "
               f"{n}, by timestamp ok")
    consumer.close()

    check.at("describe cluster")
    try:
        cluster = admin.describe_cluster(request_timeout=10).result(timeout=check.remaining(15))
    except Exception as e:  # noqa: BLE001
        check.fail(f"describe_cluster: {e!r}")
    nodes = {f"{node.host}:{node.port}": node.id for node in cluster.nodes}
    if not cluster.cluster_id:
        check.fail("describe_cluster: empty cluster id")
    if args.bootstrap not in nodes:
        check.fail(f"describe_cluster: bootstrap {args.bootstrap} not among the nodes {sorted(nodes)}")
    if cluster.controller is None:
        check.fail("describe_cluster: no controller")
    if leader not in nodes.values():
        check.fail(f"leader {leader} of partition 0 is not a described node {nodes}")
    check.note(f"cluster '{cluster.cluster_id}' with {len(nodes)} node(s)")
    check.passed()


def wait_for_leader(admin, topic, check, created):
    """Metadata until partition 0 of the topic has a leader; returns the leader's id."""
    stop = time.monotonic() + check.remaining(20)
    last = "no answer"
    while time.monotonic() < stop:
        try:
            md = admin.list_topics(topic, timeout=check.remaining(5))
            t = md.topics.get(topic)
            if t is not None and t.error is None and 0 in t.partitions:
                p = t.partitions[0]
                if p.leader >= 0 and p.leader in md.brokers:
                    if created and len(t.partitions) != 1:
                        check.fail(f"topic has {len(t.partitions)} partitions, want 1")
                    return p.leader
                last = f"partition 0 leader {p.leader}"
            else:
                last = f"topic metadata {t.error if t is not None else 'absent'}"
        except Exception as e:  # noqa: BLE001
            last = repr(e)
        time.sleep(0.2)
    check.fail(f"no leader for partition 0: {last}")


if __name__ == "__main__":
    run(CLIENT, main)
