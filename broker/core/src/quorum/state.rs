//! The persisted election state, `metadata/quorum-state`: the epoch, the vote cast in it and the
//! leader known in it, with a CRC32C.
//!
//! Format (big-endian): version u8 (1), epoch i32, has_vote u8, voted_for u32, has_leader u8,
//! leader u32, CRC32C u32 of everything before it. Written to `metadata/quorum-state.tmp-{n}`,
//! synced, then renamed over `metadata/quorum-state` (see the module documentation of
//! [`super`] for the ordering rules).

use super::NodeId;

pub(super) const STATE_PATH: &str = "metadata/quorum-state";
pub(super) const STATE_TEMP_PREFIX: &str = "metadata/quorum-state.tmp-";

const VERSION: u8 = 1;
const STATE_BYTES: usize = 1 + 4 + 5 + 5 + 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ElectionState {
    pub epoch: i32,
    pub voted_for: Option<NodeId>,
    pub leader: Option<NodeId>,
}

pub(super) fn temp_path(sequence: u64) -> String {
    format!("{STATE_TEMP_PREFIX}{sequence}")
}

pub(super) fn encode(state: &ElectionState) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(STATE_BYTES);
    bytes.push(VERSION);
    bytes.extend_from_slice(&state.epoch.to_be_bytes());
    for node in [state.voted_for, state.leader] {
        bytes.push(u8::from(node.is_some()));
        bytes.extend_from_slice(&node.unwrap_or(0).to_be_bytes());
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(bytes.len(), STATE_BYTES);
    bytes
}

/// Parses the file's bytes; `Err` says why they are not a valid state (never guess one).
pub(super) fn decode(bytes: &[u8]) -> Result<ElectionState, String> {
    if bytes.len() != STATE_BYTES {
        return Err(format!("{} bytes, expected {STATE_BYTES}", bytes.len()));
    }
    let (body, crc) = bytes.split_at(STATE_BYTES - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"));
    }
    if body[0] != VERSION {
        return Err(format!("unknown version {}", body[0]));
    }
    let epoch = i32::from_be_bytes([body[1], body[2], body[3], body[4]]);
    if epoch < 0 {
        return Err(format!("negative epoch {epoch}"));
    }
    let node = |at: usize| -> Result<Option<NodeId>, String> {
        let id = u32::from_be_bytes([body[at + 1], body[at + 2], body[at + 3], body[at + 4]]);
        match body[at] {
            0 => Ok(None),
            1 => Ok(Some(id)),
            flag => Err(format!("invalid presence flag {flag}")),
        }
    };
    Ok(ElectionState { epoch, voted_for: node(5)?, leader: node(10)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_any_flipped_bit_is_refused() {
        let state = ElectionState { epoch: 42, voted_for: Some(3), leader: None };
        let bytes = encode(&state);
        assert_eq!(decode(&bytes), Ok(state));
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&bad).is_err(), "bit {bit}");
        }
        assert!(decode(&bytes[..10]).is_err());
        assert_eq!(decode(&encode(&ElectionState::default())), Ok(ElectionState::default()));
    }
}
