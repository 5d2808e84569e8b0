//! Arrow builders and readers for the block's composite columns: key/value lists (attributes of every
//! value type, losslessly) and dedicated attribute columns.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt8Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    StructArray, UInt8Array,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};
use prost::Message;

use osprey_model::otlp::{any_value::Value, AnyValue, KeyValue};

use super::schema::{key_value_fields, Dedicated};

/// `value_type` codes of a key/value entry (docs/format.md).
mod value_type {
    /// The entry has no value at all.
    pub const ABSENT: u8 = 0;
    pub const STRING: u8 = 1;
    pub const BOOL: u8 = 2;
    pub const INT: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const BYTES: u8 = 5;
    /// `bytes` holds the OTLP protobuf encoding of the whole `AnyValue`.
    pub const ARRAY: u8 = 6;
    pub const KVLIST: u8 = 7;
    /// A value wrapper with nothing inside.
    pub const EMPTY: u8 = 8;
    pub const STRING_INDEX: u8 = 9;
}

/// Offsets of a list column being built: one list per row.
pub struct ListOffsets(Vec<i32>);

impl ListOffsets {
    pub fn new() -> ListOffsets {
        ListOffsets(vec![0])
    }

    pub fn close(&mut self, len: usize) {
        self.0.push(len as i32);
    }

    pub fn finish(&mut self, values: StructArray) -> ListArray {
        let offsets = std::mem::replace(&mut self.0, vec![0]);
        let field = Arc::new(Field::new(
            "item",
            DataType::Struct(values.fields().clone()),
            false,
        ));
        ListArray::new(
            field,
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(values),
            None,
        )
    }
}

/// Builds a list-of-key/value column, one list per row.
pub struct KeyValueBuilder {
    offsets: ListOffsets,
    len: usize,
    key: StringBuilder,
    value_type: UInt8Builder,
    string: StringBuilder,
    int: Int64Builder,
    double: Float64Builder,
    boolean: BooleanBuilder,
    bytes: BinaryBuilder,
}

impl KeyValueBuilder {
    pub fn new() -> KeyValueBuilder {
        KeyValueBuilder {
            offsets: ListOffsets::new(),
            len: 0,
            key: StringBuilder::new(),
            value_type: UInt8Builder::new(),
            string: StringBuilder::new(),
            int: Int64Builder::new(),
            double: Float64Builder::new(),
            boolean: BooleanBuilder::new(),
            bytes: BinaryBuilder::new(),
        }
    }

    /// Appends one row's list.
    pub fn push_row<'a>(&mut self, entries: impl IntoIterator<Item = &'a KeyValue>) {
        for kv in entries {
            self.push_entry(kv);
        }
        self.offsets.close(self.len);
    }

    fn push_entry(&mut self, kv: &KeyValue) {
        self.len += 1;
        self.key.append_value(&kv.key);
        let (kind, string, int, double, boolean, bytes) = match &kv.value {
            None => (value_type::ABSENT, None, None, None, None, None),
            Some(AnyValue { value: None }) => (value_type::EMPTY, None, None, None, None, None),
            Some(any @ AnyValue { value: Some(v) }) => match v {
                Value::StringValue(s) => {
                    (value_type::STRING, Some(s.as_str()), None, None, None, None)
                }
                Value::BoolValue(b) => (value_type::BOOL, None, None, None, Some(*b), None),
                Value::IntValue(i) => (value_type::INT, None, Some(*i), None, None, None),
                Value::DoubleValue(d) => (value_type::DOUBLE, None, None, Some(*d), None, None),
                Value::BytesValue(b) => {
                    (value_type::BYTES, None, None, None, None, Some(b.clone()))
                }
                Value::ArrayValue(_) => (
                    value_type::ARRAY,
                    None,
                    None,
                    None,
                    None,
                    Some(any.encode_to_vec()),
                ),
                Value::KvlistValue(_) => (
                    value_type::KVLIST,
                    None,
                    None,
                    None,
                    None,
                    Some(any.encode_to_vec()),
                ),
                Value::StringValueStrindex(i) => (
                    value_type::STRING_INDEX,
                    None,
                    Some(i64::from(*i)),
                    None,
                    None,
                    None,
                ),
            },
        };
        self.value_type.append_value(kind);
        self.string.append_option(string);
        self.int.append_option(int);
        self.double.append_option(double);
        self.boolean.append_option(boolean);
        self.bytes.append_option(bytes);
    }

    pub fn finish(&mut self) -> ListArray {
        self.len = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.key.finish()),
            Arc::new(self.value_type.finish()),
            Arc::new(self.string.finish()),
            Arc::new(self.int.finish()),
            Arc::new(self.double.finish()),
            Arc::new(self.boolean.finish()),
            Arc::new(self.bytes.finish()),
        ];
        self.offsets
            .finish(StructArray::new(key_value_fields(), columns, None))
    }
}

/// Reads a list-of-key/value column back into OTLP key/values.
pub struct KeyValueReader<'a> {
    list: &'a ListArray,
    key: &'a StringArray,
    value_type: &'a UInt8Array,
    string: &'a StringArray,
    int: &'a Int64Array,
    double: &'a Float64Array,
    boolean: &'a BooleanArray,
    bytes: &'a BinaryArray,
}

impl<'a> KeyValueReader<'a> {
    pub fn new(column: &'a dyn Array) -> KeyValueReader<'a> {
        let list = column.as_list::<i32>();
        let entries = list.values().as_struct();
        KeyValueReader {
            list,
            key: entries.column(0).as_string::<i32>(),
            value_type: entries.column(1).as_primitive::<UInt8Type>(),
            string: entries.column(2).as_string::<i32>(),
            int: entries.column(3).as_primitive::<Int64Type>(),
            double: entries.column(4).as_primitive::<Float64Type>(),
            boolean: entries.column(5).as_boolean(),
            bytes: entries.column(6).as_binary::<i32>(),
        }
    }

    /// The key/values of one row.
    pub fn row(&self, row: usize) -> Vec<KeyValue> {
        let offsets = self.list.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize)
            .map(|i| self.entry(i))
            .collect()
    }

    /// Whether the row has attribute `key` whose value reads as `text` (as search compares values),
    /// without building the row's key/values.
    pub fn row_has(&self, row: usize, key: &str, text: &str) -> bool {
        let offsets = self.list.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize).any(|i| {
            self.key.value(i) == key
                && match self.value_type.value(i) {
                    value_type::STRING => self.string.value(i) == text,
                    value_type::ABSENT | value_type::EMPTY => false,
                    _ => self
                        .entry(i)
                        .value
                        .and_then(|v| v.value)
                        .is_some_and(|v| osprey_model::attributes::value_text(&v) == text),
                }
        })
    }

    fn entry(&self, i: usize) -> KeyValue {
        let value = |v: Value| Some(AnyValue { value: Some(v) });
        let value = match self.value_type.value(i) {
            value_type::STRING => value(Value::StringValue(self.string.value(i).to_string())),
            value_type::BOOL => value(Value::BoolValue(self.boolean.value(i))),
            value_type::INT => value(Value::IntValue(self.int.value(i))),
            value_type::DOUBLE => value(Value::DoubleValue(self.double.value(i))),
            value_type::BYTES => value(Value::BytesValue(self.bytes.value(i).to_vec())),
            value_type::ARRAY | value_type::KVLIST => {
                // Written by us from a decoded value, so it decodes; a damaged file reads as empty.
                Some(AnyValue::decode(self.bytes.value(i)).unwrap_or_default())
            }
            value_type::STRING_INDEX => value(Value::StringValueStrindex(self.int.value(i) as i32)),
            value_type::EMPTY => Some(AnyValue { value: None }),
            _ => None,
        };
        KeyValue {
            key: self.key.value(i).to_string(),
            value,
            ..Default::default()
        }
    }
}

/// Builds the dedicated columns of one attribute set (span or resource) and keeps the rest for the
/// generic list.
pub struct DedicatedBuilder {
    keys: &'static [(&'static str, Dedicated)],
    /// The keys, sorted, with their column: a binary search is cheaper than hashing every key.
    index: Vec<(&'static str, usize)>,
    /// Bit `n` set when a key is `n` bytes long (n < 64): most attributes are not dedicated, and
    /// their length alone says so without a search.
    lengths: u64,
    /// Per attribute position of the current row: whether it went to a dedicated column.
    taken: Vec<bool>,
    strings: Vec<StringBuilder>,
    ints: Vec<Int64Builder>,
    /// Per dedicated key, the attribute position chosen for the current row.
    chosen: Vec<Option<usize>>,
}

impl DedicatedBuilder {
    pub fn new(keys: &'static [(&'static str, Dedicated)]) -> DedicatedBuilder {
        assert!(
            keys.iter().all(|(k, _)| k.len() < 64),
            "dedicated keys are short"
        );
        DedicatedBuilder {
            keys,
            index: {
                let mut index: Vec<_> =
                    keys.iter().enumerate().map(|(i, (k, _))| (*k, i)).collect();
                index.sort_unstable();
                index
            },
            lengths: keys.iter().fold(0, |mask, (k, _)| mask | 1 << k.len()),
            taken: Vec::new(),
            strings: keys.iter().map(|_| StringBuilder::new()).collect(),
            ints: keys.iter().map(|_| Int64Builder::new()).collect(),
            chosen: vec![None; keys.len()],
        }
    }

    /// Fills the dedicated columns for one row and hands every other attribute to `generic`. The
    /// first attribute with a dedicated key and the column's type goes to the column; anything else
    /// (another type, a repeated key) stays generic, so nothing is lost.
    pub fn push_row(&mut self, attributes: &[KeyValue], generic: &mut KeyValueBuilder) {
        self.chosen.iter_mut().for_each(|c| *c = None);
        for (position, kv) in attributes.iter().enumerate() {
            if kv.key.len() >= 64 || self.lengths & (1 << kv.key.len()) == 0 {
                continue;
            }
            let Ok(found) = self
                .index
                .binary_search_by(|(k, _)| (*k).cmp(kv.key.as_str()))
            else {
                continue;
            };
            let d = self.index[found].1;
            let fits = matches!(
                (
                    self.keys[d].1,
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
                ),
                (Dedicated::Str, Some(Value::StringValue(_)))
                    | (Dedicated::Int, Some(Value::IntValue(_)))
            );
            if fits && self.chosen[d].is_none() {
                self.chosen[d] = Some(position);
            }
        }
        for (d, (_, kind)) in self.keys.iter().enumerate() {
            let value = self.chosen[d]
                .and_then(|p| attributes[p].value.as_ref())
                .and_then(|v| v.value.as_ref());
            match (kind, value) {
                (Dedicated::Str, Some(Value::StringValue(s))) => self.strings[d].append_value(s),
                (Dedicated::Int, Some(Value::IntValue(i))) => self.ints[d].append_value(*i),
                (Dedicated::Str, _) => self.strings[d].append_null(),
                (Dedicated::Int, _) => self.ints[d].append_null(),
            }
        }
        self.taken.clear();
        self.taken.resize(attributes.len(), false);
        for p in self.chosen.iter().flatten() {
            self.taken[*p] = true;
        }
        let taken = &self.taken;
        generic.push_row(
            attributes
                .iter()
                .enumerate()
                .filter(|(p, _)| !taken[*p])
                .map(|(_, kv)| kv),
        );
    }

    /// The dedicated columns, in the order of the key table.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.keys
            .iter()
            .enumerate()
            .map(|(d, (_, kind))| -> ArrayRef {
                match kind {
                    Dedicated::Str => Arc::new(self.strings[d].finish()),
                    Dedicated::Int => Arc::new(self.ints[d].finish()),
                }
            })
            .collect()
    }
}

/// Reads one dedicated column back as attributes.
pub enum DedicatedReader<'a> {
    Str(&'static str, &'a StringArray),
    Int(&'static str, &'a Int64Array),
}

impl DedicatedReader<'_> {
    pub fn key(&self) -> &'static str {
        match self {
            DedicatedReader::Str(k, _) | DedicatedReader::Int(k, _) => k,
        }
    }

    /// The attribute this column holds for `row`, if any.
    pub fn attribute(&self, row: usize) -> Option<KeyValue> {
        let value = match self {
            DedicatedReader::Str(_, a) => a
                .is_valid(row)
                .then(|| Value::StringValue(a.value(row).to_string())),
            DedicatedReader::Int(_, a) => a.is_valid(row).then(|| Value::IntValue(a.value(row))),
        }?;
        Some(KeyValue {
            key: self.key().to_string(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        })
    }

    /// The value as search text (what [`osprey_model::attributes::value_text`] gives).
    pub fn text(&self, row: usize) -> Option<String> {
        match self {
            DedicatedReader::Str(_, a) => a.is_valid(row).then(|| a.value(row).to_string()),
            DedicatedReader::Int(_, a) => a.is_valid(row).then(|| a.value(row).to_string()),
        }
    }
}

/// Readers for every dedicated column of `keys` that the batch holds.
pub fn dedicated_readers<'a>(
    batch: &'a arrow_array::RecordBatch,
    keys: &'static [(&'static str, Dedicated)],
    column_name: impl Fn(&str) -> String,
) -> Vec<DedicatedReader<'a>> {
    keys.iter()
        .filter_map(|(key, kind)| {
            let column = batch.column_by_name(&column_name(key))?;
            Some(match kind {
                Dedicated::Str => DedicatedReader::Str(key, column.as_string::<i32>()),
                Dedicated::Int => DedicatedReader::Int(key, column.as_primitive::<Int64Type>()),
            })
        })
        .collect()
}
