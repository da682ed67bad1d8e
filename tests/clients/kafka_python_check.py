#!/usr/bin/env python3
"""Seedlog real-client check with kafka-python (pure Python).

Creates the topic (KafkaAdminClient.create_topics), produces keyed records with acks=all,
consumes them from the beginning of an assigned partition (no group), checks order and content,
lists offsets (earliest, latest, by timestamp) and describes the cluster. Prints one PASS line or
a FAIL line with the differences. Run it with the venv's python:
.venv/bin/python kafka_python_check.py --bootstrap 127.0.0.1:9092 --topic t1
"""

import time

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec

from common import diff_records, record, run, ts_lookup_expect

CLIENT = f"kafka-python {kafka.__version__}"


def main(args, check):
    n = args.records
    base_ts = int(time.time() * 1000) - n - 1000
    want = []
    for i in range(n):
        key, value, headers, ts = record(i, base_ts)
        want.append((i, key, value, headers, ts))
    common = {"bootstrap_servers": [args.bootstrap], "request_timeout_ms": 10000,
              "client_id": "seedlog-kafka-python-check"}

    check.at("connect (admin)")
    admin = KafkaAdminClient(**common)

    if not args.no_create:
        check.at("create topic")
        try:
            result = admin.create_topics(
                {args.topic: {"num_partitions": 1, "replication_factor": args.replication_factor}},
                timeout_ms=10000)
        except Exception as e:  # noqa: BLE001 - any failure is the verdict
            check.fail(f"create_topics: {e!r}")
        errors = [t for t in result["topics"] if t.get("error_code")]
        if errors:
            check.fail(f"create_topics answered errors: {errors}")
        check.note(f"created '{args.topic}'")

    check.at("wait for a leader")
    leader = wait_for_leader(admin, args.topic, check, created=not args.no_create)

    check.at("produce")
    producer = KafkaProducer(
        acks="all",
        enable_idempotence=False,
        # One request in flight: a retry can never reorder, so acknowledged order is log order.
        max_in_flight_requests_per_connection=1,
        linger_ms=5,
        delivery_timeout_ms=30000,
        **common)
    acks = []
    # Two rounds, each flushed, so the log holds at least two batches.
    for part in (range(0, n // 2), range(n // 2, n)):
        futures = []
        for i in part:
            _, key, value, headers, ts = want[i]
            futures.append(producer.send(args.topic, value=value, key=key, headers=headers,
                                         partition=0, timestamp_ms=ts))
        producer.flush(timeout=check.remaining(30))
        for i, fut in zip(part, futures):
            try:
                md = fut.get(timeout=check.remaining(5))
            except Exception as e:  # noqa: BLE001
                check.fail(f"record {i} not acknowledged: {e!r}")
            acks.append((md.partition, md.offset, want[i][1]))
    want_acks = [(0, i, want[i][1]) for i in range(n)]
    if acks != want_acks:
        check.fail("acknowledged (partition, offset, key) differ from the order produced",
                   diff_records(want_acks, acks))
    producer.close(timeout=5)
    check.note(f"produced {n} records acks=all at offsets 0..{n - 1}")

    check.at("consume from the beginning (assigned partition)")
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=100, **common)
    tp = TopicPartition(args.topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    errors = []
    stop = time.monotonic() + check.remaining(20)
    while len(got) < n and time.monotonic() < stop:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                if r.timestamp_type != 0:
                    errors.append(f"offset {r.offset}: timestamp type {r.timestamp_type}, want CreateTime")
                got.append((r.offset, r.key, r.value, list(r.headers or []), r.timestamp))
    # Nothing past the last record may appear.
    for records in consumer.poll(timeout_ms=1000).values():
        got.extend((r.offset, r.key, r.value, list(r.headers or []), r.timestamp) for r in records)
    if errors:
        check.fail("consumer errors", errors)
    if got != want:
        check.fail(f"consumed {len(got)} records, want {n} equal to those produced",
                   diff_records(want, got))
    check.note(f"consumed {n} in order with keys, values, headers, timestamps")

    check.at("list offsets")
    begin = consumer.beginning_offsets([tp], timeout_ms=10000)[tp]
    end = consumer.end_offsets([tp], timeout_ms=10000)[tp]
    check.expect("consumer beginning/end offsets", (begin, end), (0, n))
    try:
        listed = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST}, timeout_ms=10000)[tp].offset, \
            admin.list_partition_offsets({tp: OffsetSpec.LATEST}, timeout_ms=10000)[tp].offset
    except Exception as e:  # noqa: BLE001
        check.fail(f"admin list_partition_offsets: {e!r}")
    check.expect("admin earliest/latest", listed, (0, n))
    timestamps = [w[4] for w in want]
    for target in (base_ts + n // 3, base_ts - 5, base_ts + n + 1000):
        found = consumer.offsets_for_times({tp: target}, timeout_ms=10000)[tp]
        offset = -1 if found is None else found.offset
        check.expect(f"offset for timestamp base+{target - base_ts}", offset,
                     ts_lookup_expect(timestamps, target))
    check.note(f"offsets earliest 0, latest {n}, by timestamp ok")
    consumer.close(autocommit=False)

    check.at("describe cluster")
    try:
        cluster = admin.describe_cluster()
    except Exception as e:  # noqa: BLE001
        check.fail(f"describe_cluster: {e!r}")
    nodes = {f"{b['host']}:{b['port']}": b["broker_id"] for b in cluster["brokers"]}
    if not cluster.get("cluster_id"):
        check.fail(f"describe_cluster: no cluster id in {cluster}")
    if args.bootstrap not in nodes:
        check.fail(f"describe_cluster: bootstrap {args.bootstrap} not among the nodes {sorted(nodes)}")
    if cluster.get("controller_id", -1) < 0:
        check.fail(f"describe_cluster: no controller in {cluster}")
    if leader not in nodes.values():
        check.fail(f"leader {leader} of partition 0 is not a described node {nodes}")
    check.note(f"cluster '{cluster['cluster_id']}' with {len(nodes)} node(s)")
    admin.close()
    check.passed()


def wait_for_leader(admin, topic, check, created):
    """Topic metadata until partition 0 has a leader; returns the leader's id."""
    stop = time.monotonic() + check.remaining(20)
    last = "no answer"
    while time.monotonic() < stop:
        try:
            described = admin.describe_topics([topic])
            t = described[0] if described else None
            if t is not None and not t.get("error_code"):
                parts = {p["partition_index"]: p for p in t["partitions"]}
                if 0 in parts and parts[0]["leader_id"] >= 0:
                    if created and len(parts) != 1:
                        check.fail(f"topic has {len(parts)} partitions, want 1")
                    return parts[0]["leader_id"]
                last = f"partitions {t['partitions']}"
            else:
                last = f"topic metadata {t}"
        except Exception as e:  # noqa: BLE001
            last = repr(e)
        time.sleep(0.2)
    check.fail(f"no leader for partition 0: {last}")


if __name__ == "__main__":
    run(CLIENT, main)
