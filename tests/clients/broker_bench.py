#!/usr/bin/env python3
"""Seedlog's broker benchmark: real brokers, real Kafka clients (librdkafka), figures printed,
nothing asserted on time.

Run it through scripts/bench-broker, which builds `seedlog` and the load generator (tests/loadgen,
librdkafka through the `rdkafka` crate) with --release first. What it does:

1. single broker: starts `seedlog broker` (flush policy never) on free ports in a temporary
   directory, reads its RSS at rest, creates a topic (1 partition, RF 1), then, --repeat times:
   - produce: N records of 100 bytes, acks=all, timed from the first send to the end of flush
     (every record acknowledged); broker and client CPU over the same window;
   - consume: the same N records from offset 0 by an assigned consumer, timed from the
     assignment to the N-th record, every offset once and in order;
   then
   - latency: sync (the runs above leave dirty pages whose writeback stalls the broker), a new
     topic, a consumer process (confluent-kafka) assigned at offset 0, this process producing at
     a fixed rate (default 10,000 records/s) for a fixed time, each value carrying its
     CLOCK_MONOTONIC send time; the consumer computes receive - send per record;
   - RSS after the load.
2. three brokers: `seedlog cluster --brokers 3`, a topic with RF 3 and min.insync.replicas 2, the
   same produce run; the RF 3 / RF 1 ratio of produce rates.
3. client ceiling: a produce run against librdkafka's in-process mock broker (with --client
   python: also confluent-kafka queueing with no broker at all).

--client python runs the throughput runs with confluent-kafka in this process instead (its
per-record Python cost caps it well below the broker). Every figure is printed with the machine's
core count and load average, and every throughput line with the CPU time per record of client and
broker. Client settings are printed too; they are the ones a Kafka throughput benchmark would use.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
RECORD_VALUE_BYTES = 100
PRODUCE_BATCH = 10_000

# Throughput producer: big batches, a little linger, no compression, acks=all, no idempotence.
PRODUCER_THROUGHPUT = {
    "acks": "all",
    "enable.idempotence": False,
    "compression.type": "none",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "max.in.flight.requests.per.connection": 5,
    "delivery.report.only.error": True,
    "message.timeout.ms": 60_000,
}

# Throughput consumer: assigned partition, no group, big fetches, deep prefetch queue.
CONSUMER_THROUGHPUT = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "fetch.min.bytes": 1,
    "fetch.wait.max.ms": 100,
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 8_388_608,
    "queued.min.messages": 1_000_000,
    "queued.max.messages.kbytes": 262_144,
    "enable.partition.eof": False,
}

# Latency producer and consumer: no linger, fetch answered as soon as there is a record.
PRODUCER_LATENCY = {
    "acks": "all",
    "enable.idempotence": False,
    "compression.type": "none",
    "linger.ms": 0,
    "max.in.flight.requests.per.connection": 5,
    "delivery.report.only.error": True,
}
CONSUMER_LATENCY = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "fetch.min.bytes": 1,
    "fetch.wait.max.ms": 100,
    "enable.partition.eof": False,
}


def load_average():
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


def own_cpu_seconds():
    times = os.times()
    return times.user + times.system


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port_pair():
    """Two consecutive free ports (a client listener and the node-to-node one after it)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 1 > 65_000:
            continue
        try:
            with socket.socket() as second:
                second.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def free_port_base(count):
    """A base port P with P .. P+count-1 free."""
    for _ in range(100):
        base = free_port_pair()
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


def wait_until_serving(address, process, deadline_seconds, log_path):
    """Until a connection to the client listener succeeds (it refuses before the broker serves)."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the broker exited ({process.returncode}); see {log_path}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{address} did not serve clients within {deadline_seconds}s; see {log_path}")


class SingleBroker:
    """`seedlog broker` on free ports, data and logs in `directory`."""

    def __init__(self, seedlog, directory, overrides):
        port = free_port_pair()
        self.bootstrap = f"127.0.0.1:{port}"
        self.log_path = os.path.join(directory, "broker.log")
        arguments = [
            seedlog, "broker",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}",
            "--override", f"log.dirs={os.path.join(directory, 'data')}",
            "--override", "seedlog.flush.policy=never",
        ]
        for override in overrides:
            arguments += ["--override", override]
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(arguments, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        wait_until_serving(self.bootstrap, self.process, 60, self.log_path)
        self.pids = [self.process.pid]

    def stop(self):
        stop_process(self.process)
        self.log.close()


class Cluster:
    """`seedlog cluster --brokers N`; its brokers' pids from what it prints."""

    def __init__(self, seedlog, directory, brokers, overrides):
        base = free_port_base(2 * brokers)
        self.log_path = os.path.join(directory, "cluster.log")
        arguments = [seedlog, "cluster", "--brokers", str(brokers), "--base-port", str(base),
                     "--data", os.path.join(directory, "data"),
                     "--override", "seedlog.flush.policy=never"]
        for override in overrides:
            arguments += ["--override", override]
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=self.log,
                                        stdin=subprocess.DEVNULL, text=True)
        self.pids = []
        for _ in range(brokers):
            line = self.process.stdout.readline()
            self.log.write(line)
            self.pids.append(int(line.split(" pid ")[1].split()[0]))
        line = self.process.stdout.readline()
        self.log.write(line)
        self.bootstrap = line.split(": ", 1)[1].strip()
        for address in self.bootstrap.split(","):
            wait_until_serving(address, self.process, 60, self.log_path)

    def stop(self):
        stop_process(self.process, wait_seconds=30)
        self.log.close()


def stop_process(process, wait_seconds=15):
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=wait_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def create_topic(bootstrap, topic, replication_factor, min_insync):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=1, replication_factor=replication_factor,
                   config={"min.insync.replicas": str(min_insync), "seedlog.flush.policy": "never"})
    admin.create_topics([new], request_timeout=15, operation_timeout=15)[topic].result(timeout=30)
    # Until the partition has a leader that knows it, a producer would only be told to retry.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic, timeout=5)
        partitions = metadata.topics[topic].partitions
        if 0 in partitions and partitions[0].leader >= 0 and \
                len(partitions[0].isrs) >= replication_factor:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no leader with a full ISR after 30s")


class Failures:
    """Counts delivery failures (only failures are reported: delivery.report.only.error)."""

    def __init__(self):
        self.count = 0
        self.first = None

    def __call__(self, error, _message):
        if error is not None:
            self.count += 1
            if self.first is None:
                self.first = str(error)


def produce_all(producer, topic, records):
    """Queues `records` 100-byte records with produce_batch (one call per PRODUCE_BATCH records:
    Python's per-record produce() call alone costs more than the broker's work per record), never
    past the queue's bound."""
    value = b"v" * RECORD_VALUE_BYTES
    batch = [{"value": value} for _ in range(PRODUCE_BATCH)]
    queue_max = PRODUCER_THROUGHPUT["queue.buffering.max.messages"]
    sent = 0
    while sent < records:
        count = min(PRODUCE_BATCH, records - sent)
        while len(producer) > queue_max - count:
            producer.poll(0.001)
        chunk = batch if count == PRODUCE_BATCH else batch[:count]
        queued = producer.produce_batch(topic, chunk, partition=0)
        if queued != count:
            errors = [message.get("_error") for message in chunk if "_error" in message]
            raise RuntimeError(f"produce_batch queued {queued} of {count}: {errors[:1]}")
        sent += count


def produce_run(bootstrap, topic, records, settings, watched_pids):
    """Produces `records` 100-byte records and waits for every acknowledgement."""
    failures = Failures()
    producer = Producer({"bootstrap.servers": bootstrap, "on_delivery": failures, **settings})
    # Warm up: connection, metadata, one acknowledged record (not counted).
    producer.produce(topic, b"w" * RECORD_VALUE_BYTES, partition=0)
    if producer.flush(30) != 0:
        raise RuntimeError("the warm-up record was not acknowledged within 30s")
    broker_cpu_before = [cpu_seconds(pid) for pid in watched_pids]
    client_cpu_before = own_cpu_seconds()
    started = time.perf_counter()
    produce_all(producer, topic, records)
    enqueued = time.perf_counter()
    remaining = producer.flush(120)
    finished = time.perf_counter()
    client_cpu = own_cpu_seconds() - client_cpu_before
    broker_cpu = [cpu_seconds(pid) - before for pid, before in zip(watched_pids, broker_cpu_before)]
    if remaining or failures.count:
        raise RuntimeError(f"produce: {remaining} records unacknowledged, {failures.count} failed "
                           f"(first: {failures.first})")
    elapsed = finished - started
    return {
        "records": records,
        "seconds": elapsed,
        "enqueue_seconds": enqueued - started,
        "records_per_second": records / elapsed,
        "mb_per_second": records * RECORD_VALUE_BYTES / elapsed / 1e6,
        "client_cpu": client_cpu / elapsed,
        "broker_cpu": [cpu / elapsed for cpu in broker_cpu],
        "load": load_average(),
    }


def consume_run(bootstrap, topic, records, settings, watched_pids):
    """Reads `records` records from offset 0; checks every offset arrives once, in order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}", **settings})
    broker_cpu_before = [cpu_seconds(pid) for pid in watched_pids]
    client_cpu_before = own_cpu_seconds()
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    consume = consumer.consume
    received = 0
    first_at = None
    deadline = time.monotonic() + 300
    while received < records:
        if time.monotonic() > deadline:
            raise RuntimeError(f"consume: {received} of {records} records after 300s")
        # consume(n) returns when it has n records (or after its timeout): never ask past the end.
        messages = consume(num_messages=min(100_000, records - received), timeout=1.0)
        if not messages:
            continue
        if first_at is None:
            first_at = time.perf_counter()
        last = messages[-1]
        if last.error() is not None or last.offset() != received + len(messages) - 1:
            # An error among them, or offsets not contiguous from where the last call ended.
            for message in messages:
                if message.error() is not None:
                    raise RuntimeError(f"consume: {message.error()}")
            raise RuntimeError(f"consume: offsets not contiguous near {received}")
        received += len(messages)
    finished = time.perf_counter()
    client_cpu = own_cpu_seconds() - client_cpu_before
    broker_cpu = [cpu_seconds(pid) - before for pid, before in zip(watched_pids, broker_cpu_before)]
    consumer.close()
    elapsed = finished - started
    return {
        "records": received,
        "seconds": elapsed,
        "first_record_seconds": (first_at or finished) - started,
        "records_per_second": received / elapsed,
        "mb_per_second": received * RECORD_VALUE_BYTES / elapsed / 1e6,
        "client_cpu": client_cpu / elapsed,
        "broker_cpu": [cpu / elapsed for cpu in broker_cpu],
        "load": load_average(),
    }


def setting_text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


def loadgen_run(loadgen, mode, bootstrap, topic, records, settings, watched_pids):
    """A produce or consume run by the Rust load generator (tests/loadgen): it says `start` when
    its timed window opens and prints its figures at the end; the brokers' CPU is read at both."""
    arguments = [loadgen, mode, "--bootstrap", bootstrap, "--topic", topic, "--records", str(records)]
    for key, value in settings.items():
        arguments += ["--set", f"{key}={setting_text(value)}"]
    process = subprocess.Popen(arguments, stdout=subprocess.PIPE, text=True)
    try:
        if process.stdout.readline().strip() != "start":
            raise RuntimeError(f"seedlog-loadgen {mode} failed before it started (exit {process.wait()})")
        broker_cpu_before = [cpu_seconds(pid) for pid in watched_pids]
        started = time.perf_counter()
        line = process.stdout.readline()
        window = time.perf_counter() - started
        broker_cpu = [cpu_seconds(pid) - before for pid, before in zip(watched_pids, broker_cpu_before)]
        if process.wait(timeout=60) != 0 or not line.strip():
            raise RuntimeError(f"seedlog-loadgen {mode} failed (exit {process.returncode})")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    figures = json.loads(line)
    elapsed = figures["seconds"]
    return {
        "records": figures["records"],
        "seconds": elapsed,
        "records_per_second": figures["records"] / elapsed,
        "mb_per_second": figures["records"] * RECORD_VALUE_BYTES / elapsed / 1e6,
        "client_cpu": figures["cpu_seconds"] / elapsed,
        "broker_cpu": [cpu / window for cpu in broker_cpu],
        "load": load_average(),
    }


def throughput_run(args, mode, bootstrap, topic, watched_pids):
    if args.client == "rust":
        settings = PRODUCER_THROUGHPUT if mode == "produce" else {"group.id": f"bench-{topic}",
                                                                  **CONSUMER_THROUGHPUT}
        return loadgen_run(args.loadgen, mode, bootstrap, topic, args.records, settings, watched_pids)
    if mode == "produce":
        return produce_run(bootstrap, topic, args.records, PRODUCER_THROUGHPUT, watched_pids)
    return consume_run(bootstrap, topic, args.records, CONSUMER_THROUGHPUT, watched_pids)


def latency_consumer(args):
    """The consumer process of the latency run: prints one latency (ns) per record to --out."""
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"bench-{args.topic}",
                         **CONSUMER_LATENCY})
    consumer.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    consumer.consume(num_messages=1, timeout=0.5)  # the first fetch is out: the producer may start
    print("ready", flush=True)
    latencies = []
    deadline = time.monotonic() + args.deadline
    while len(latencies) < args.records and time.monotonic() < deadline:
        # poll(), not consume(n): consume waits until it has n records or its timeout passes.
        message = consumer.poll(0.2)
        now = time.monotonic_ns()
        if message is None or message.error() is not None:
            continue
        value = message.value()
        if value[:4] != b"LAT:":
            continue  # the warm-up record
        latencies.append(now - struct.unpack_from(">q", value, 4)[0])
    consumer.close()
    with open(args.out, "w") as out:
        out.write("\n".join(str(latency) for latency in latencies))
    return 0


def latency_run(bootstrap, topic, rate, seconds, warmup_seconds):
    """Produces at `rate` records/s for `seconds`; a consumer process measures each record."""
    records = int(rate * seconds)
    out = tempfile.NamedTemporaryFile(prefix="latency-", suffix=".txt", delete=False).name
    consumer = subprocess.Popen(
        [sys.executable, __file__, "latency-consumer", "--bootstrap", bootstrap, "--topic", topic,
         "--records", str(records), "--out", out, "--deadline", str(seconds + 60)],
        stdout=subprocess.PIPE, text=True)
    if consumer.stdout.readline().strip() != "ready":
        raise RuntimeError("the latency consumer did not start")
    failures = Failures()
    producer = Producer({"bootstrap.servers": bootstrap, "on_delivery": failures, **PRODUCER_LATENCY})
    producer.produce(topic, b"warm-up", partition=0)
    producer.flush(30)
    padding = b"p" * (RECORD_VALUE_BYTES - 12)
    started = time.monotonic()
    sent = 0
    while sent < records:
        due = min(records, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            producer.produce(topic, b"LAT:" + struct.pack(">q", time.monotonic_ns()) + padding,
                             partition=0)
            sent += 1
        producer.poll(0)
        next_at = started + sent / rate
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    producer.flush(30)
    consumer.wait(timeout=seconds + 90)
    with open(out) as results:
        latencies = [int(line) for line in results if line.strip()]
    os.unlink(out)
    skipped = int(rate * warmup_seconds)
    measured = sorted(latencies[skipped:])
    if not measured:
        raise RuntimeError("latency: the consumer saw no record")

    def percentile(fraction):
        return measured[min(len(measured) - 1, int(fraction * len(measured)))] / 1e6

    return {
        "rate": rate,
        "seconds": seconds,
        "sent": records,
        "received": len(latencies),
        "measured": len(measured),
        "failed": failures.count,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "p999_ms": percentile(0.999),
        "max_ms": measured[-1] / 1e6,
        "load": load_average(),
    }


def client_enqueue_ceiling(records):
    """produce_batch() into a producer whose broker never answers: the client's own cost of
    queueing a record, with no request built or sent."""
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", **PRODUCER_THROUGHPUT,
                         "queue.buffering.max.messages": records + PRODUCE_BATCH,
                         "message.timeout.ms": 300_000, "log_level": 0})
    started = time.perf_counter()
    cpu_before = own_cpu_seconds()
    produce_all(producer, "ceiling", records)
    elapsed = time.perf_counter() - started
    cpu = own_cpu_seconds() - cpu_before
    producer.purge()
    producer.flush(1)
    return {"records": records, "records_per_second": records / elapsed, "client_cpu": cpu / elapsed,
            "load": load_average()}


def client_mock_ceiling(records):
    """A whole produce run against librdkafka's in-process mock broker: a dev-null-like target,
    but one that shares this process's CPU (so a floor for the client's ceiling)."""
    producer = Producer({**PRODUCER_THROUGHPUT, "test.mock.num.brokers": 1})
    producer.produce("ceiling", b"w" * RECORD_VALUE_BYTES, partition=0)
    producer.flush(30)
    started = time.perf_counter()
    cpu_before = own_cpu_seconds()
    produce_all(producer, "ceiling", records)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - started
    cpu = own_cpu_seconds() - cpu_before
    return {"records": records - remaining, "records_per_second": (records - remaining) / elapsed,
            "client_cpu": cpu / elapsed, "load": load_average()}


def show_settings():
    print("client settings (librdkafka through confluent-kafka):")
    for name, settings in [("throughput producer", PRODUCER_THROUGHPUT),
                           ("throughput consumer", CONSUMER_THROUGHPUT),
                           ("latency producer", PRODUCER_LATENCY),
                           ("latency consumer", CONSUMER_LATENCY)]:
        print(f"  {name}: " + ", ".join(f"{key}={value}" for key, value in settings.items()))


def show_throughput(label, result):
    broker_cpu = "+".join(f"{cpu * 100:.0f}%" for cpu in result["broker_cpu"])
    # CPU time per record: less sensitive to the machine's load than a rate.
    broker_us = sum(result["broker_cpu"]) * result["seconds"] / result["records"] * 1e6
    client_us = result["client_cpu"] * result["seconds"] / result["records"] * 1e6
    print(f"{label:<26} {result['records_per_second']:>11,.0f} records/s {result['mb_per_second']:>7.1f} MB/s"
          f"  ({result['records']:,} in {result['seconds']:.2f}s; CPU: client {result['client_cpu'] * 100:.0f}%"
          f", broker {broker_cpu}; CPU per record: client {client_us:.2f} us, broker {broker_us:.2f} us;"
          f" load {result['load']})", flush=True)


def bench(args):
    seedlog = os.path.abspath(args.seedlog)
    root = tempfile.mkdtemp(prefix="seedlog-bench-", dir=args.tmp)
    print(f"seedlog broker benchmark: {os.cpu_count()} cores, load {load_average()}, "
          f"{args.records:,} records of {RECORD_VALUE_BYTES} bytes, 1 partition, acks=all, flush never")
    print(f"seedlog binary: {seedlog}; work directory {root}")
    show_settings()
    results = {}
    try:
        if "single" in args.runs:
            directory = os.path.join(root, "single")
            os.makedirs(directory)
            broker = SingleBroker(seedlog, directory, args.override)
            try:
                time.sleep(args.settle_seconds)
                rss_start = rss_mib(broker.process.pid)
                print(f"broker RSS at rest after start: {rss_start:.1f} MiB (load {load_average()})",
                      flush=True)
                create_topic(broker.bootstrap, "bench", 1, 1)
                for attempt in range(args.repeat):
                    topic = "bench" if attempt == 0 else f"bench-{attempt}"
                    if attempt:
                        create_topic(broker.bootstrap, topic, 1, 1)
                    produced = throughput_run(args, "produce", broker.bootstrap, topic, broker.pids)
                    show_throughput("produce, 1 broker, RF 1", produced)
                    results.setdefault("produce_rf1", []).append(produced)
                    consumed = throughput_run(args, "consume", broker.bootstrap, topic, broker.pids)
                    show_throughput("consume, 1 broker", consumed)
                    results.setdefault("consume", []).append(consumed)
                if args.latency_seconds > 0:
                    if not args.no_sync_before_latency:
                        # The runs above left about a GiB of dirty pages; while the kernel writes
                        # them back, the broker's writes can block (see docs/performance.md).
                        started = time.perf_counter()
                        os.sync()
                        print(f"sync before the latency run: {time.perf_counter() - started:.1f}s",
                              flush=True)
                    create_topic(broker.bootstrap, "latency", 1, 1)
                    latency = latency_run(broker.bootstrap, "latency", args.latency_rate,
                                          args.latency_seconds, args.latency_warmup_seconds)
                    results["latency"] = latency
                    print(f"latency at {latency['rate']:,} records/s for {latency['seconds']}s: "
                          f"p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms, "
                          f"p99.9 {latency['p999_ms']:.2f} ms, max {latency['max_ms']:.2f} ms "
                          f"({latency['measured']:,} records measured after {args.latency_warmup_seconds}s "
                          f"warm-up, {latency['received']:,}/{latency['sent']:,} received, "
                          f"{latency['failed']} failed; load {latency['load']})", flush=True)
                time.sleep(args.settle_seconds)
                rss_after = rss_mib(broker.process.pid)
                print(f"broker RSS at rest after the load: {rss_after:.1f} MiB (load {load_average()})",
                      flush=True)
                results["rss"] = (rss_start, rss_after)
            finally:
                broker.stop()
        if "cluster" in args.runs:
            directory = os.path.join(root, "cluster")
            os.makedirs(directory)
            cluster = Cluster(seedlog, directory, 3, args.override)
            try:
                time.sleep(args.settle_seconds)
                rss = [rss_mib(pid) for pid in cluster.pids]
                print("3 brokers' RSS at rest after start: "
                      + ", ".join(f"{value:.1f}" for value in rss) + f" MiB (load {load_average()})")
                for attempt in range(args.repeat):
                    topic = f"bench-rf3-{attempt}"
                    create_topic(cluster.bootstrap, topic, 3, 2)
                    produced = throughput_run(args, "produce", cluster.bootstrap, topic, cluster.pids)
                    show_throughput("produce, 3 brokers, RF 3", produced)
                    results.setdefault("produce_rf3", []).append(produced)
            finally:
                cluster.stop()
        if "ceiling" in args.runs:
            if args.client == "rust":
                mock = loadgen_run(args.loadgen, "produce", "", "ceiling", args.records,
                                   {**PRODUCER_THROUGHPUT, "test.mock.num.brokers": 1}, [])
            else:
                enqueue = client_enqueue_ceiling(min(args.records, 2_000_000))
                print(f"client ceiling, queueing only (no broker): {enqueue['records_per_second']:>12,.0f} "
                      f"records/s (client CPU {enqueue['client_cpu'] * 100:.0f}%; load {enqueue['load']})",
                      flush=True)
                mock = client_mock_ceiling(args.records)
            print(f"client ceiling, librdkafka's mock broker: {mock['records_per_second']:>12,.0f} records/s "
                  f"(client CPU {mock['client_cpu'] * 100:.0f}%; load {mock['load']})", flush=True)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"summary ({os.cpu_count()} cores, load {load_average()}):")
    best = {}
    for key in ["produce_rf1", "consume", "produce_rf3"]:
        if key in results:
            rates = [result["records_per_second"] for result in results[key]]
            best[key] = max(rates)
            print(f"  {key:<12} best {max(rates):>12,.0f} records/s  (runs: "
                  + ", ".join(f"{rate:,.0f}" for rate in rates) + ")")
    if "produce_rf1" in results and "produce_rf3" in results:
        pairs = zip(results["produce_rf1"], results["produce_rf3"])
        ratios = [rf3["records_per_second"] / rf1["records_per_second"] for rf1, rf3 in pairs]
        print(f"  RF 3 / RF 1 produce: best-to-best {best['produce_rf3'] / best['produce_rf1']:.2f}, "
              "run by run " + ", ".join(f"{ratio:.2f}" for ratio in ratios))
    if "latency" in results:
        latency = results["latency"]
        print(f"  latency at {latency['rate']:,}/s: p50 {latency['p50_ms']:.2f} ms, "
              f"p99 {latency['p99_ms']:.2f} ms, max {latency['max_ms']:.2f} ms")
    if "rss" in results:
        print(f"  broker RSS at rest: {results['rss'][0]:.1f} MiB after start, "
              f"{results['rss'][1]:.1f} MiB after the load")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="the benchmark (default)")
    run.add_argument("--seedlog", required=True, help="the seedlog binary (a --release build)")
    run.add_argument("--loadgen", help="the Rust load generator (tests/loadgen), for --client rust")
    run.add_argument("--client", choices=["rust", "python"], default="rust",
                     help="the throughput runs' client: tests/loadgen on librdkafka (default), or "
                          "confluent-kafka in this process")
    run.add_argument("--records", type=int, default=5_000_000)
    run.add_argument("--repeat", type=int, default=2, help="produce/consume runs per setup")
    run.add_argument("--runs", default="single,cluster,ceiling",
                     help="comma-separated: single, cluster, ceiling")
    run.add_argument("--latency-rate", type=int, default=10_000)
    run.add_argument("--latency-seconds", type=float, default=20)
    run.add_argument("--latency-warmup-seconds", type=float, default=1)
    run.add_argument("--no-sync-before-latency", action="store_true",
                     help="do not write back the throughput runs' dirty pages (sync) before the latency run")
    run.add_argument("--settle-seconds", type=float, default=2)
    run.add_argument("--override", action="append", default=[],
                     help="KEY=VALUE passed to every broker (repeatable)")
    run.add_argument("--tmp", default=None, help="where the brokers' data goes (default: $TMPDIR)")
    run.add_argument("--keep", action="store_true", help="keep the data and logs")
    consumer = commands.add_parser("latency-consumer", help="internal: the latency run's consumer")
    consumer.add_argument("--bootstrap", required=True)
    consumer.add_argument("--topic", required=True)
    consumer.add_argument("--records", type=int, required=True)
    consumer.add_argument("--out", required=True)
    consumer.add_argument("--deadline", type=float, required=True)
    args = parser.parse_args()
    if args.command == "latency-consumer":
        return latency_consumer(args)
    if args.command != "run":
        parser.print_help()
        return 2
    args.runs = set(args.runs.split(","))
    if args.client == "rust" and not args.loadgen:
        parser.error("--client rust needs --loadgen PATH")
    try:
        return bench(args)
    except (RuntimeError, KafkaException) as error:
        print(f"broker_bench: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
