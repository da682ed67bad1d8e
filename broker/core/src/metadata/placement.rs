//! Replica placement for a new topic: Kafka's rack-unaware assignment.
//!
//! With the usable brokers sorted by id (`n` of them), two draws from the controller's rng pick a
//! start index `s` and a follower shift `k`. Partition `p`'s first replica (its preferred leader)
//! is broker `(s + p) mod n`, so leaderships go round the brokers; its followers sit at distinct
//! non-zero distances `1 + (k + j) mod (n - 1)` after it, and the shift grows by one every `n`
//! partitions so that follower sets vary too. The same brokers and rng give the same placement.

use rand_core::RngCore;

use super::records::BrokerId;

/// The replica lists (preferred leader first) of `partitions` partitions over `brokers`.
///
/// Returns `None` unless `1 <= replication_factor <= brokers.len()` (after removing duplicates).
pub fn assign_replicas(
    brokers: &[BrokerId],
    partitions: u32,
    replication_factor: u16,
    rng: &mut dyn RngCore,
) -> Option<Vec<Vec<BrokerId>>> {
    let mut brokers = brokers.to_vec();
    brokers.sort_unstable();
    brokers.dedup();
    let count = brokers.len();
    let replication_factor = usize::from(replication_factor);
    if replication_factor == 0 || replication_factor > count {
        return None;
    }
    let start_index = draw_below(rng, count);
    let mut shift = draw_below(rng, count);
    let mut assignment = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions as usize {
        if partition > 0 && partition % count == 0 {
            shift += 1;
        }
        let first = (start_index + partition) % count;
        let mut replicas = Vec::with_capacity(replication_factor);
        replicas.push(brokers[first]);
        for follower in 0..replication_factor - 1 {
            // count >= replication_factor >= 2 here, so count - 1 >= 1.
            let distance = 1 + (shift + follower) % (count - 1);
            replicas.push(brokers[(first + distance) % count]);
        }
        assignment.push(replicas);
    }
    Some(assignment)
}

/// A draw in `[0, bound)` for `bound >= 1` (the slight modulo bias does not matter for placement).
fn draw_below(rng: &mut dyn RngCore, bound: usize) -> usize {
    (rng.next_u64() % bound as u64) as usize
}
