//! How the block's columns are encoded in Parquet: compression, dictionaries, statistics, encodings.

use arrow_schema::{DataType, Field, SchemaRef};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::schema::col;

/// Rows per data page: with the page index, a lookup by id reads a few pages of each column.
const PAGE_ROWS: usize = 4096;

/// The writer settings of every block (docs/format.md).
pub fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    let start_column = schema.index_of(col::START).expect("start column") as i32;
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("3 is a zstd level"),
        ))
        .set_dictionary_enabled(true)
        // Row-group statistics: a search prunes row groups by start time, and other readers of
        // the file (DuckDB, Spark) by any column. Only a lookup by id goes down to pages, by the
        // `trace_id` column index: page statistics for every column would only grow the footer
        // that lookups keep in memory.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from(col::TRACE_ID), EnabledStatistics::Page)
        // Row groups are ended by hand, on trace boundaries (`BlockWriter::push_trace`).
        .set_max_row_group_row_count(None)
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(1024)
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
            // Every column before the start time is a leaf, so its schema index is its leaf index.
            SortingColumn {
                column_idx: start_column,
                descending: false,
                nulls_first: false,
            },
        ]))
        .set_created_by(format!("osprey {}", env!("CARGO_PKG_VERSION")));
    // Random ids do not repeat: a dictionary only costs. Times within a trace are close to each
    // other: their differences pack in fewer bits than the times.
    // Nothing prunes by them either: the min and max of random ids cost a comparison a span.
    for column in [col::SPAN_ID, col::PARENT_SPAN_ID] {
        properties = properties
            .set_column_dictionary_enabled(ColumnPath::from(column), false)
            .set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
    }
    for column in [col::START, col::END, col::DURATION] {
        properties = properties
            .set_column_dictionary_enabled(ColumnPath::from(column), false)
            .set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
    }
    // Nothing prunes by the keys and strings inside the span and resource attribute lists (about
    // ten entries a span): min/max statistics of them would cost a comparison per value for
    // nothing. Their other value leaves (int, double, bool, bytes) keep theirs: mostly nulls, they
    // cost little, and a null count equal to the value count tells a search that a row group holds
    // only strings (`valueless::only_strings`). The other lists (events, links, scope attributes)
    // keep theirs: mostly empty, they cost nothing, and their null count tells a lookup that a row
    // group holds none (`valueless`).
    for field in schema.fields() {
        if [col::ATTRIBUTES, col::RESOURCE_ATTRIBUTES].contains(&field.name().as_str()) {
            for leaf in list_leaves(field) {
                if ["key", "value_type", "string"].contains(&leaf[leaf.len() - 1].as_str()) {
                    properties = properties.set_column_statistics_enabled(
                        ColumnPath::new(leaf),
                        EnabledStatistics::None,
                    );
                }
            }
        }
    }
    properties.build()
}

/// The Parquet paths of the leaves under a list column (`attributes.list.item.key`, …).
fn list_leaves(field: &Field) -> Vec<Vec<String>> {
    fn walk(field: &Field, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        match field.data_type() {
            DataType::List(item) => {
                let mut path = path;
                path.push("list".into());
                path.push(item.name().clone());
                walk(item, path, out);
            }
            DataType::Struct(fields) => {
                for child in fields {
                    let mut path = path.clone();
                    path.push(child.name().clone());
                    walk(child, path, out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut out = Vec::new();
    walk(field, vec![field.name().clone()], &mut out);
    out
}
