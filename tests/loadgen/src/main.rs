//! The broker benchmark's load generator: produces or consumes 100-byte records on partition 0
//! of one topic through librdkafka (the `rdkafka` crate), as fast as the client can, and prints
//! what it measured. `tests/clients/broker_bench.py` runs it against real brokers, passes every
//! client setting with `--set`, and reads the brokers' CPU while it runs.
//!
//! Output on stdout: the line `start` when the timed window opens (the caller samples the
//! brokers' CPU then), and at the end one JSON object: `records`, `seconds` (the timed window),
//! `enqueue_seconds` (produce: until the last record was queued), `cpu_seconds` (this process,
//! every thread, over the window). Errors go to stderr with exit code 1; a delivery that fails
//! is an error (the figures count acknowledged records only).
//!
//! It measures and never judges speed: nothing here asserts on time.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const RECORD_VALUE_BYTES: usize = 100;
/// The longest a run may take before the load generator gives up.
const RUN_SECONDS_MAX: u64 = 600;
/// How long a consumer waits for the next record before it looks at the deadline again.
const POLL_WAIT: Duration = Duration::from_millis(500);

struct Options {
    mode: String,
    bootstrap: String,
    topic: String,
    records: u64,
    settings: Vec<(String, String)>,
}

fn usage() -> String {
    "usage: seedlog-loadgen produce|consume --bootstrap HOST:PORT --topic T --records N [--set KEY=VALUE]..."
        .to_string()
}

fn parse_options() -> Result<Options, String> {
    let mut arguments = std::env::args().skip(1);
    let mode = arguments.next().ok_or_else(usage)?;
    if mode != "produce" && mode != "consume" {
        return Err(usage());
    }
    let mut options =
        Options { mode, bootstrap: String::new(), topic: String::new(), records: 0, settings: Vec::new() };
    while let Some(flag) = arguments.next() {
        let value = arguments.next().ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        match flag.as_str() {
            "--bootstrap" => options.bootstrap = value,
            "--topic" => options.topic = value,
            "--records" => options.records = value.parse().map_err(|_| format!("--records {value}"))?,
            "--set" => {
                let (key, setting) = value.split_once('=').ok_or_else(|| format!("--set {value}: no '='"))?;
                options.settings.push((key.to_string(), setting.to_string()));
            }
            _ => return Err(format!("unknown flag {flag}\n{}", usage())),
        }
    }
    if options.topic.is_empty() || options.records == 0 {
        return Err(usage());
    }
    Ok(options)
}

fn client_config(options: &Options) -> ClientConfig {
    let mut config = ClientConfig::new();
    if !options.bootstrap.is_empty() {
        config.set("bootstrap.servers", &options.bootstrap);
    }
    for (key, value) in &options.settings {
        config.set(key, value);
    }
    config
}

/// User + system CPU seconds of this process (every thread), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    const CLOCK_TICKS_PER_SECOND: f64 = 100.0; // Linux's USER_HZ on every mainstream platform
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    let Some((_, after_name)) = stat.rsplit_once(')') else { return f64::NAN };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / CLOCK_TICKS_PER_SECOND,
        _ => f64::NAN,
    }
}

fn announce_start() {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "start");
    let _ = stdout.flush();
}

/// Counts failed deliveries (with `delivery.report.only.error` only failures are reported).
#[derive(Default)]
struct DeliveryFailures {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl ClientContext for DeliveryFailures {}

impl ProducerContext for DeliveryFailures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.count.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first.lock() {
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

fn produce(options: &Options) -> Result<String, String> {
    let producer: BaseProducer<DeliveryFailures> = client_config(options)
        .create_with_context(DeliveryFailures::default())
        .map_err(|error| format!("cannot create the producer: {error}"))?;
    let payload = vec![b'v'; RECORD_VALUE_BYTES];
    // Warm up: connection, metadata, one acknowledged record (not counted).
    send(&producer, &options.topic, &payload)?;
    producer.flush(Duration::from_secs(30)).map_err(|error| format!("warm-up: {error}"))?;
    let cpu_before = cpu_seconds();
    announce_start();
    let started = Instant::now();
    for _ in 0..options.records {
        send(&producer, &options.topic, &payload)?;
        if started.elapsed().as_secs() > RUN_SECONDS_MAX {
            return Err(format!("gave up after {RUN_SECONDS_MAX}s"));
        }
    }
    let enqueue_seconds = started.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(120)).map_err(|error| format!("flush: {error}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let failed = producer.context().count.load(Ordering::Relaxed);
    if failed > 0 {
        let first = producer.context().first.lock().ok().and_then(|first| first.clone());
        return Err(format!("{failed} deliveries failed, the first with {}", first.unwrap_or_default()));
    }
    Ok(format!(
        "{{\"records\": {}, \"seconds\": {seconds:.6}, \"enqueue_seconds\": {enqueue_seconds:.6}, \"cpu_seconds\": {cpu:.3}}}",
        options.records
    ))
}

/// Queues one record, serving the queue while it is full.
fn send(producer: &BaseProducer<DeliveryFailures>, topic: &str, payload: &[u8]) -> Result<(), String> {
    let mut record = BaseRecord::<(), [u8]>::to(topic).partition(0).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => return Err(format!("produce: {error}")),
        }
    }
}

fn consume(options: &Options) -> Result<String, String> {
    let consumer: BaseConsumer =
        client_config(options).create().map_err(|error| format!("cannot create the consumer: {error}"))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&options.topic, 0, Offset::Beginning)
        .map_err(|error| format!("assignment: {error}"))?;
    let cpu_before = cpu_seconds();
    announce_start();
    let started = Instant::now();
    consumer.assign(&assignment).map_err(|error| format!("assign: {error}"))?;
    let records = i64::try_from(options.records).map_err(|_| "--records too large".to_string())?;
    let mut next_offset: i64 = 0;
    while next_offset < records {
        if started.elapsed().as_secs() > RUN_SECONDS_MAX {
            return Err(format!("{next_offset} of {records} records after {RUN_SECONDS_MAX}s"));
        }
        match consumer.poll(POLL_WAIT) {
            None => {}
            Some(Err(error)) => return Err(format!("consume: {error}")),
            Some(Ok(message)) => {
                // Every offset once, in order, from 0: a single partition's log has no gaps.
                if message.offset() != next_offset {
                    return Err(format!("offset {} where {next_offset} was next", message.offset()));
                }
                next_offset += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    Ok(format!("{{\"records\": {next_offset}, \"seconds\": {seconds:.6}, \"cpu_seconds\": {cpu:.3}}}"))
}

fn main() -> ExitCode {
    let result = parse_options().and_then(|options| match options.mode.as_str() {
        "produce" => produce(&options),
        _ => consume(&options),
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("seedlog-loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}
