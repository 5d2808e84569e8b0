//! Columns without a single value in the row groups a read touches, left out of the read and put
//! back as what they hold: nulls, or empty lists.
//!
//! A lookup by id reads every column of a few pages, and each column read costs the Parquet reader a
//! page reader with its own zstd contexts, whatever the column holds. Most spans leave most dedicated
//! attribute columns null and carry no events or links, so for a typical lookup more than a third of
//! the columns hold nothing; the row-group statistics (null count = value count) say so without
//! reading them.

use std::sync::Arc;

use arrow_array::{new_empty_array, new_null_array, ArrayRef, ListArray, RecordBatch};
use arrow_buffer::OffsetBuffer;
use arrow_schema::DataType;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use super::schema::SCHEMA;

/// The block schema's top-level columns (of `wanted`; all: `None`) to read for rows of `groups`:
/// `None` when every one may hold a value, else all but those that hold none there (all nulls, or
/// all empty lists) and can be put back without reading them: nullable ones and lists.
pub fn columns_with_values(
    metadata: &ParquetMetaData,
    groups: &[usize],
    wanted: Option<&[&str]>,
) -> Option<Vec<&'static str>> {
    let descriptor = metadata.file_metadata().schema_descr();
    let mut has_values = vec![false; descriptor.root_schema().get_fields().len()];
    for leaf in 0..descriptor.num_columns() {
        let root = descriptor.get_column_root_idx(leaf);
        has_values[root] |= groups.iter().any(|&group| {
            let chunk = metadata.row_group(group).column(leaf);
            // Without statistics (the attribute lists): assume values.
            chunk
                .statistics()
                .and_then(|s| s.null_count_opt())
                .is_none_or(|nulls| nulls != chunk.num_values() as u64)
        });
    }
    let read = |(root, field): &(usize, &Arc<arrow_schema::Field>)| {
        has_values.get(*root).is_none_or(|has| *has)
            || !(field.is_nullable() || matches!(field.data_type(), DataType::List(_)))
    };
    let fields: Vec<_> = SCHEMA
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.is_none_or(|w| w.contains(&f.name().as_str())))
        .collect();
    if fields.iter().all(read) {
        return None;
    }
    Some(
        fields
            .into_iter()
            .filter(read)
            .map(|(_, f)| f.name().as_str())
            .collect(),
    )
}

/// Whether the key/value lists among `columns` hold nothing but strings (or entries without a
/// value) in `groups` (all: `None`): their `int`, `double`, `bool` and `bytes` leaves are all nulls
/// there, by the row groups' statistics (none, as in blocks written before they were kept: maybe
/// not). A search then decides from the keys and string values alone.
pub fn only_strings(
    metadata: &ParquetMetaData,
    groups: Option<&[usize]>,
    columns: &[String],
) -> bool {
    let descriptor = metadata.file_metadata().schema_descr();
    let all: Vec<usize> = (0..metadata.num_row_groups()).collect();
    let groups = groups.unwrap_or(&all);
    (0..descriptor.num_columns()).all(|leaf| {
        let path = descriptor.column(leaf).path().parts().to_vec();
        let typed = matches!(
            path.last().map(String::as_str),
            Some("int" | "double" | "bool" | "bytes")
        );
        !(typed && path.len() > 1 && columns.contains(&path[0]))
            || groups.iter().all(|&group| {
                let chunk = metadata.row_group(group).column(leaf);
                chunk
                    .statistics()
                    .and_then(|s| s.null_count_opt())
                    .is_some_and(|nulls| nulls == chunk.num_values() as u64)
            })
    })
}

/// `batch` with every column of the block schema: those it lacks (left out of the read by
/// [`columns_with_values`]) as nulls or empty lists.
pub fn with_every_column(batch: RecordBatch) -> Result<RecordBatch, ParquetError> {
    let rows = batch.num_rows();
    let columns = SCHEMA
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            if let Some(column) = batch.column_by_name(field.name()) {
                return column.clone();
            }
            match field.data_type() {
                DataType::List(item) => Arc::new(ListArray::new(
                    item.clone(),
                    OffsetBuffer::new_zeroed(rows),
                    new_empty_array(item.data_type()),
                    None,
                )),
                other => new_null_array(other, rows),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
}
