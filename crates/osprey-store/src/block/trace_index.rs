//! The trace-id index beside each block's Parquet file: the trace-id range of every row group and a
//! Bloom filter over every trace id, so a lookup by id skips blocks and row groups without opening
//! the Parquet footer. Layout (little-endian), as docs/format.md gives it:
//!
//! ```text
//! magic "OSPI" | version u32 = 1 | row groups u32 | per row group: min id [16] max id [16] first row u64 rows u64
//! | filter hashes u32 | filter words u32 | words u64…
//! ```

use osprey_model::TraceId;

const MAGIC: &[u8; 4] = b"OSPI";
const VERSION: u32 = 1;
/// Filter bits per trace (at least; the size is rounded up to a power of two): with 14 hashes, a
/// false positive about once in 20,000 lookups of a trace the block does not hold. A lookup asks
/// every block of the time range, and each false positive costs it a read of that block's pages:
/// at 1 % (10 bits, 7 hashes), a store of 100 blocks read one block too many for a typical lookup.
const BITS_PER_TRACE: usize = 20;
const HASHES: u32 = 14;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroupRange {
    pub min: TraceId,
    pub max: TraceId,
    pub first_row: u64,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceIndex {
    pub row_groups: Vec<RowGroupRange>,
    hashes: u32,
    words: Vec<u64>,
}

/// Two independent 64-bit hashes of an id (SplitMix64's finaliser over each half), for double
/// hashing; ids are meant to be random, but clients that make them up must not defeat the filter.
fn hashes(id: &TraceId) -> (u64, u64) {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    let hi = u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"));
    let lo = u64::from_le_bytes(id.0[8..].try_into().expect("8 bytes"));
    (
        mix(hi ^ mix(lo)),
        mix(lo.wrapping_add(0x9e3779b97f4a7c15)) | 1,
    )
}

impl TraceIndex {
    /// The index of a block with these row groups, holding these (distinct) trace ids.
    pub fn new(row_groups: Vec<RowGroupRange>, trace_ids: &[TraceId]) -> TraceIndex {
        let bits = (trace_ids.len().max(1) * BITS_PER_TRACE)
            .next_power_of_two()
            .max(64);
        let mut index = TraceIndex {
            row_groups,
            hashes: HASHES,
            words: vec![0; bits / 64],
        };
        for id in trace_ids {
            index.insert(id);
        }
        index
    }

    /// What the index takes in memory.
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8 + self.row_groups.len() * std::mem::size_of::<RowGroupRange>()
    }

    fn bit_positions(&self, id: &TraceId) -> impl Iterator<Item = usize> + '_ {
        let (h1, h2) = hashes(id);
        let mask = (self.words.len() * 64 - 1) as u64;
        (0..self.hashes as u64).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize)
    }

    fn insert(&mut self, id: &TraceId) {
        let positions: Vec<usize> = self.bit_positions(id).collect();
        for bit in positions {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// False only when the block certainly does not hold the trace.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        !self.words.is_empty()
            && self
                .bit_positions(id)
                .all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// The row groups whose id range covers `id`.
    pub fn row_groups_for(&self, id: &TraceId) -> Vec<usize> {
        self.row_groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.min <= *id && *id <= g.max)
            .map(|(i, _)| i)
            .collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.row_groups.len() * 48 + self.words.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.row_groups.len() as u32).to_le_bytes());
        for g in &self.row_groups {
            out.extend_from_slice(&g.min.0);
            out.extend_from_slice(&g.max.0);
            out.extend_from_slice(&g.first_row.to_le_bytes());
            out.extend_from_slice(&g.rows.to_le_bytes());
        }
        out.extend_from_slice(&self.hashes.to_le_bytes());
        out.extend_from_slice(&(self.words.len() as u32).to_le_bytes());
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<TraceIndex, String> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err("not a trace-id index (bad magic)".into());
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(format!("trace-id index version {version} is not supported"));
        }
        let groups = r.u32()? as usize;
        let mut row_groups = Vec::with_capacity(groups.min(1 << 20));
        for _ in 0..groups {
            row_groups.push(RowGroupRange {
                min: TraceId(r.take(16)?.try_into().expect("16 bytes")),
                max: TraceId(r.take(16)?.try_into().expect("16 bytes")),
                first_row: r.u64()?,
                rows: r.u64()?,
            });
        }
        let hashes = r.u32()?;
        let words = r.u32()? as usize;
        if !words.is_power_of_two() || hashes == 0 || hashes > 32 {
            return Err("trace-id index filter is malformed".into());
        }
        let words = (0..words).map(|_| r.u64()).collect::<Result<_, _>>()?;
        Ok(TraceIndex {
            row_groups,
            hashes,
            words,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("trace-id index is truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> TraceId {
        let mut b = [0u8; 16];
        b[12..].copy_from_slice(&n.to_be_bytes());
        TraceId(b)
    }

    #[test]
    fn finds_what_it_holds_and_round_trips() {
        let ids: Vec<TraceId> = (0..10_000).map(|n| id(n * 2)).collect();
        let groups = ids
            .chunks(1000)
            .enumerate()
            .map(|(i, chunk)| RowGroupRange {
                min: chunk[0],
                max: chunk[chunk.len() - 1],
                first_row: i as u64 * 1000,
                rows: chunk.len() as u64,
            })
            .collect();
        let index = TraceIndex::new(groups, &ids);
        assert_eq!(index.row_groups.len(), 10);
        assert!(ids.iter().all(|i| index.may_contain(i)));
        let false_positives = (0..10_000)
            .filter(|n| index.may_contain(&id(n * 2 + 1)))
            .count();
        assert!(false_positives < 10, "{false_positives} false positives");
        assert_eq!(index.row_groups_for(&id(2500)), vec![1]);
        assert_eq!(TraceIndex::decode(&index.encode()).unwrap(), index);
        assert!(TraceIndex::decode(&index.encode()[..30]).is_err());
    }
}
