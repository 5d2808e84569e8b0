//! A reader of Thrift's binary and compact protocols over a byte slice, for the Jaeger clients'
//! span batches. Every length and count is checked against the bytes left before anything is
//! allocated, and nesting is bounded, so a hostile packet costs at most its own size: the Apache
//! `thrift` crate allocates what a length prefix claims (a negative binary length becomes a
//! capacity overflow), which a UDP port open to any client cannot afford.

/// The value types of a field or element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Bool,
    Byte,
    I16,
    I32,
    I64,
    Double,
    /// Strings and binary.
    Binary,
    Struct,
    Map,
    Set,
    List,
}

/// How deep structs and containers may nest (Jaeger's batches need four levels).
const MAX_DEPTH: usize = 32;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    compact: bool,
    /// Compact protocol: the last field id of each open struct (ids are sent as deltas).
    last_ids: Vec<i16>,
    /// Compact protocol: a bool field's value, carried in its field header.
    field_bool: Option<bool>,
}

pub(crate) type Result<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], compact: bool) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            compact,
            last_ids: Vec::new(),
            field_bool: None,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| format!("truncated at byte {}: {n} more bytes needed", self.pos))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes taken"))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint too long at byte {}", self.pos))
    }

    fn zigzag(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    pub(crate) fn i16(&mut self) -> Result<i16> {
        if self.compact {
            i16::try_from(self.zigzag()?).map_err(|_| "i16 out of range".to_string())
        } else {
            Ok(i16::from_be_bytes(self.fixed()?))
        }
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        if self.compact {
            i32::try_from(self.zigzag()?).map_err(|_| "i32 out of range".to_string())
        } else {
            Ok(i32::from_be_bytes(self.fixed()?))
        }
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        if self.compact {
            self.zigzag()
        } else {
            Ok(i64::from_be_bytes(self.fixed()?))
        }
    }

    pub(crate) fn double(&mut self) -> Result<f64> {
        // Compact writes doubles little-endian, binary big-endian.
        let bytes = self.fixed::<8>()?;
        Ok(if self.compact {
            f64::from_le_bytes(bytes)
        } else {
            f64::from_be_bytes(bytes)
        })
    }

    pub(crate) fn bool(&mut self) -> Result<bool> {
        if let Some(value) = self.field_bool.take() {
            return Ok(value);
        }
        let b = self.byte()?;
        Ok(if self.compact { b == 1 } else { b != 0 })
    }

    pub(crate) fn binary(&mut self) -> Result<&'a [u8]> {
        let len = if self.compact {
            usize::try_from(self.varint()?).map_err(|_| "length out of range".to_string())?
        } else {
            usize::try_from(self.i32()?)
                .map_err(|_| format!("negative length at byte {}", self.pos))?
        };
        self.take(len)
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        let at = self.pos;
        String::from_utf8(self.binary()?.to_vec())
            .map_err(|_| format!("string at byte {at} is not UTF-8"))
    }

    fn compact_type(code: u8) -> Result<Type> {
        Ok(match code {
            1 | 2 => Type::Bool,
            3 => Type::Byte,
            4 => Type::I16,
            5 => Type::I32,
            6 => Type::I64,
            7 => Type::Double,
            8 => Type::Binary,
            9 => Type::List,
            10 => Type::Set,
            11 => Type::Map,
            12 => Type::Struct,
            other => return Err(format!("unknown compact type {other}")),
        })
    }

    fn binary_type(code: u8) -> Result<Type> {
        Ok(match code {
            2 => Type::Bool,
            3 => Type::Byte,
            4 => Type::Double,
            6 => Type::I16,
            8 => Type::I32,
            10 => Type::I64,
            11 => Type::Binary,
            12 => Type::Struct,
            13 => Type::Map,
            14 => Type::Set,
            15 => Type::List,
            other => return Err(format!("unknown binary type {other}")),
        })
    }

    pub(crate) fn struct_begin(&mut self) -> Result<()> {
        if self.last_ids.len() >= MAX_DEPTH {
            return Err(format!("structs nested deeper than {MAX_DEPTH}"));
        }
        self.last_ids.push(0);
        Ok(())
    }

    pub(crate) fn struct_end(&mut self) {
        self.last_ids.pop();
    }

    /// The next field's type and id, or `None` at the end of the struct.
    pub(crate) fn field(&mut self) -> Result<Option<(Type, i16)>> {
        let header = self.byte()?;
        if header == 0 {
            return Ok(None);
        }
        if !self.compact {
            let kind = Self::binary_type(header)?;
            return Ok(Some((kind, self.i16()?)));
        }
        let code = header & 0x0f;
        let kind = Self::compact_type(code)?;
        let delta = i16::from(header >> 4);
        let last = self.last_ids.last().copied().unwrap_or(0);
        let id = if delta == 0 {
            self.i16()?
        } else {
            last.saturating_add(delta)
        };
        if let Some(top) = self.last_ids.last_mut() {
            *top = id;
        }
        if kind == Type::Bool {
            self.field_bool = Some(code == 1);
        }
        Ok(Some((kind, id)))
    }

    /// A list's (or set's) element type and length.
    pub(crate) fn list(&mut self) -> Result<(Type, usize)> {
        let (kind, size) = if self.compact {
            let header = self.byte()?;
            let short = usize::from(header >> 4);
            let size = if short == 15 {
                usize::try_from(self.varint()?).map_err(|_| "list size out of range".to_string())?
            } else {
                short
            };
            (Self::compact_type(header & 0x0f)?, size)
        } else {
            let kind = Self::binary_type(self.byte()?)?;
            let size = usize::try_from(self.i32()?)
                .map_err(|_| format!("negative list size at byte {}", self.pos))?;
            (kind, size)
        };
        // Every element takes at least a byte: a count beyond what is left is a lie.
        if size > self.buf.len() - self.pos {
            return Err(format!(
                "list of {size} elements in {} bytes",
                self.buf.len() - self.pos
            ));
        }
        Ok((kind, size))
    }

    fn map(&mut self) -> Result<(Type, Type, usize)> {
        let (key, value, size) = if self.compact {
            let size =
                usize::try_from(self.varint()?).map_err(|_| "map size out of range".to_string())?;
            if size == 0 {
                return Ok((Type::Byte, Type::Byte, 0));
            }
            let types = self.byte()?;
            (
                Self::compact_type(types >> 4)?,
                Self::compact_type(types & 0x0f)?,
                size,
            )
        } else {
            let key = Self::binary_type(self.byte()?)?;
            let value = Self::binary_type(self.byte()?)?;
            let size = usize::try_from(self.i32()?)
                .map_err(|_| format!("negative map size at byte {}", self.pos))?;
            (key, value, size)
        };
        if size > self.buf.len() - self.pos {
            return Err(format!("map of {size} entries in too few bytes"));
        }
        Ok((key, value, size))
    }

    /// Reads past a value of `kind` (a field this reader does not use).
    pub(crate) fn skip(&mut self, kind: Type) -> Result<()> {
        self.skip_at(kind, 0)
    }

    fn skip_at(&mut self, kind: Type, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        match kind {
            Type::Bool => self.bool().map(drop),
            Type::Byte => self.byte().map(drop),
            Type::I16 => self.i16().map(drop),
            Type::I32 => self.i32().map(drop),
            Type::I64 => self.i64().map(drop),
            Type::Double => self.double().map(drop),
            Type::Binary => self.binary().map(drop),
            Type::Struct => {
                self.struct_begin()?;
                while let Some((field, _)) = self.field()? {
                    self.skip_at(field, depth + 1)?;
                }
                self.struct_end();
                Ok(())
            }
            Type::List | Type::Set => {
                let (element, size) = self.list()?;
                (0..size).try_for_each(|_| self.skip_at(element, depth + 1))
            }
            Type::Map => {
                let (key, value, size) = self.map()?;
                (0..size).try_for_each(|_| {
                    self.skip_at(key, depth + 1)?;
                    self.skip_at(value, depth + 1)
                })
            }
        }
    }

    /// A message header (an agent's `emitBatch` call): its method name.
    pub(crate) fn message_begin(&mut self) -> Result<String> {
        if self.compact {
            let protocol = self.byte()?;
            if protocol != 0x82 {
                return Err(format!(
                    "not a compact protocol message (protocol id {protocol:#x})"
                ));
            }
            self.byte()?; // version and message type
            self.varint()?; // sequence id
            self.string()
        } else {
            let first = self.i32()?;
            if first < 0 {
                // Strict: version and type, the name, the sequence id.
                if (first as u32) & 0xffff_0000 != 0x8001_0000 {
                    return Err(format!("unknown binary protocol version {first:#x}"));
                }
                let name = self.string()?;
                self.i32()?;
                Ok(name)
            } else {
                // Old: the name's length came first.
                let len = first as usize;
                let name = String::from_utf8(self.take(len)?.to_vec())
                    .map_err(|_| "method name is not UTF-8".to_string())?;
                self.byte()?;
                self.i32()?;
                Ok(name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        // Binary: a string of -1 bytes, a list of 2^31-1 elements.
        let negative = [0xff, 0xff, 0xff, 0xff];
        assert!(Reader::new(&negative, false)
            .binary()
            .unwrap_err()
            .contains("negative"));
        let huge = [10, 0x7f, 0xff, 0xff, 0xff];
        assert!(Reader::new(&huge, false)
            .list()
            .unwrap_err()
            .contains("elements"));
        // Compact: a varint length far past the end.
        let long = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(Reader::new(&long, true)
            .binary()
            .unwrap_err()
            .contains("truncated"));
        // Structs nested past the bound.
        let deep: Vec<u8> = std::iter::repeat_n(0x0c, 200).collect();
        let mut reader = Reader::new(&deep, true);
        assert!(reader.skip(Type::Struct).unwrap_err().contains("deeper"));
    }

    #[test]
    fn compact_fields_carry_deltas_and_bools() {
        // struct { 1: i64 = -3, 2: bool = true, 5: string = "ab" }
        let bytes = [0x16, 0x05, 0x11, 0x38, 0x02, b'a', b'b', 0x00];
        let mut r = Reader::new(&bytes, true);
        r.struct_begin().unwrap();
        assert_eq!(r.field().unwrap(), Some((Type::I64, 1)));
        assert_eq!(r.i64().unwrap(), -3);
        assert_eq!(r.field().unwrap(), Some((Type::Bool, 2)));
        assert!(r.bool().unwrap());
        assert_eq!(r.field().unwrap(), Some((Type::Binary, 5)));
        assert_eq!(r.string().unwrap(), "ab");
        assert_eq!(r.field().unwrap(), None);
    }
}
