//! Trace and span ids: fixed-size byte arrays with the hex forms every tracing API uses.

use std::fmt;

/// A 128-bit W3C / OTLP trace id. Never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span id. Never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

/// Why an id could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    WrongLength { expected: usize, found: usize },
    AllZero,
    NotHex,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::WrongLength { expected, found } => {
                write!(f, "must be {expected} bytes, found {found}")
            }
            IdError::AllZero => f.write_str("must not be all zero"),
            IdError::NotHex => f.write_str("is not a hexadecimal string"),
        }
    }
}

fn from_slice<const N: usize>(bytes: &[u8]) -> Result<[u8; N], IdError> {
    let array: [u8; N] = bytes.try_into().map_err(|_| IdError::WrongLength {
        expected: N,
        found: bytes.len(),
    })?;
    if array == [0; N] {
        return Err(IdError::AllZero);
    }
    Ok(array)
}

/// Parses hex of at most `2 * N` digits, left-padding shorter ids with zeros (64-bit Zipkin and
/// Jaeger trace ids are the low half of a 128-bit id).
fn from_hex<const N: usize>(text: &str) -> Result<[u8; N], IdError> {
    if text.is_empty() || text.len() > 2 * N {
        return Err(IdError::WrongLength {
            expected: N,
            found: text.len().div_ceil(2),
        });
    }
    let mut padded = [b'0'; 64];
    padded[2 * N - text.len()..2 * N].copy_from_slice(text.as_bytes());
    let mut out = [0u8; N];
    const_hex::decode_to_slice(&padded[..2 * N], &mut out).map_err(|_| IdError::NotHex)?;
    from_slice(&out)
}

impl TraceId {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        from_slice(bytes).map(TraceId)
    }
    /// Case-insensitive hex; 16 or 32 digits (shorter ids are the low bits of a 128-bit id).
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        from_hex(text).map(TraceId)
    }
    pub fn to_hex(&self) -> String {
        const_hex::encode(self.0)
    }
}

impl SpanId {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        from_slice(bytes).map(SpanId)
    }
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        from_hex(text).map(SpanId)
    }
    pub fn to_hex(&self) -> String {
        const_hex::encode(self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case() {
        let id = TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").unwrap();
        assert_eq!(id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn short_trace_ids_are_left_padded() {
        let id = TraceId::from_hex("a3ce929d0e0e4736").unwrap();
        assert_eq!(id.to_hex(), "0000000000000000a3ce929d0e0e4736");
    }

    #[test]
    fn invalid_ids_are_refused() {
        assert_eq!(TraceId::from_hex(&"0".repeat(32)), Err(IdError::AllZero));
        assert_eq!(SpanId::from_hex("zz"), Err(IdError::NotHex));
        assert!(matches!(
            TraceId::from_hex(&"1".repeat(33)),
            Err(IdError::WrongLength { .. })
        ));
        assert_eq!(
            SpanId::from_bytes(&[1, 2, 3]),
            Err(IdError::WrongLength {
                expected: 8,
                found: 3
            })
        );
    }
}
