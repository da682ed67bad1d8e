//! Scheduler throughput: schedule and pop events with random virtual times, as a run does.
//! Target: at least 5 million events per second. Prints figures; asserts nothing about time.

use std::time::Instant;

use rand::Rng;
use seedlog_core::env::Time;
use seedlog_sim::scheduler::Scheduler;

fn main() {
    let events: u64 = 10_000_000;
    let mut rng = seedlog_sim::rng::stream(1, "bench");
    // A steady queue of ~10,000 pending events, like a busy simulated cluster.
    let mut scheduler: Scheduler<u64> = Scheduler::new(1 << 20);
    for i in 0..10_000 {
        scheduler.schedule(Time(rng.random_range(0..1_000_000)), i);
    }
    let began = Instant::now();
    let mut checksum = 0u64;
    for i in 0..events {
        let (now, sequence, event) = scheduler.pop().expect("the queue stays full");
        checksum = checksum.wrapping_add(event ^ sequence);
        scheduler.schedule(now.plus_nanos(rng.random_range(1..1_000_000)), i);
    }
    let seconds = began.elapsed().as_secs_f64();
    println!("scheduler: {events} pop+schedule pairs in {seconds:.3} s = {:.1} M events/s (queue ~10k; checksum {checksum:x})", events as f64 / seconds / 1e6);
    println!(
        "target: >= 5 M events/s on this machine ({} cores, shared; one run)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
