//! A pre-check of a request body before `kafka-protocol` decodes it.
//!
//! Why: `kafka-protocol` 0.18 reserves `Vec::with_capacity(n)` for an array whose length `n` it
//! has just read from the wire, before checking that `n` elements could fit in what is left of
//! the frame. A 12-byte Metadata request claiming 2^31 topics asks the allocator for ~150 GB and
//! the process aborts (an allocation failure is not a panic; nothing can catch it). The guard
//! walks the body with the API's schema and refuses any array whose length exceeds the bytes left
//! (every element of every Kafka array takes at least one byte), so the decoder never sees one.

//! The schemas below follow Kafka's message definitions for the versions in
//! [`super::SUPPORTED`], field by field, including each message's first flexible version (compact
//! strings and arrays, a tagged-field section closing every struct) and the tagged fields the
//! decoder knows (which it reads from the frame itself, so the walk must too). The test
//! `guard_accepts_every_version_the_encoder_writes` encodes a populated request of every
//! supported API and version with `kafka-protocol` and checks that the walk consumes it exactly.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

#[derive(Clone, Copy, Debug)]
enum Type {
    Int8,
    Int16,
    Int32,
    Int64,
    Uuid,
    /// A string, nullable or not (the same bytes on the wire).
    String,
    /// Bytes or records, nullable or not.
    Bytes,
    Array(&'static Struct),
    ArrayOfInt32,
    ArrayOfString,
    /// A struct read in place (a known tagged field holding a struct).
    Inline(&'static Struct),
}

/// A field present from version `min` to `max` inclusive.
#[derive(Clone, Copy, Debug)]
struct Field(Type, i16, i16);

/// A tagged field the decoder knows: (tag, type, first version).
#[derive(Clone, Copy, Debug)]
struct Tagged(u32, Type, i16);

#[derive(Debug)]
struct Struct {
    fields: &'static [Field],
    tagged: &'static [Tagged],
}

const ALL: i16 = i16::MAX;

const fn plain(fields: &'static [Field]) -> Struct {
    Struct { fields, tagged: &[] }
}

use Type::{
    Array, ArrayOfInt32, ArrayOfString, Bytes as Blob, Inline, Int16, Int32, Int64, Int8, String as Text,
    Uuid,
};

// Produce (flexible from v9).
static PRODUCE_PARTITION: Struct = plain(&[Field(Int32, 0, ALL), Field(Blob, 0, ALL)]);
static PRODUCE_TOPIC: Struct =
    plain(&[Field(Text, 0, 12), Field(Uuid, 13, ALL), Field(Array(&PRODUCE_PARTITION), 0, ALL)]);
static PRODUCE: Struct = plain(&[
    Field(Text, 3, ALL),
    Field(Int16, 0, ALL),
    Field(Int32, 0, ALL),
    Field(Array(&PRODUCE_TOPIC), 0, ALL),
]);

// Fetch (flexible from v12).
static FETCH_PARTITION: Struct = Struct {
    fields: &[
        Field(Int32, 0, ALL),
        Field(Int32, 9, ALL),
        Field(Int64, 0, ALL),
        Field(Int32, 12, ALL),
        Field(Int64, 5, ALL),
        Field(Int32, 0, ALL),
    ],
    tagged: &[Tagged(0, Uuid, 17), Tagged(1, Int64, 18)],
};
static FETCH_TOPIC: Struct =
    plain(&[Field(Text, 0, 12), Field(Uuid, 13, ALL), Field(Array(&FETCH_PARTITION), 0, ALL)]);
static FETCH_FORGOTTEN: Struct =
    plain(&[Field(Text, 7, 12), Field(Uuid, 13, ALL), Field(ArrayOfInt32, 7, ALL)]);
static FETCH_REPLICA_STATE: Struct = plain(&[Field(Int32, 15, ALL), Field(Int64, 15, ALL)]);
static FETCH: Struct = Struct {
    fields: &[
        Field(Int32, 0, 14),
        Field(Int32, 0, ALL),
        Field(Int32, 0, ALL),
        Field(Int32, 3, ALL),
        Field(Int8, 4, ALL),
        Field(Int32, 7, ALL),
        Field(Int32, 7, ALL),
        Field(Array(&FETCH_TOPIC), 0, ALL),
        Field(Array(&FETCH_FORGOTTEN), 7, ALL),
        Field(Text, 11, ALL),
    ],
    tagged: &[Tagged(0, Text, 12), Tagged(1, Inline(&FETCH_REPLICA_STATE), 15)],
};

// Metadata (flexible from v9).
static METADATA_TOPIC: Struct = plain(&[Field(Uuid, 10, ALL), Field(Text, 0, ALL)]);
static METADATA: Struct = plain(&[
    Field(Array(&METADATA_TOPIC), 0, ALL),
    Field(Int8, 4, ALL),
    Field(Int8, 8, 10),
    Field(Int8, 8, ALL),
]);

// ListOffsets (flexible from v6).
static LIST_OFFSETS_PARTITION: Struct =
    plain(&[Field(Int32, 0, ALL), Field(Int32, 4, ALL), Field(Int64, 0, ALL)]);
static LIST_OFFSETS_TOPIC: Struct =
    plain(&[Field(Text, 0, ALL), Field(Array(&LIST_OFFSETS_PARTITION), 0, ALL)]);
static LIST_OFFSETS: Struct = plain(&[
    Field(Int32, 0, ALL),
    Field(Int8, 2, ALL),
    Field(Array(&LIST_OFFSETS_TOPIC), 0, ALL),
    Field(Int32, 10, ALL),
]);

// OffsetForLeaderEpoch (flexible from v4).
static EPOCH_PARTITION: Struct = plain(&[Field(Int32, 0, ALL), Field(Int32, 0, ALL), Field(Int32, 0, ALL)]);
static EPOCH_TOPIC: Struct = plain(&[Field(Text, 0, ALL), Field(Array(&EPOCH_PARTITION), 0, ALL)]);
static OFFSET_FOR_LEADER_EPOCH: Struct = plain(&[Field(Int32, 3, ALL), Field(Array(&EPOCH_TOPIC), 0, ALL)]);

// CreateTopics (flexible from v5).
static CREATE_ASSIGNMENT: Struct = plain(&[Field(Int32, 0, ALL), Field(ArrayOfInt32, 0, ALL)]);
static CREATE_CONFIG: Struct = plain(&[Field(Text, 0, ALL), Field(Text, 0, ALL)]);
static CREATE_TOPIC: Struct = plain(&[
    Field(Text, 0, ALL),
    Field(Int32, 0, ALL),
    Field(Int16, 0, ALL),
    Field(Array(&CREATE_ASSIGNMENT), 0, ALL),
    Field(Array(&CREATE_CONFIG), 0, ALL),
]);
static CREATE_TOPICS: Struct =
    plain(&[Field(Array(&CREATE_TOPIC), 0, ALL), Field(Int32, 0, ALL), Field(Int8, 1, ALL)]);

// DeleteTopics (flexible from v4).
static DELETE_STATE: Struct = plain(&[Field(Text, 6, ALL), Field(Uuid, 6, ALL)]);
static DELETE_TOPICS: Struct =
    plain(&[Field(Array(&DELETE_STATE), 6, ALL), Field(ArrayOfString, 0, 5), Field(Int32, 0, ALL)]);

// CreatePartitions (flexible from v2).
static PARTITIONS_ASSIGNMENT: Struct = plain(&[Field(ArrayOfInt32, 0, ALL)]);
static PARTITIONS_TOPIC: Struct =
    plain(&[Field(Text, 0, ALL), Field(Int32, 0, ALL), Field(Array(&PARTITIONS_ASSIGNMENT), 0, ALL)]);
static CREATE_PARTITIONS: Struct =
    plain(&[Field(Array(&PARTITIONS_TOPIC), 0, ALL), Field(Int32, 0, ALL), Field(Int8, 0, ALL)]);

// DescribeConfigs (flexible from v4).
static DESCRIBE_RESOURCE: Struct =
    plain(&[Field(Int8, 0, ALL), Field(Text, 0, ALL), Field(ArrayOfString, 0, ALL)]);
static DESCRIBE_CONFIGS: Struct =
    plain(&[Field(Array(&DESCRIBE_RESOURCE), 0, ALL), Field(Int8, 1, ALL), Field(Int8, 3, ALL)]);

// AlterConfigs (flexible from v2) and IncrementalAlterConfigs (flexible from v1).
static ALTER_CONFIG: Struct = plain(&[Field(Text, 0, ALL), Field(Text, 0, ALL)]);
static ALTER_RESOURCE: Struct =
    plain(&[Field(Int8, 0, ALL), Field(Text, 0, ALL), Field(Array(&ALTER_CONFIG), 0, ALL)]);
static ALTER_CONFIGS: Struct = plain(&[Field(Array(&ALTER_RESOURCE), 0, ALL), Field(Int8, 0, ALL)]);
static INCREMENTAL_CONFIG: Struct = plain(&[Field(Text, 0, ALL), Field(Int8, 0, ALL), Field(Text, 0, ALL)]);
static INCREMENTAL_RESOURCE: Struct =
    plain(&[Field(Int8, 0, ALL), Field(Text, 0, ALL), Field(Array(&INCREMENTAL_CONFIG), 0, ALL)]);
static INCREMENTAL_ALTER_CONFIGS: Struct =
    plain(&[Field(Array(&INCREMENTAL_RESOURCE), 0, ALL), Field(Int8, 0, ALL)]);

// DescribeCluster (flexible from v0) and ApiVersions (flexible from v3): no arrays, walked anyway.
static DESCRIBE_CLUSTER: Struct = plain(&[Field(Int8, 0, ALL), Field(Int8, 1, ALL), Field(Int8, 2, ALL)]);
static API_VERSIONS: Struct = plain(&[Field(Text, 3, ALL), Field(Text, 3, ALL)]);

/// The schema of an API's request body and its first flexible version.
fn schema(api_key: ApiKey) -> Option<(&'static Struct, i16)> {
    Some(match api_key {
        ApiKey::Produce => (&PRODUCE, 9),
        ApiKey::Fetch => (&FETCH, 12),
        ApiKey::Metadata => (&METADATA, 9),
        ApiKey::ListOffsets => (&LIST_OFFSETS, 6),
        ApiKey::OffsetForLeaderEpoch => (&OFFSET_FOR_LEADER_EPOCH, 4),
        ApiKey::CreateTopics => (&CREATE_TOPICS, 5),
        ApiKey::DeleteTopics => (&DELETE_TOPICS, 4),
        ApiKey::CreatePartitions => (&CREATE_PARTITIONS, 2),
        ApiKey::DescribeConfigs => (&DESCRIBE_CONFIGS, 4),
        ApiKey::AlterConfigs => (&ALTER_CONFIGS, 2),
        ApiKey::IncrementalAlterConfigs => (&INCREMENTAL_ALTER_CONFIGS, 1),
        ApiKey::DescribeCluster => (&DESCRIBE_CLUSTER, 0),
        ApiKey::ApiVersions => (&API_VERSIONS, 3),
        _ => return None,
    })
}

/// Checks `body` (the request after its header). `Ok` means: every array in it, at any depth,
/// claims no more elements than bytes remain after its length — so the decoder's reservations are
/// bounded by the frame size. A body the walk cannot finish (truncated) is also `Ok`: the
/// decoder then fails on it before reserving anything larger. Unknown APIs are refused.
pub fn check(api_key: ApiKey, version: i16, body: &Bytes) -> Result<(), String> {
    let Some((root, flexible_from)) = schema(api_key) else {
        return Err(format!("no request schema for {api_key:?}"));
    };
    let mut walk = Walk { buf: body, position: 0, version, flexible: version >= flexible_from, depth: 0 };
    match walk.visit(root) {
        Ok(()) | Err(Stop::Truncated) => Ok(()),
        Err(Stop::Refused(reason)) => Err(reason),
    }
}

/// How far [`check`] got: the consumed length when it finished (tests compare it with the body).
#[cfg(test)]
pub(super) fn walk_length(api_key: ApiKey, version: i16, body: &[u8]) -> Option<usize> {
    let (root, flexible_from) = schema(api_key)?;
    let mut walk = Walk { buf: body, position: 0, version, flexible: version >= flexible_from, depth: 0 };
    walk.visit(root).ok().map(|()| walk.position)
}

enum Stop {
    Truncated,
    Refused(String),
}

/// Kafka's messages nest a few levels; anything deeper is not one of ours.
const DEPTH_MAX: u32 = 16;

struct Walk<'a> {
    buf: &'a [u8],
    position: usize,
    version: i16,
    flexible: bool,
    depth: u32,
}

impl Walk<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.position
    }

    fn skip(&mut self, bytes: usize) -> Result<(), Stop> {
        if bytes > self.remaining() {
            return Err(Stop::Truncated);
        }
        self.position += bytes;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let mut out = [0u8; N];
        let end = self.position.checked_add(N).filter(|end| *end <= self.buf.len()).ok_or(Stop::Truncated)?;
        out.copy_from_slice(&self.buf[self.position..end]);
        self.position = end;
        Ok(out)
    }

    fn unsigned_varint(&mut self) -> Result<u64, Stop> {
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let [byte] = self.take::<1>()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Stop::Refused("a varint longer than five bytes".into()))
    }

    /// An array's element count (`None` for a null array), refused if it cannot fit.
    fn count(&mut self) -> Result<Option<usize>, Stop> {
        let count = if self.flexible {
            match self.unsigned_varint()? {
                0 => return Ok(None),
                n => n - 1,
            }
        } else {
            match i32::from_be_bytes(self.take::<4>()?) {
                -1 => return Ok(None),
                n if n < 0 => return Err(Stop::Refused(format!("array length {n}"))),
                n => n as u64,
            }
        };
        if count > self.remaining() as u64 {
            return Err(Stop::Refused(format!("an array of {count} elements in {} bytes", self.remaining())));
        }
        Ok(Some(count as usize))
    }

    /// A string's or bytes' length prefix, then its bytes.
    fn sized(&mut self, wide: bool) -> Result<(), Stop> {
        let length = if self.flexible {
            match self.unsigned_varint()? {
                0 => return Ok(()),
                n => n - 1,
            }
        } else if wide {
            match i32::from_be_bytes(self.take::<4>()?) {
                n if n < 0 => return Ok(()),
                n => n as u64,
            }
        } else {
            match i16::from_be_bytes(self.take::<2>()?) {
                n if n < 0 => return Ok(()),
                n => n as u64,
            }
        };
        self.skip(usize::try_from(length).map_err(|_| Stop::Truncated)?)
    }

    fn value(&mut self, kind: Type) -> Result<(), Stop> {
        match kind {
            Type::Int8 => self.skip(1),
            Type::Int16 => self.skip(2),
            Type::Int32 => self.skip(4),
            Type::Int64 => self.skip(8),
            Type::Uuid => self.skip(16),
            Type::String => self.sized(false),
            Type::Bytes => self.sized(true),
            Type::Inline(inner) => self.visit(inner),
            Type::Array(inner) => {
                for _ in 0..self.count()?.unwrap_or(0) {
                    self.visit(inner)?;
                }
                Ok(())
            }
            Type::ArrayOfInt32 => {
                let count = self.count()?.unwrap_or(0);
                self.skip(count.saturating_mul(4))
            }
            Type::ArrayOfString => {
                for _ in 0..self.count()?.unwrap_or(0) {
                    self.sized(false)?;
                }
                Ok(())
            }
        }
    }

    fn visit(&mut self, schema: &Struct) -> Result<(), Stop> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(Stop::Refused("nested too deep".into()));
        }
        for Field(kind, min, max) in schema.fields {
            if (*min..=*max).contains(&self.version) {
                self.value(*kind)?;
            }
        }
        if self.flexible {
            let tags = self.unsigned_varint()?;
            for _ in 0..tags {
                let tag = self.unsigned_varint()?;
                let size = self.unsigned_varint()?;
                let known = schema
                    .tagged
                    .iter()
                    .find(|Tagged(known, _, min)| u64::from(*known) == tag && self.version >= *min);
                match known {
                    // The decoder reads a known tag's value from the frame, whatever its size says.
                    Some(Tagged(_, kind, _)) => self.value(*kind)?,
                    None => self.skip(usize::try_from(size).map_err(|_| Stop::Truncated)?)?,
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }
}
