//! How quorum entries are stored in the metadata log: one Kafka v2 batch per proposal.
//!
//! A batch's records are the entries, one per payload (the record value). Every record's key is
//! five bytes: the Raft epoch (i32, big-endian) and the entry kind (0 = data, 1 = the leader's
//! epoch-start control entry, KRaft's LeaderChange). The batch header's `partition_leader_epoch`
//! also holds the epoch, as Kafka's does, but it is outside the CRC: the key copy is inside it, and
//! every read checks that the two agree. A disagreement is corruption, like a CRC failure.

use crate::record::{
    decode_records, encode_batch, set_partition_leader_epoch, BatchHeader, NewRecord, ProducerInfo,
};

const KEY_BYTES: usize = 5;
const KIND_DATA: u8 = 0;
const KIND_LEADER_CHANGE: u8 = 1;

/// One entry read back from a stored or fetched batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DecodedEntry {
    pub offset: i64,
    pub control: bool,
    pub payload: Vec<u8>,
}

/// One batch read back: its header, its epoch and its entries.
#[derive(Clone, Debug)]
pub(super) struct DecodedBatch {
    pub header: BatchHeader,
    pub epoch: i32,
    pub entries: Vec<DecodedEntry>,
}

/// A batch of data entries in `epoch`, one record per payload. `payloads` MUST NOT be empty.
pub(super) fn encode_data_batch(epoch: i32, payloads: &[Vec<u8>], timestamp: i64) -> Vec<u8> {
    let records: Vec<NewRecord> = payloads
        .iter()
        .map(|payload| NewRecord {
            timestamp,
            key: Some(key(epoch, KIND_DATA).to_vec()),
            value: Some(payload.clone()),
            headers: Vec::new(),
        })
        .collect();
    finish(epoch, &records)
}

/// The leader's epoch-start control entry: its value names the leader.
pub(super) fn encode_leader_change(epoch: i32, leader: u32, timestamp: i64) -> Vec<u8> {
    let record = NewRecord {
        timestamp,
        key: Some(key(epoch, KIND_LEADER_CHANGE).to_vec()),
        value: Some(leader.to_be_bytes().to_vec()),
        headers: Vec::new(),
    };
    finish(epoch, &[record])
}

/// The records of `batch` from `from_offset` on, as a batch of their own (same epoch, keys,
/// values, timestamps): what a follower whose log starts inside a leader's batch appends.
pub(super) fn encode_suffix(batch: &[u8], from_offset: i64) -> Option<Vec<u8>> {
    let (header, records) = decode_records(batch).ok()?;
    let kept: Vec<NewRecord> = records
        .into_iter()
        .filter(|record| header.base_offset + i64::from(record.offset_delta) >= from_offset)
        .map(|record| NewRecord {
            timestamp: header.base_timestamp.saturating_add(record.timestamp_delta),
            key: record.key,
            value: record.value,
            headers: record.headers,
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    Some(finish(header.partition_leader_epoch, &kept))
}

/// Decodes and checks one whole batch (CRC, records, the epoch in every key equal to the header's,
/// one kind per batch, a control batch of exactly one entry). `Err` is a reason: never trust it.
pub(super) fn decode_batch(batch: &[u8]) -> Result<DecodedBatch, String> {
    let (header, records) = decode_records(batch).map_err(|error| format!("invalid batch: {error:?}"))?;
    let epoch = header.partition_leader_epoch;
    if epoch < 0 {
        return Err(format!("negative epoch {epoch}"));
    }
    let mut kind = None;
    let mut entries = Vec::with_capacity(records.len());
    for record in records {
        let Some(key) = record.key.as_deref() else { return Err("a record without a key".to_string()) };
        if key.len() != KEY_BYTES {
            return Err(format!("a record key of {} bytes", key.len()));
        }
        let key_epoch = i32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        if key_epoch != epoch {
            return Err(format!("the batch header says epoch {epoch}, a record's key says {key_epoch}"));
        }
        let record_kind = key[4];
        if record_kind != KIND_DATA && record_kind != KIND_LEADER_CHANGE {
            return Err(format!("unknown entry kind {record_kind}"));
        }
        if kind.is_some_and(|kind| kind != record_kind) {
            return Err("a batch mixes entry kinds".to_string());
        }
        kind = Some(record_kind);
        let Some(payload) = record.value else { return Err("a record without a value".to_string()) };
        entries.push(DecodedEntry {
            offset: header.base_offset + i64::from(record.offset_delta),
            control: record_kind == KIND_LEADER_CHANGE,
            payload,
        });
    }
    if kind == Some(KIND_LEADER_CHANGE) && entries.len() != 1 {
        return Err("a control batch holds exactly one entry".to_string());
    }
    Ok(DecodedBatch { header, epoch, entries })
}

/// fnv1a-64: the payload hash the simulator's invariants compare.
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn key(epoch: i32, kind: u8) -> [u8; KEY_BYTES] {
    let epoch = epoch.to_be_bytes();
    [epoch[0], epoch[1], epoch[2], epoch[3], kind]
}

fn finish(epoch: i32, records: &[NewRecord]) -> Vec<u8> {
    let mut batch = encode_batch(records, ProducerInfo::NONE);
    set_partition_leader_epoch(&mut batch, epoch);
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::set_base_offset;

    #[test]
    fn batches_round_trip_and_a_header_epoch_that_disagrees_with_the_keys_is_refused() {
        let payloads = vec![b"a".to_vec(), b"bb".to_vec(), Vec::new()];
        let mut batch = encode_data_batch(7, &payloads, 100);
        set_base_offset(&mut batch, 40);
        let decoded = decode_batch(&batch).unwrap();
        assert_eq!(decoded.epoch, 7);
        let offsets: Vec<i64> = decoded.entries.iter().map(|entry| entry.offset).collect();
        assert_eq!(offsets, vec![40, 41, 42]);
        assert!(decoded.entries.iter().all(|entry| !entry.control));
        assert_eq!(decoded.entries[1].payload, b"bb");

        let control = decode_batch(&encode_leader_change(3, 9, 0)).unwrap();
        assert!(control.entries[0].control);

        // The header epoch is outside the CRC: rewrite it and the keys catch it.
        set_partition_leader_epoch(&mut batch, 8);
        assert!(decode_batch(&batch).unwrap_err().contains("epoch"));
    }

    #[test]
    fn a_suffix_keeps_the_epoch_and_the_later_records() {
        let payloads = vec![b"x".to_vec(), b"y".to_vec(), b"z".to_vec()];
        let mut batch = encode_data_batch(2, &payloads, 5);
        set_base_offset(&mut batch, 10);
        let mut suffix = encode_suffix(&batch, 11).unwrap();
        set_base_offset(&mut suffix, 11);
        let decoded = decode_batch(&suffix).unwrap();
        assert_eq!(decoded.epoch, 2);
        let got: Vec<(i64, Vec<u8>)> = decoded.entries.into_iter().map(|e| (e.offset, e.payload)).collect();
        assert_eq!(got, vec![(11, b"y".to_vec()), (12, b"z".to_vec())]);
        assert!(encode_suffix(&batch, 13).is_none());
    }

    #[test]
    fn fnv1a64_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
