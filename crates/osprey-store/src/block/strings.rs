//! String columns as a read hands them over: plain, or dictionary-encoded as they are stored.
//!
//! Searches and scans read string columns with [`DICTIONARY_SCHEMA`]: a row group's service names,
//! span names and attribute keys are a few hundred distinct strings repeated millions of times, and
//! keeping them as dictionary ids skips copying every one of them out of the file, and lets a
//! condition compare the dictionary once instead of every row.

use std::sync::{Arc, LazyLock};

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, Int32Array, StringArray};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

use super::schema::SCHEMA;

/// The block schema with every string column, nested ones too, read as `Dictionary(Int32, Utf8)`.
pub static DICTIONARY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<Field> = SCHEMA
        .fields()
        .iter()
        .map(|f| dictionary_field(f))
        .collect();
    Arc::new(Schema::new(fields))
});

fn dictionary_field(field: &Field) -> Field {
    field
        .clone()
        .with_data_type(dictionary_type(field.data_type()))
}

fn dictionary_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8 => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        DataType::List(item) => DataType::List(Arc::new(dictionary_field(item))),
        DataType::Struct(fields) => DataType::Struct(Fields::from(
            fields
                .iter()
                .map(|f| dictionary_field(f))
                .collect::<Vec<_>>(),
        )),
        other => other.clone(),
    }
}

/// A string column of either form.
#[derive(Clone, Copy)]
pub enum Strings<'a> {
    Plain(&'a StringArray),
    Dictionary {
        keys: &'a Int32Array,
        values: &'a StringArray,
    },
}

impl<'a> Strings<'a> {
    /// The column; panics unless it is `Utf8` or `Dictionary(Int32, Utf8)`, the only forms the
    /// block's schemas give a string column.
    pub fn new(array: &'a dyn Array) -> Strings<'a> {
        match array.data_type() {
            DataType::Dictionary(_, _) => {
                let dictionary = array.as_dictionary::<Int32Type>();
                Strings::Dictionary {
                    keys: dictionary.keys(),
                    values: dictionary.values().as_string::<i32>(),
                }
            }
            _ => Strings::Plain(array.as_string::<i32>()),
        }
    }

    pub fn is_valid(&self, row: usize) -> bool {
        match self {
            Strings::Plain(a) => a.is_valid(row),
            Strings::Dictionary { keys, .. } => keys.is_valid(row),
        }
    }

    /// The value of `row` ("" when null).
    pub fn value(&self, row: usize) -> &'a str {
        match self {
            Strings::Plain(a) => a.value(row),
            Strings::Dictionary { keys, values } => {
                if keys.is_valid(row) {
                    values.value(keys.value(row) as usize)
                } else {
                    ""
                }
            }
        }
    }

    /// Which rows hold exactly `wanted`: a dictionary's values are compared once, here.
    pub fn equal_to(&self, wanted: &'a str) -> Equals<'a> {
        match *self {
            Strings::Plain(array) => Equals::Plain { array, wanted },
            Strings::Dictionary { keys, values } => Equals::Dictionary {
                keys,
                matching: values.iter().map(|v| v == Some(wanted)).collect(),
            },
        }
    }
}

/// A string column compared with one value, row by row.
pub enum Equals<'a> {
    Plain {
        array: &'a StringArray,
        wanted: &'a str,
    },
    Dictionary {
        keys: &'a Int32Array,
        /// Per dictionary id: whether its value is the wanted one.
        matching: Vec<bool>,
    },
}

impl Equals<'_> {
    pub fn at(&self, row: usize) -> bool {
        match self {
            Equals::Plain { array, wanted } => array.is_valid(row) && array.value(row) == *wanted,
            Equals::Dictionary { keys, matching } => {
                keys.is_valid(row) && matching[keys.value(row) as usize]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::DictionaryArray;

    #[test]
    fn both_forms_read_and_compare_alike() {
        let rows = [Some("a"), None, Some("b"), Some("a")];
        let plain = StringArray::from(rows.to_vec());
        let dictionary: DictionaryArray<Int32Type> = rows.into_iter().collect();
        for strings in [Strings::new(&plain), Strings::new(&dictionary)] {
            let values: Vec<_> = (0..4).map(|r| strings.value(r)).collect();
            assert_eq!(values, ["a", "", "b", "a"]);
            let a = strings.equal_to("a");
            assert_eq!(
                (0..4).map(|r| a.at(r)).collect::<Vec<_>>(),
                [true, false, false, true]
            );
            assert!(!strings.is_valid(1));
        }
    }
}
