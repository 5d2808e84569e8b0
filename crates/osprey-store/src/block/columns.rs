//! Arrow builders and readers for the block's composite columns: key/value lists (attributes of every
//! value type, losslessly) and dedicated attribute columns.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt8Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt8Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, ListArray, StructArray,
    UInt8Array,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};
use prost::Message;

use osprey_model::otlp::{any_value::Value, AnyValue, KeyValue};

use super::schema::{key_value_fields, Dedicated};
use super::strings::{Equals, Strings};

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

/// The keys, value types and string values of a list-of-key/value column, which is all a search
/// needs to find the rows that may hold an attribute: most values are strings, and the other value
/// leaves (mostly nulls) cost as much to decode as these, so a search reads them only for the rows
/// this lets through ([`KeyValueReader::row_matches`]).
pub struct KeyStringReader<'a> {
    list: &'a ListArray,
    key: Strings<'a>,
    value_type: &'a UInt8Array,
    string: Strings<'a>,
}

/// Reads a list-of-key/value column back into OTLP key/values; its strings plain or
/// dictionary-encoded ([`super::strings`]).
pub struct KeyValueReader<'a> {
    strings: KeyStringReader<'a>,
    int: &'a Int64Array,
    double: &'a Float64Array,
    boolean: &'a BooleanArray,
    bytes: &'a BinaryArray,
}

/// One attribute condition (`key` = `text`) prepared against a key/value column.
pub struct EntryMatcher<'a> {
    key: Equals<'a>,
    string: Equals<'a>,
    text: &'a str,
}

impl<'a> KeyStringReader<'a> {
    /// The column, read whole or with only its `key`, `value_type` and `string` leaves.
    pub fn new(column: &'a dyn Array) -> KeyStringReader<'a> {
        let list = column.as_list::<i32>();
        let entries = list.values().as_struct();
        let child = |name: &str| entries.column_by_name(name).expect("key/value leaf read");
        KeyStringReader {
            list,
            key: Strings::new(child("key")),
            value_type: child("value_type").as_primitive::<UInt8Type>(),
            string: Strings::new(child("string")),
        }
    }

    /// Prepares the condition "has attribute `key` whose value reads as `text`" (as search
    /// compares values) for [`Self::may_match`] and [`KeyValueReader::row_matches`].
    pub fn matcher(&self, key: &'a str, text: &'a str) -> EntryMatcher<'a> {
        EntryMatcher {
            key: self.key.equal_to(key),
            string: self.string.equal_to(text),
            text,
        }
    }

    /// Whether the row may meet the condition: it holds the key with the string value, or with a
    /// value of another type (which only [`KeyValueReader::row_matches`] can compare).
    pub fn may_match(&self, row: usize, condition: &EntryMatcher) -> bool {
        self.matching_entry(row, condition, |_| true)
    }

    /// Whether an entry of the row has the condition's key and either its string value or, for
    /// values of other types, one for which `other` holds.
    fn matching_entry(
        &self,
        row: usize,
        condition: &EntryMatcher,
        other: impl Fn(usize) -> bool,
    ) -> bool {
        let offsets = self.list.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize).any(|i| {
            condition.key.at(i)
                && match self.value_type.value(i) {
                    value_type::STRING => condition.string.at(i),
                    value_type::ABSENT | value_type::EMPTY => false,
                    _ => other(i),
                }
        })
    }
}

impl<'a> KeyValueReader<'a> {
    pub fn new(column: &'a dyn Array) -> KeyValueReader<'a> {
        let entries = column.as_list::<i32>().values().as_struct();
        KeyValueReader {
            strings: KeyStringReader::new(column),
            int: entries.column(3).as_primitive::<Int64Type>(),
            double: entries.column(4).as_primitive::<Float64Type>(),
            boolean: entries.column(5).as_boolean(),
            bytes: entries.column(6).as_binary::<i32>(),
        }
    }

    /// The key/values of one row.
    pub fn row(&self, row: usize) -> Vec<KeyValue> {
        let offsets = self.strings.list.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize)
            .map(|i| self.entry(i))
            .collect()
    }

    pub fn matcher(&self, key: &'a str, text: &'a str) -> EntryMatcher<'a> {
        self.strings.matcher(key, text)
    }

    /// Whether the row meets the condition, without building the row's key/values.
    pub fn row_matches(&self, row: usize, condition: &EntryMatcher) -> bool {
        self.strings.matching_entry(row, condition, |i| {
            self.entry(i)
                .value
                .and_then(|v| v.value)
                .is_some_and(|v| osprey_model::attributes::reads_as(&v, condition.text))
        })
    }

    fn entry(&self, i: usize) -> KeyValue {
        let value = |v: Value| Some(AnyValue { value: Some(v) });
        let value = match self.strings.value_type.value(i) {
            value_type::STRING => {
                value(Value::StringValue(self.strings.string.value(i).to_string()))
            }
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
            key: self.strings.key.value(i).to_string(),
            value,
            ..Default::default()
        }
    }
}

/// Builds the dedicated columns of one attribute set (span or resource) and keeps the rest for the
/// generic list.
///
/// A row costs what its attributes cost, not what the key table costs: most rows carry a few of the
/// dozens of dedicated keys, so a column is only touched when a row has its key, and the nulls of
/// the rows between are appended in one go.
pub struct DedicatedBuilder {
    keys: &'static [(&'static str, Dedicated)],
    /// The keys by their length (index = length, keys are shorter than 64 bytes), each with its
    /// column: an attribute's length alone rules most keys out, a comparison or two the rest.
    by_length: Vec<Vec<(&'static str, usize)>>,
    /// The (dedicated key, attribute position) pairs chosen for the current row: a few at most.
    chosen: Vec<(usize, usize)>,
    strings: Vec<StringBuilder>,
    ints: Vec<Int64Builder>,
    /// Per column, the rows it holds so far (the rest of `rows` are nulls not appended yet).
    filled: Vec<usize>,
    rows: usize,
}

impl DedicatedBuilder {
    pub fn new(keys: &'static [(&'static str, Dedicated)]) -> DedicatedBuilder {
        let mut by_length = vec![Vec::new(); 64];
        for (column, (key, _)) in keys.iter().enumerate() {
            assert!(key.len() < 64, "dedicated keys are short");
            by_length[key.len()].push((*key, column));
        }
        DedicatedBuilder {
            keys,
            by_length,
            chosen: Vec::new(),
            strings: keys.iter().map(|_| StringBuilder::new()).collect(),
            ints: keys.iter().map(|_| Int64Builder::new()).collect(),
            filled: vec![0; keys.len()],
            rows: 0,
        }
    }

    /// Fills the dedicated columns for one row and hands every other attribute to `generic`. The
    /// first attribute with a dedicated key and the column's type goes to the column; anything else
    /// (another type, a repeated key) stays generic, so nothing is lost.
    pub fn push_row(&mut self, attributes: &[KeyValue], generic: &mut KeyValueBuilder) {
        for (position, kv) in attributes.iter().enumerate() {
            let Some(candidates) = self.by_length.get(kv.key.len()) else {
                continue;
            };
            let Some(&(_, d)) = candidates.iter().find(|(k, _)| *k == kv.key) else {
                continue;
            };
            let fits = matches!(
                (
                    self.keys[d].1,
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
                ),
                (Dedicated::Str, Some(Value::StringValue(_)))
                    | (Dedicated::Int, Some(Value::IntValue(_)))
            );
            if fits && !self.chosen.iter().any(|(key, _)| *key == d) {
                self.chosen.push((d, position));
            }
        }
        let row = self.rows;
        self.rows += 1;
        for &(d, position) in &self.chosen {
            let gap = row - self.filled[d];
            self.filled[d] = row + 1;
            match attributes[position]
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
            {
                Some(Value::StringValue(s)) => {
                    self.strings[d].append_nulls(gap);
                    self.strings[d].append_value(s);
                }
                Some(Value::IntValue(i)) => {
                    self.ints[d].append_nulls(gap);
                    self.ints[d].append_value(*i);
                }
                _ => unreachable!("only values that fit their column are chosen"),
            }
        }
        let chosen = &self.chosen;
        generic.push_row(
            attributes
                .iter()
                .enumerate()
                .filter(|(p, _)| !chosen.iter().any(|(_, taken)| taken == p))
                .map(|(_, kv)| kv),
        );
        self.chosen.clear();
    }

    /// The dedicated columns, in the order of the key table, for the rows pushed since the last
    /// call; the builders start empty again.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        let rows = std::mem::take(&mut self.rows);
        self.keys
            .iter()
            .enumerate()
            .map(|(d, (_, kind))| -> ArrayRef {
                let gap = rows - std::mem::take(&mut self.filled[d]);
                match kind {
                    Dedicated::Str => {
                        self.strings[d].append_nulls(gap);
                        Arc::new(self.strings[d].finish())
                    }
                    Dedicated::Int => {
                        self.ints[d].append_nulls(gap);
                        Arc::new(self.ints[d].finish())
                    }
                }
            })
            .collect()
    }
}

/// Reads one dedicated column back as attributes.
pub enum DedicatedReader<'a> {
    Str(&'static str, Strings<'a>),
    Int(&'static str, &'a Int64Array),
}

/// A dedicated column compared with one value's search text.
pub enum DedicatedMatcher<'a> {
    Str(Equals<'a>),
    /// The wanted integer; `None` when the text is not one as an integer prints (never matches).
    Int(&'a Int64Array, Option<i64>),
}

impl DedicatedMatcher<'_> {
    pub fn at(&self, row: usize) -> bool {
        match self {
            DedicatedMatcher::Str(equals) => equals.at(row),
            DedicatedMatcher::Int(array, wanted) => {
                wanted.is_some_and(|w| array.is_valid(row) && array.value(row) == w)
            }
        }
    }
}

impl<'a> DedicatedReader<'a> {
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

    /// Prepares "the value's search text (what [`osprey_model::attributes::value_text`] gives) is
    /// `text`".
    pub fn matcher(&self, text: &'a str) -> DedicatedMatcher<'a> {
        match self {
            DedicatedReader::Str(_, a) => DedicatedMatcher::Str(a.equal_to(text)),
            DedicatedReader::Int(_, a) => DedicatedMatcher::Int(
                a,
                text.parse::<i64>().ok().filter(|i| i.to_string() == text),
            ),
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
                Dedicated::Str => DedicatedReader::Str(key, Strings::new(column)),
                Dedicated::Int => DedicatedReader::Int(key, column.as_primitive::<Int64Type>()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[(&str, Dedicated)] = &[("a.str", Dedicated::Str), ("b.int", Dedicated::Int)];

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn dedicated_columns_fill_the_rows_without_their_key_with_nulls() {
        let mut dedicated = DedicatedBuilder::new(KEYS);
        let mut generic = KeyValueBuilder::new();
        let rows = [
            vec![kv("x", Value::StringValue("1".into()))],
            vec![
                kv("b.int", Value::IntValue(7)),
                // Same key again, and a value of another type than the column's: stay generic.
                kv("b.int", Value::IntValue(8)),
                kv("a.str", Value::IntValue(9)),
            ],
            vec![],
            vec![kv("a.str", Value::StringValue("s".into()))],
        ];
        for batch in 0..2 {
            for row in &rows {
                dedicated.push_row(row, &mut generic);
            }
            let columns = dedicated.finish();
            let strings = Strings::new(columns[0].as_ref());
            let ints = columns[1].as_primitive::<Int64Type>();
            assert_eq!(columns[0].len(), 4, "batch {batch}");
            assert_eq!(ints.len(), 4);
            let strs: Vec<_> = (0..4)
                .map(|r| strings.is_valid(r).then(|| strings.value(r)))
                .collect();
            assert_eq!(strs, [None, None, None, Some("s")]);
            let ints: Vec<_> = ints.iter().collect();
            assert_eq!(ints, [None, Some(7), None, None]);
            let generic = generic.finish();
            let reader = KeyValueReader::new(&generic);
            let keys = |r| {
                reader
                    .row(r)
                    .into_iter()
                    .map(|kv| kv.key)
                    .collect::<Vec<_>>()
            };
            assert_eq!(keys(0), ["x"]);
            assert_eq!(keys(1), ["b.int", "a.str"]);
            assert!(keys(2).is_empty() && keys(3).is_empty());
        }
    }

    #[test]
    fn an_integer_column_matches_only_the_text_an_integer_prints_as() {
        let ints = Int64Array::from(vec![Some(503), None]);
        let reader = DedicatedReader::Int("b.int", &ints);
        assert!(reader.matcher("503").at(0));
        for text in ["0503", "+503", "503.0", "x"] {
            assert!(!reader.matcher(text).at(0), "{text}");
        }
        assert!(!reader.matcher("503").at(1));
    }
}
